import numpy as np
import pytest

from pricing.demand import DemandPanel
from pricing.elasticity import demand_fit

FIRST_DAY = 739_000  # 2024-05-06, a Monday: (FIRST_DAY - 1) % 7 == 0
TRUE_DAY_OF_WEEK = np.array([0.1, 0.05, 0.0, -0.05, 0.0, 0.2, -0.3])
TRUE_COMPETITOR = -0.8
TRUE_PROMOTION = 0.4


def _panel(
    *,
    elasticity: np.ndarray,
    base: np.ndarray,
    category: np.ndarray,
    days: int = 180,
    seed: int = 0,
    constant_price: np.ndarray | None = None,
    stockout_share: float = 0.1,
    stock_per_day: np.ndarray | None = None,
    censor_flags: bool = True,
    category_moves: bool = False,
    cross_price: float = 0.0,
) -> DemandPanel:
    """Daily Poisson demand with known elasticities, day-of-week, competitor and promotion effects.

    `base` is the expected units per day at the reference price on an average day. Prices move every two
    weeks by up to ±15%; on a `stockout_share` of days the stock runs out at 70% of the day's expected demand.
    """
    rng = np.random.default_rng(seed)
    products = len(elasticity)
    reference = np.exp(rng.normal(3.0, 0.5, products))
    product, day = (grid.ravel() for grid in np.meshgrid(np.arange(products), np.arange(days), indexing="ij"))
    moves = np.exp(rng.choice([-0.15, -0.07, 0.0, 0.07, 0.15], size=(products, days // 14 + 1)))
    if category_moves:
        moves *= np.exp(rng.choice([-0.15, 0.0, 0.15], size=(category.max() + 1, moves.shape[1])))[category]
    if constant_price is not None:
        moves[constant_price] = 1.0
    relative = np.log(np.repeat(moves, 14, axis=1)[:, :days])
    price = (reference[:, None] * np.exp(relative)).ravel()
    category_size = np.bincount(category)
    category_total = np.stack([np.bincount(category, relative[:, t]) for t in range(days)], axis=1)
    others = (category_total[category] - relative) / np.maximum(category_size[category] - 1, 1)[:, None]
    traffic = 1000.0 * np.exp(0.1 * rng.normal(size=days))
    competitor_ratio = np.where(rng.random(product.size) < 0.5, np.nan, np.exp(rng.normal(0.0, 0.1, product.size)))
    promoted = rng.random(product.size) < 0.05
    weekday = (FIRST_DAY + day - 1) % 7
    dow = TRUE_DAY_OF_WEEK - TRUE_DAY_OF_WEEK.mean()
    log_mean = (
        np.log(base[product] * traffic[day] / traffic.mean())
        + elasticity[product] * np.log(price / reference[product])
        + dow[weekday]
        + TRUE_COMPETITOR * np.nan_to_num(np.log(competitor_ratio))
        + TRUE_PROMOTION * promoted
        + cross_price * others.ravel()
    )
    demand = rng.poisson(np.exp(log_mean)).astype(float)
    stock = np.where(rng.random(product.size) < stockout_share, np.floor(0.7 * np.exp(log_mean)), np.inf)
    if stock_per_day is not None:
        stock = np.minimum(stock, stock_per_day[product])
    stocked_out = demand >= stock
    return DemandPanel(
        product_id=product + 1,
        category_id=category[product],
        day=FIRST_DAY + day,
        price=price,
        units=np.minimum(demand, stock),
        traffic=traffic[day],
        competitor_ratio=competitor_ratio,
        promoted=promoted,
        stocked_out=stocked_out & censor_flags,
    )


def _known_elasticities(products: int, categories: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    category_means = np.linspace(-2.6, -1.0, categories)
    category = rng.integers(0, categories, products)
    elasticity = rng.normal(category_means[category], 0.3)
    base = np.exp(rng.normal(0.5, 0.8, products))
    return elasticity, base, category


def test_demand_fit_recovers_known_elasticities_with_calibrated_intervals() -> None:
    # given 300 products in 6 categories, elasticity ~ N(category mean, 0.3), 10% of days stocked out
    elasticity, base, category = _known_elasticities(300, 6, seed=1)
    panel = _panel(elasticity=elasticity, base=base, category=category, seed=1)

    # when
    fit = demand_fit(panel)

    # then the posterior means are close (RMSE 0.29 measured; own estimates alone: 0.73) and calibrated
    estimates = [fit.products[j + 1] for j in range(300)]
    posterior = np.array([e.elasticity for e in estimates])
    own = np.array([e.own_estimate for e in estimates])
    covered = np.array([e.lower <= truth <= e.upper for e, truth in zip(estimates, elasticity, strict=True)])
    assert np.sqrt(np.mean((posterior - elasticity) ** 2)) < 0.35
    assert np.sqrt(np.mean((posterior - elasticity) ** 2)) < 0.6 * np.sqrt(np.mean((own - elasticity) ** 2))
    assert covered.mean() >= 0.90
    assert fit.diagnostics["converged"]
    assert fit.diagnostics["censored_rows"] == int(panel.stocked_out.sum()) > 0


def test_demand_fit_recovers_the_category_means_and_spread() -> None:
    # given
    elasticity, base, category = _known_elasticities(300, 6, seed=2)
    panel = _panel(elasticity=elasticity, base=base, category=category, seed=2)

    # when
    fit = demand_fit(panel)

    # then
    for index, true_mean in enumerate(np.linspace(-2.6, -1.0, 6)):
        assert fit.categories[index].mean == pytest.approx(true_mean, abs=0.25)
        assert fit.categories[index].spread == pytest.approx(0.3, abs=0.15)


def test_demand_fit_recovers_day_of_week_competitor_and_promotion_effects() -> None:
    # given
    elasticity, base, category = _known_elasticities(300, 6, seed=3)
    panel = _panel(elasticity=elasticity, base=base, category=category, seed=3)

    # when
    fit = demand_fit(panel)

    # then the weekday factors average 1 and follow the true multiplicative pattern
    factors = np.array(fit.day_of_week)
    true_factors = np.exp(TRUE_DAY_OF_WEEK) / np.exp(TRUE_DAY_OF_WEEK).mean()
    assert factors.mean() == pytest.approx(1.0)
    assert np.max(np.abs(factors - true_factors)) < 0.03
    assert abs(fit.competitor_coefficient - TRUE_COMPETITOR) < 3 * fit.competitor_se + 0.02
    assert abs(fit.promotion_coefficient - TRUE_PROMOTION) < 3 * fit.promotion_se + 0.02
    assert 0 < fit.competitor_se < 0.1 and 0 < fit.promotion_se < 0.05


def test_demand_fit_pools_sparse_products_and_keeps_well_measured_ones() -> None:
    # given one category of 40 ordinary products plus: a product that sold about 3 units, a best seller
    # with varied prices, a product whose price never moved, and a best seller whose sales rose with price
    rng = np.random.default_rng(4)
    elasticity = np.append(rng.normal(-2.0, 0.3, 40), [-1.0, -1.0, -1.0, 0.5])
    base = np.append(np.full(40, 3.0), [3 / 180, 300.0, 5.0, 300.0])
    constant = np.zeros(44, dtype=bool)
    constant[42] = True
    panel = _panel(elasticity=elasticity, base=base, category=np.zeros(44, dtype=np.int64), constant_price=constant)

    # when
    fit = demand_fit(panel)

    # then
    prior = fit.categories[0]
    sparse, best_seller, unmoved, rising = (fit.products[j] for j in (41, 42, 43, 44))
    assert sparse.units_observed < 10
    assert sparse.pooling_weight > 0.8
    assert abs(sparse.elasticity - prior.mean) < 0.2 * abs(sparse.own_estimate - prior.mean) + 0.05
    assert best_seller.pooling_weight < 0.2
    assert best_seller.elasticity == pytest.approx(-1.0, abs=0.1)
    assert unmoved.own_estimate is None and unmoved.own_se is None
    assert unmoved.pooling_weight == pytest.approx(1.0)
    assert unmoved.elasticity == pytest.approx(prior.mean)
    assert unmoved.price_points == 1
    assert rising.own_estimate == pytest.approx(0.5, abs=0.1)


def test_demand_fit_base_units_are_units_per_day_at_the_reference_price() -> None:
    # given a product whose price never moves, selling about 50 units a day
    elasticity = np.array([-2.0, -1.5, -1.8, -2.2])
    base = np.array([50.0, 5.0, 5.0, 5.0])
    panel = _panel(
        elasticity=elasticity,
        base=base,
        category=np.zeros(4, dtype=np.int64),
        constant_price=np.array([True, False, False, False]),
        stockout_share=0.0,
    )

    # when
    fit = demand_fit(panel)

    # then
    estimate = fit.products[1]
    observed = panel.units[panel.product_id == 1].mean()
    assert estimate.base_units_per_day == pytest.approx(observed, rel=0.05)
    assert estimate.base_units_per_day == pytest.approx(50.0, rel=0.08)
    assert 0 < estimate.log_base_se < 0.02


def test_demand_fit_treats_stock_outs_as_censored_demand() -> None:
    # given 24 units of stock a day against about 20 of demand at the reference price: the shelf empties on
    # most low-price days, so recorded sales understate how much a price cut sells
    rng = np.random.default_rng(5)
    elasticity = rng.normal(-2.0, 0.2, 100)
    base = np.full(100, 20.0)
    category = np.zeros(100, dtype=np.int64)
    stock = np.full(100, 24.0)
    options = {"elasticity": elasticity, "base": base, "category": category, "seed": 5, "stockout_share": 0.0}
    censored = _panel(**options, stock_per_day=stock)
    ignored = _panel(**options, stock_per_day=stock, censor_flags=False)

    # when
    with_censoring = demand_fit(censored)
    without_censoring = demand_fit(ignored)

    # then reading capped sales as demand flattens the curve (bias +0.70 measured); the censored likelihood
    # does not (-0.04, within two standard errors of the mean)
    def mean_bias(fit: object) -> float:
        return float(np.mean([fit.products[j + 1].own_estimate - elasticity[j] for j in range(100)]))

    assert abs(mean_bias(with_censoring)) < 0.06
    assert mean_bias(without_censoring) > 0.3
    assert abs(with_censoring.promotion_coefficient - TRUE_PROMOTION) < abs(
        without_censoring.promotion_coefficient - TRUE_PROMOTION
    )


def test_demand_fit_separates_own_elasticity_from_substitution_within_the_category() -> None:
    # given categories whose prices often move together, and sales that rise when the neighbours' prices rise
    elasticity, base, category = _known_elasticities(120, 4, seed=10)
    panel = _panel(
        elasticity=elasticity, base=base * 4, category=category, seed=10, category_moves=True, cross_price=1.0
    )

    # when
    fit = demand_fit(panel)

    # then own estimates stay unbiased (+0.02 measured; +0.57 without the category price control)
    own = np.array([fit.products[j + 1].own_estimate for j in range(120)])
    assert abs(np.mean(own - elasticity)) < 0.1
    assert fit.diagnostics["category_price_coefficient"] == pytest.approx(1.0, abs=0.2)


def test_demand_fit_lets_a_small_category_borrow_the_merchant_wide_prior() -> None:
    # given 40 products in category 1 around -2.5, and 2 informative products in category 2 around -0.5
    rng = np.random.default_rng(6)
    elasticity = np.append(rng.normal(-2.5, 0.2, 40), [-0.5, -0.5])
    base = np.full(42, 10.0)
    category = np.append(np.ones(40, dtype=np.int64), [2, 2])
    panel = _panel(elasticity=elasticity, base=base, category=category, seed=6)

    # when
    fit = demand_fit(panel)

    # then category 2 has too few products for its own mean and takes the merchant's
    assert fit.categories[2].products == 2
    assert fit.categories[2].mean == pytest.approx(fit.categories[1].mean, abs=0.1)
    assert fit.categories[1].mean == pytest.approx(-2.5, abs=0.15)


def test_demand_fit_falls_back_to_the_global_prior_without_price_variation() -> None:
    # given no product ever changed its price
    elasticity, base, category = _known_elasticities(20, 2, seed=7)
    panel = _panel(elasticity=elasticity, base=base, category=category, constant_price=np.ones(20, dtype=bool))

    # when
    fit = demand_fit(panel, prior_mean=-1.2, prior_sd=0.7, level=0.9)

    # then every product gets the global prior and its 90% interval
    for estimate in fit.products.values():
        assert estimate.own_estimate is None
        assert estimate.elasticity == pytest.approx(-1.2)
        assert estimate.sd == pytest.approx(0.7)
        assert estimate.upper - estimate.lower == pytest.approx(2 * 1.6449 * 0.7, rel=1e-3)
    assert fit.level == 0.9


def test_demand_fit_reports_progress_and_diagnostics() -> None:
    # given
    elasticity, base, category = _known_elasticities(30, 2, seed=8)
    panel = _panel(elasticity=elasticity, base=base, category=category, days=60)
    shares: list[float] = []

    # when
    fit = demand_fit(panel, progress=shares.append)

    # then
    assert shares == sorted(shares) and shares[-1] == 1.0 and len(shares) >= 2
    assert fit.diagnostics["rows"] == len(panel) == 30 * 60
    assert fit.diagnostics["sweeps"] == len(shares) - 1
    assert 0.8 < fit.diagnostics["dispersion"] < 1.3
    assert fit.diagnostics["log_likelihood"] < 0


def test_demand_fit_inflates_intervals_for_overdispersed_demand() -> None:
    # given demand that varies more than Poisson (gamma-mixed), and the same means without the extra noise
    elasticity, base, category = _known_elasticities(60, 2, seed=9)
    rng = np.random.default_rng(9)
    poisson = _panel(elasticity=elasticity, base=base * 5, category=category, seed=9, stockout_share=0.0)
    noisy_units = rng.poisson(rng.gamma(2.0, 0.5, len(poisson)) * np.maximum(poisson.units, 0.5)).astype(float)
    overdispersed = DemandPanel(
        poisson.product_id,
        poisson.category_id,
        poisson.day,
        poisson.price,
        noisy_units,
        poisson.traffic,
        poisson.competitor_ratio,
        poisson.promoted,
        poisson.stocked_out,
    )

    # when
    calm, wild = demand_fit(poisson), demand_fit(overdispersed)

    # then
    assert calm.diagnostics["dispersion"] < 1.3
    assert wild.diagnostics["dispersion"] > 1.8
    assert np.median([wild.products[j].own_se / calm.products[j].own_se for j in calm.products]) > 1.3


def test_demand_fit_of_an_empty_panel_is_empty() -> None:
    # given
    panel = DemandPanel.empty()

    # when
    fit = demand_fit(panel)

    # then
    assert fit.products == {} and fit.categories == {}
    assert fit.day_of_week == (1.0,) * 7
