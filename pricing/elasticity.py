"""Own-price elasticity per product from daily demand, partially pooled toward the category.

Pure (no Django). The model, per product j and day t:

    units_jt ~ Poisson(traffic_t · exp(a_j + e_j · log(price_jt / ref_j) + dow_t + season_t
                                       + c · log(competitor_ratio_jt) + f · promoted_jt))

fitted by (pseudo-)maximum likelihood, the standard way to fit a log-log (constant-elasticity) demand
curve when many days sell nothing. A stocked-out day contributes P(units ≥ observed) (censored demand).
Shared coefficients (day of week, seasonality, competitor ratio, promotion) are estimated across
products; each product's elasticity e_j is then shrunk toward its category's mean by empirical Bayes
(normal-normal, between-product spread estimated per category), so products with little price
variation borrow strength from their category and every estimate carries an interval.

Implementation choices: the fit is a vectorised backfitting loop (per-product 2×2 Newton steps from bincount
sums, then a Newton step for the shared controls; exact censored likelihood, not EM). Besides the controls
above it controls for the category's other prices (substitution: when a category's prices move together,
leaving it out biases every own elasticity in the category alike). Variances are scaled by the pooled
Pearson dispersion when above 1. The pooling integrates over the between-product spread (half-normal prior,
REML likelihood on a grid) instead of plugging in a DerSimonian–Laird point estimate, which collapses to 0
on noisy data and gives intervals that miss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from .demand import DemandPanel

# Where nothing is known (a category without any informative product), the prior the shrinkage falls back
# to: typical retail elasticities sit between -0.5 and -3.
GLOBAL_PRIOR_MEAN = -1.5
GLOBAL_PRIOR_SD = 1.0


@dataclass(frozen=True)
class ProductElasticity:
    product_id: int
    category_id: int
    elasticity: float  # posterior mean
    sd: float  # posterior standard deviation
    lower: float  # interval at the fit's level (95% by default)
    upper: float
    own_estimate: float | None  # the product's own estimate before pooling (None without price variation)
    own_se: float | None
    pooling_weight: float  # share of the category prior: 0 = own data only, 1 = prior only
    base_units_per_day: float  # expected units per day at reference_price on an average day of the history
    reference_price: float  # the product's median price over the history
    days_observed: int
    units_observed: float
    price_points: int  # distinct prices seen (rounded to the cent)
    # Standard error of log(base_units_per_day): the demand level's own uncertainty.
    log_base_se: float = 0.0


@dataclass(frozen=True)
class CategoryPrior:
    category_id: int
    mean: float
    spread: float  # between-product standard deviation (tau)
    products: int  # products with an own estimate that informed it


@dataclass(frozen=True)
class DemandFit:
    products: dict[int, ProductElasticity]
    categories: dict[int, CategoryPrior]
    # Multiplicative demand factor per weekday, Monday first, averaging 1.
    day_of_week: tuple[float, float, float, float, float, float, float]
    competitor_coefficient: float  # on log(price / lowest competitor price)
    competitor_se: float
    promotion_coefficient: float  # on the promoted flag (log scale)
    promotion_se: float
    level: float = 0.95
    diagnostics: dict = field(default_factory=dict)


# Shared controls: 6 day-of-week contrasts (Sunday = minus their sum), 2 Fourier pairs on the annual cycle,
# log competitor ratio, a "competitor price known" indicator, the promotion flag and the category price index
# (mean log relative price of the category's other products that day).
_DOW_COLUMNS = 6
_SEASON_COLUMNS = 4
_COMPETITOR_COLUMN = _DOW_COLUMNS + _SEASON_COLUMNS
_KNOWN_COLUMN = _COMPETITOR_COLUMN + 1
_PROMOTION_COLUMN = _KNOWN_COLUMN + 1
_CATEGORY_PRICE_COLUMN = _PROMOTION_COLUMN + 1
_SHARED_COLUMNS = _CATEGORY_PRICE_COLUMN + 1
# Ridge precision on the seasonal coefficients (prior sd 0.5 on the log scale): a short history cannot tell
# an annual cycle from a trend, so the Fourier terms only move as far as the data clearly ask.
_SEASON_RIDGE = 4.0
_SHARED_RIDGE = 1e-6
# Very weak priors that keep the per-product Newton steps finite when a product never sold (its intercept
# would run off to -inf) or sold only at one end of its price range; they are invisible next to real data.
_INTERCEPT_PRIOR_SD = 10.0
_ELASTICITY_PRIOR_SD = 10.0
_MIN_LOG_PRICE_SD = 0.005
_MAX_STEP = 3.0
# Half-normal prior scale on the between-product spread of elasticities within a category, and its grid.
TAU_PRIOR_SCALE = 0.5
_TAU_GRID = 61
_MAX_SWEEPS = 40
_TOLERANCE = 1e-7
_CHUNK = 262_144


def _median_price(price: np.ndarray, product_index: np.ndarray, products: int) -> np.ndarray:
    """The median price per product, vectorised: sort by (product, price) and read the middle rows."""
    order = np.lexsort((price, product_index))
    sorted_price = price[order]
    counts = np.bincount(product_index, minlength=products)
    starts = np.cumsum(counts) - counts
    low = sorted_price[starts + (counts - 1) // 2]
    high = sorted_price[starts + counts // 2]
    return 0.5 * (low + high)


def _category_price_index(panel: DemandPanel, log_price: np.ndarray) -> np.ndarray:
    """Mean log relative price of the other products in the row's category on that day (0 when none).

    Shoppers substitute within a category, so a product's sales also move with its neighbours' prices;
    when a category's prices move together, leaving this out would bias every own elasticity in it alike.
    """
    day_span = int(panel.day.max() - panel.day.min()) + 1
    key = (panel.category_id - panel.category_id.min()) * day_span + (panel.day - panel.day.min())
    _, cell = np.unique(key, return_inverse=True)
    totals = np.bincount(cell, log_price)[cell]
    counts = np.bincount(cell)[cell]
    others = np.where(counts > 1, (totals - log_price) / np.maximum(counts - 1, 1), 0.0)
    return np.where(panel.category_id >= 0, others, 0.0)


def _shared_design(panel: DemandPanel, log_price: np.ndarray) -> np.ndarray:
    """The shared controls, one row per control and one column per panel row (contiguous per control)."""
    n = len(panel)
    design = np.zeros((_SHARED_COLUMNS, n))
    weekday = (panel.day - 1) % 7  # date.fromordinal(1) is a Monday
    rows = np.arange(n)
    weekday_rows = weekday < 6
    design[weekday[weekday_rows], rows[weekday_rows]] = 1.0
    design[:_DOW_COLUMNS, ~weekday_rows] = -1.0
    phase = 2.0 * np.pi * (panel.day % 365.25) / 365.25
    design[6] = np.sin(phase)
    design[7] = np.cos(phase)
    design[8] = np.sin(2.0 * phase)
    design[9] = np.cos(2.0 * phase)
    known = np.isfinite(panel.competitor_ratio) & (panel.competitor_ratio > 0)
    design[_COMPETITOR_COLUMN, known] = np.log(panel.competitor_ratio[known])
    design[_KNOWN_COLUMN] = known
    design[_PROMOTION_COLUMN] = panel.promoted
    design[_CATEGORY_PRICE_COLUMN] = _category_price_index(panel, log_price)
    return design


def _score(
    eta: np.ndarray, units: np.ndarray, censored: np.ndarray, log_factorial: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Per-row gradient and curvature of the log-likelihood in the linear predictor, and its total.

    Uncensored rows are Poisson: gradient y - mu, curvature mu. A censored row with y ≥ 1 contributes
    log P(Y ≥ y); its gradient is mu·pmf(y-1)/P(Y ≥ y) (= E[Y | Y ≥ y] - mu, the hazard times mu) and its
    observed information g·(g + mu - y). Censored rows with y = 0 carry no information.
    """
    mu = np.exp(np.minimum(eta, 50.0))
    gradient = units - mu
    weight = mu.copy()
    row_loglik = units * eta - mu - log_factorial
    if censored.any():
        idx = np.flatnonzero(censored)
        y, m = units[idx], mu[idx]
        positive = y > 0
        g = np.zeros_like(m)
        info = np.zeros_like(m)
        loglik = np.zeros_like(m)
        if positive.any():
            yp, mp = y[positive], m[positive]
            survival = special.gammainc(yp, mp)  # P(Y >= y) for a Poisson(mu)
            log_pmf = (yp - 1.0) * np.log(mp) - mp - special.gammaln(yp)
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                gp = mp * np.exp(log_pmf - np.log(survival))
            # E[Y | Y ≥ y] lies in [y, y + mu]: where the survival underflows, the bound y - mu is the limit.
            gp = np.where(np.isfinite(gp), gp, yp)
            gp = np.clip(gp, np.maximum(yp - mp, 0.0), yp)
            g[positive] = gp
            info[positive] = np.maximum(gp * (gp + mp - yp), 1e-12)
            loglik[positive] = np.log(np.maximum(survival, 1e-300))
        gradient[idx] = g
        weight[idx] = info
        row_loglik[idx] = loglik
    return gradient, weight, float(row_loglik.sum()), mu


def _shared_curvature(design: np.ndarray, weight: np.ndarray) -> np.ndarray:
    curvature = np.zeros((design.shape[0], design.shape[0]))
    for start in range(0, len(weight), _CHUNK):
        block = design[:, start : start + _CHUNK]
        curvature += (block * weight[start : start + _CHUNK]) @ block.T
    return curvature


@dataclass(frozen=True)
class _Pooled:
    mean: np.ndarray  # posterior mean per product
    variance: np.ndarray
    pooling_weight: np.ndarray
    group_mean: np.ndarray  # prior mean per group
    spread: float  # posterior mean of tau


def _pool(estimates: np.ndarray, variances: np.ndarray, group: np.ndarray, groups: int, has_own: np.ndarray) -> _Pooled:
    """Normal-normal partial pooling of `estimates` toward their group's mean, averaged over the spread tau.

    Each group's mean has a flat prior; the between-product spread tau, shared by the groups, gets a
    half-normal prior (scale TAU_PRIOR_SCALE) and is integrated over a grid with its restricted (REML)
    likelihood. Plugging in a point estimate instead (DerSimonian–Laird) often gives tau = 0 when own
    estimates are noisy, which pools every product onto the mean with intervals far too narrow; averaging
    over tau keeps the intervals honest. Only products with `has_own` inform the groups; every product gets a
    posterior (those without an own estimate get their group's prior).
    """
    taus = np.linspace(0.0, 4.0 * TAU_PRIOR_SCALE, _TAU_GRID)
    informed_group = group[has_own]
    y, v = estimates[has_own], variances[has_own]
    log_posterior = np.empty(len(taus))
    group_means = np.empty((len(taus), groups))
    group_mean_vars = np.empty((len(taus), groups))
    for index, tau in enumerate(taus):
        weights = 1.0 / (v + tau**2)
        weight_sums = np.bincount(informed_group, weights, groups)
        means = np.bincount(informed_group, weights * y, groups) / np.maximum(weight_sums, 1e-300)
        residual = float(np.sum(weights * (y - means[informed_group]) ** 2))
        log_posterior[index] = (
            -0.5 * float(np.sum(np.log(v + tau**2)))
            - 0.5 * float(np.sum(np.log(weight_sums[weight_sums > 0])))
            - 0.5 * residual
            - 0.5 * (tau / TAU_PRIOR_SCALE) ** 2
        )
        group_means[index] = means
        group_mean_vars[index] = 1.0 / np.maximum(weight_sums, 1e-300)
    tau_weights = np.exp(log_posterior - log_posterior.max())
    tau_weights /= tau_weights.sum()

    prior_mean = group_means[:, group]  # taus × products
    prior_var = taus[:, None] ** 2 + group_mean_vars[:, group]
    own_precision = np.where(has_own, 1.0 / variances, 0.0)[None, :]
    precision = own_precision + 1.0 / prior_var
    means = (own_precision * np.where(has_own, estimates, 0.0)[None, :] + prior_mean / prior_var) / precision
    mixed_mean = tau_weights @ means
    mixed_variance = tau_weights @ (1.0 / precision + means**2) - mixed_mean**2
    return _Pooled(
        mean=mixed_mean,
        variance=np.maximum(mixed_variance, 0.0),
        pooling_weight=tau_weights @ ((1.0 / prior_var) / precision),
        group_mean=tau_weights @ group_means,
        spread=float(tau_weights @ taus),
    )


def _empty_fit(level: float) -> DemandFit:
    return DemandFit(
        products={},
        categories={},
        day_of_week=(1.0,) * 7,
        competitor_coefficient=0.0,
        competitor_se=0.0,
        promotion_coefficient=0.0,
        promotion_se=0.0,
        level=level,
        diagnostics={"rows": 0, "censored_rows": 0, "sweeps": 0, "products": 0},
    )


def demand_fit(
    panel: DemandPanel,
    *,
    level: float = 0.95,
    prior_mean: float = GLOBAL_PRIOR_MEAN,
    prior_sd: float = GLOBAL_PRIOR_SD,
    progress: Callable[[float], None] | None = None,
) -> DemandFit:
    """Fit the demand model to a panel. `progress(share)` is called as the fit advances (0 → 1).

    Backfitting: each sweep takes one Newton step for every product's (intercept, elasticity) at once
    (2×2 systems solved in closed form from bincount sums), then one Newton step for the shared controls,
    until the penalised log-likelihood changes by less than 1e-7 relative. Censored days enter through
    their exact likelihood log P(Y ≥ y) (exact Newton, not EM). Variances come from each product's 2×2
    observed information scaled by the pooled Pearson dispersion when it exceeds 1.
    """
    if len(panel) == 0:
        if progress is not None:
            progress(1.0)
        return _empty_fit(level)

    product_ids, product_index = np.unique(panel.product_id, return_inverse=True)
    products = len(product_ids)
    category_of = np.empty(products, dtype=np.int64)
    category_of[product_index] = panel.category_id
    units = np.asarray(panel.units, dtype=float)
    price = np.asarray(panel.price, dtype=float)
    traffic = np.asarray(panel.traffic, dtype=float)
    censored = np.asarray(panel.stocked_out, dtype=bool)
    log_exposure = np.log(np.maximum(traffic, 1e-12))
    log_factorial = special.gammaln(units + 1.0)

    reference_price = _median_price(price, product_index, products)
    log_price = np.log(price) - np.log(reference_price)[product_index]
    days = np.bincount(product_index, minlength=products).astype(float)
    mean_log_price = np.bincount(product_index, log_price, products) / days
    log_price_var = np.bincount(product_index, log_price**2, products) / days - mean_log_price**2
    varied = np.sqrt(np.maximum(log_price_var, 0.0)) >= _MIN_LOG_PRICE_SD

    # Centred within each product, the controls are orthogonal to the product intercepts, so the two
    # backfitting blocks barely interact and the sweeps converge in a handful of steps.
    design = _shared_design(panel, log_price)
    for column in range(_SHARED_COLUMNS):
        design[column] -= (np.bincount(product_index, design[column], products) / days)[product_index]
    ridge = np.full(_SHARED_COLUMNS, _SHARED_RIDGE)
    ridge[_DOW_COLUMNS : _DOW_COLUMNS + _SEASON_COLUMNS] = _SEASON_RIDGE
    intercept_precision = 1.0 / _INTERCEPT_PRIOR_SD**2
    elasticity_precision = 1.0 / _ELASTICITY_PRIOR_SD**2

    unit_totals = np.bincount(product_index, units, products)
    traffic_totals = np.bincount(product_index, traffic, products)
    intercept_anchor = float(np.log((units.sum() + 0.5) / traffic.sum()))
    intercept = np.log((unit_totals + 0.5) / traffic_totals)
    elasticity = np.zeros(products)
    shared = np.zeros(_SHARED_COLUMNS)
    shared_eta = np.zeros(len(panel))

    def product_sums(gradient: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, ...]:
        grad_a = np.bincount(product_index, gradient, products) - intercept_precision * (intercept - intercept_anchor)
        grad_e = np.bincount(product_index, gradient * log_price, products) - elasticity_precision * elasticity
        weighted = weight * log_price
        h_aa = np.bincount(product_index, weight, products) + intercept_precision
        h_ae = np.bincount(product_index, weighted, products)
        h_ee = np.bincount(product_index, weighted * log_price, products) + elasticity_precision
        grad_e[~varied], h_ae[~varied], h_ee[~varied] = 0.0, 0.0, 1.0
        return grad_a, grad_e, h_aa, h_ae, h_ee

    previous = -np.inf
    penalized = -np.inf
    sweeps = 0
    converged = False
    for sweep in range(1, _MAX_SWEEPS + 1):
        sweeps = sweep
        # (A) every product's intercept and elasticity, given the shared controls.
        eta = log_exposure + shared_eta + intercept[product_index] + elasticity[product_index] * log_price
        gradient, weight, _, _ = _score(eta, units, censored, log_factorial)
        grad_a, grad_e, h_aa, h_ae, h_ee = product_sums(gradient, weight)
        determinant = h_aa * h_ee - h_ae**2
        intercept += np.clip((h_ee * grad_a - h_ae * grad_e) / determinant, -_MAX_STEP, _MAX_STEP)
        elasticity += np.clip((h_aa * grad_e - h_ae * grad_a) / determinant, -_MAX_STEP, _MAX_STEP)
        # (B) the shared controls, given the products.
        eta = log_exposure + shared_eta + intercept[product_index] + elasticity[product_index] * log_price
        gradient, weight, loglik, _ = _score(eta, units, censored, log_factorial)
        shared_gradient = design @ gradient - ridge * shared
        curvature = _shared_curvature(design, weight) + np.diag(ridge)
        step = np.linalg.solve(curvature, shared_gradient)
        largest = float(np.max(np.abs(step)))
        if largest > 1.0:
            step /= largest
        penalized = (
            loglik
            - 0.5 * intercept_precision * float(np.sum((intercept - intercept_anchor) ** 2))
            - 0.5 * elasticity_precision * float(np.sum(elasticity**2))
            - 0.5 * float(np.sum(ridge * shared**2))
        )
        shared += step
        shared_eta = shared @ design
        if progress is not None:
            progress(min(sweep / _MAX_SWEEPS, 0.99))
        if abs(penalized - previous) <= _TOLERANCE * abs(penalized) and largest < 1e-4:
            converged = True
            break
        previous = penalized

    eta = log_exposure + shared_eta + intercept[product_index] + elasticity[product_index] * log_price
    gradient, weight, loglik, mu = _score(eta, units, censored, log_factorial)
    _, _, h_aa, h_ae, h_ee = product_sums(gradient, weight)
    determinant = h_aa * h_ee - h_ae**2

    uncensored = ~censored
    parameters = products + int(varied.sum()) + _SHARED_COLUMNS
    degrees = int(uncensored.sum()) - parameters
    pearson = float(np.sum((units[uncensored] - mu[uncensored]) ** 2 / np.maximum(mu[uncensored], 1e-12)))
    dispersion = pearson / degrees if degrees > 0 else 1.0
    scale = max(dispersion, 1.0)

    own_var = scale * h_aa / determinant
    log_base_var = np.where(varied, scale * h_ee / determinant, scale / h_aa)
    shared_cov = scale * np.linalg.inv(_shared_curvature(design, weight) + np.diag(ridge))

    log_dow = np.append(shared[:_DOW_COLUMNS], -shared[:_DOW_COLUMNS].sum())
    dow_factors = np.exp(log_dow)
    dow_factors /= dow_factors.mean()
    calendar_eta = shared[: _DOW_COLUMNS + _SEASON_COLUMNS] @ design[: _DOW_COLUMNS + _SEASON_COLUMNS]
    average_day = np.bincount(product_index, traffic * np.exp(calendar_eta), products) / days
    base_units = np.exp(intercept) * average_day

    own_se = np.sqrt(own_var)
    informative = varied & np.isfinite(own_se) & (own_se < prior_sd)
    # A category with at least 3 informative products gets its own mean, with the spread around category
    # means shared by those categories; other products (and uncategorised ones) borrow the merchant-wide
    # mean and spread, which include the between-category variation; a merchant with fewer than 3
    # informative products falls back to the global prior.
    category_ids, category_index = np.unique(category_of, return_inverse=True)
    informed_per_category = np.bincount(category_index[informative], minlength=len(category_ids))
    own_category = (informed_per_category >= 3) & (category_ids >= 0)
    prior_precision = 1.0 / prior_sd**2
    if informative.sum() >= 3:
        shop = _pool(elasticity, own_var, np.zeros(products, dtype=np.int64), 1, varied)
        shop_mean, shop_spread = float(shop.group_mean[0]), shop.spread
        posterior_mean, posterior_var, pooling_weight = shop.mean, shop.variance, shop.pooling_weight
    else:
        shop_mean, shop_spread = prior_mean, prior_sd
        own_precision = np.where(varied, 1.0 / own_var, 0.0)
        posterior_var = 1.0 / (own_precision + prior_precision)
        posterior_mean = posterior_var * (
            own_precision * np.where(varied, elasticity, 0.0) + prior_precision * prior_mean
        )
        pooling_weight = prior_precision * posterior_var
    category_means = np.full(len(category_ids), shop_mean)
    category_spread = shop_spread
    if own_category.any():
        in_own = own_category[category_index]
        own_index = np.cumsum(own_category)[category_index] - 1
        within = _pool(elasticity[in_own], own_var[in_own], own_index[in_own], int(own_category.sum()), varied[in_own])
        posterior_mean, posterior_var, pooling_weight = (
            posterior_mean.copy(),
            posterior_var.copy(),
            pooling_weight.copy(),
        )
        posterior_mean[in_own], posterior_var[in_own] = within.mean, within.variance
        pooling_weight[in_own] = within.pooling_weight
        category_means[own_category] = within.group_mean
        category_spread = within.spread
    categories = {
        int(category): CategoryPrior(
            category_id=int(category),
            mean=float(category_means[index]),
            spread=float(category_spread if own_category[index] else shop_spread),
            products=int(informed_per_category[index]),
        )
        for index, category in enumerate(category_ids)
    }
    posterior_sd = np.sqrt(posterior_var)
    z = float(stats.norm.ppf(0.5 + level / 2.0))

    cents = np.round(price * 100.0).astype(np.int64)
    order = np.lexsort((cents, product_index))
    new_point = np.ones(len(order), dtype=bool)
    new_point[1:] = (np.diff(product_index[order]) != 0) | (np.diff(cents[order]) != 0)
    price_points = np.bincount(product_index[order][new_point], minlength=products)

    estimates: dict[int, ProductElasticity] = {}
    for j in range(products):
        has_own = bool(varied[j])
        estimates[int(product_ids[j])] = ProductElasticity(
            product_id=int(product_ids[j]),
            category_id=int(category_of[j]),
            elasticity=float(posterior_mean[j]),
            sd=float(posterior_sd[j]),
            lower=float(posterior_mean[j] - z * posterior_sd[j]),
            upper=float(posterior_mean[j] + z * posterior_sd[j]),
            own_estimate=float(elasticity[j]) if has_own else None,
            own_se=float(own_se[j]) if has_own else None,
            pooling_weight=float(pooling_weight[j]),
            base_units_per_day=float(base_units[j]),
            reference_price=float(reference_price[j]),
            days_observed=int(days[j]),
            units_observed=float(unit_totals[j]),
            price_points=int(price_points[j]),
            log_base_se=float(np.sqrt(log_base_var[j])),
        )
    if progress is not None:
        progress(1.0)
    return DemandFit(
        products=estimates,
        categories=categories,
        day_of_week=tuple(float(f) for f in dow_factors),  # type: ignore[arg-type]
        competitor_coefficient=float(shared[_COMPETITOR_COLUMN]),
        competitor_se=float(np.sqrt(shared_cov[_COMPETITOR_COLUMN, _COMPETITOR_COLUMN])),
        promotion_coefficient=float(shared[_PROMOTION_COLUMN]),
        promotion_se=float(np.sqrt(shared_cov[_PROMOTION_COLUMN, _PROMOTION_COLUMN])),
        level=level,
        diagnostics={
            "sweeps": sweeps,
            "converged": converged,
            "log_likelihood": float(loglik),
            "dispersion": float(dispersion),
            "rows": len(panel),
            "censored_rows": int(censored.sum()),
            "products": products,
            "products_with_own_estimate": int(varied.sum()),
            # Response to the mean relative price of the other products in the category (substitution: > 0).
            "category_price_coefficient": float(shared[_CATEGORY_PRICE_COLUMN]),
            "category_price_se": float(np.sqrt(shared_cov[_CATEGORY_PRICE_COLUMN, _CATEGORY_PRICE_COLUMN])),
            "seasonality": "two Fourier pairs on the annual cycle (ridge, prior sd 0.5)",
        },
    )
