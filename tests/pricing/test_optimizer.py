import numpy as np
import pytest

from pricing import optimizer
from pricing.elasticity import ProductElasticity
from pricing.optimizer import EXPLORE_SD, PricingInput, price_recommend, what_if


def _estimate(
    elasticity: float = -2.0, sd: float = 0.01, base: float = 10.0, reference: float = 20.0, log_base_se: float = 0.01
) -> ProductElasticity:
    return ProductElasticity(
        product_id=7,
        category_id=1,
        elasticity=elasticity,
        sd=sd,
        lower=elasticity - 1.96 * sd,
        upper=elasticity + 1.96 * sd,
        own_estimate=elasticity,
        own_se=sd,
        pooling_weight=0.1,
        base_units_per_day=base,
        reference_price=reference,
        days_observed=180,
        units_observed=1800.0,
        price_points=6,
        log_base_se=log_base_se,
    )


def _item(**overrides: object) -> PricingInput:
    values: dict = {
        "product_id": 7,
        "current_price": 18.0,
        "unit_cost": 10.0,
        "estimate": _estimate(),
        "low": 12.0,
        "high": 30.0,
    }
    values.update(overrides)
    return PricingInput(**values)


def _recommend(item: PricingInput, seed: int = 1, explore: bool = True) -> object:
    return price_recommend(item, rng=np.random.default_rng(seed), explore=explore)


@pytest.mark.parametrize(("elasticity", "lerner"), [(-2.0, 20.0), (-3.0, 15.0), (-1.5, 30.0)])
def test_price_recommend_finds_the_lerner_price_inside_the_bounds(elasticity: float, lerner: float) -> None:
    # given cost 10: the profit-maximizing price is c·e/(1+e)
    item = _item(estimate=_estimate(elasticity), low=12.0, high=35.0)

    # when
    recommendation = _recommend(item)

    # then
    assert recommendation.proposed_price == pytest.approx(lerner, abs=0.1)
    assert not recommendation.explored


@pytest.mark.parametrize(
    ("elasticity", "low", "high", "current"),
    [(-2.0, 22.0, 26.0, 24.0), (-2.0, 12.0, 15.55, 14.0), (-4.0, 9.99, 40.0, 20.0), (-1.2, 16.333, 19.337, 18.0)],
)
def test_price_recommend_stays_inside_the_range_in_whole_cents(
    elasticity: float, low: float, high: float, current: float
) -> None:
    # given
    item = _item(estimate=_estimate(elasticity), low=low, high=high, current_price=current)

    # when
    proposed = _recommend(item).proposed_price

    # then
    assert low <= proposed <= high
    assert round(proposed, 2) == proposed


def test_price_recommend_goes_to_the_ceiling_when_demand_is_inelastic() -> None:
    # given e = -0.8: every price rise adds profit
    item = _item(estimate=_estimate(-0.8), high=27.5)

    # when
    recommendation = _recommend(item)

    # then
    assert recommendation.proposed_price == 27.5
    assert recommendation.units.expected < 0 < recommendation.profit.lower
    assert "Held at the highest price the guardrails allow (27.50)." in recommendation.reasons


def test_price_recommend_names_the_guardrail_it_is_held_at() -> None:
    # given the optimum (20) is beyond a 10% step limit from 16
    item = _item(current_price=16.0, low=14.4, high=17.6, high_reason="the 10% step limit")

    # when
    recommendation = _recommend(item)

    # then
    assert recommendation.proposed_price == 17.6
    assert "Held at the 10% step limit (17.60)." in recommendation.reasons
    assert recommendation.reasons[0].startswith("Demand falls 2.0% for each 1% price rise (95% interval -2.0 to -2.0)")
    assert "10% rise" in recommendation.reasons[0]


def test_price_recommend_sell_through_sells_the_stock_by_the_horizon() -> None:
    # given 300 units for 28 days at about 10 a day at 20.00
    item = _item(objective="sell_through", inventory=300, horizon_days=28)

    # when
    recommendation = _recommend(item)

    # then the expected horizon sales at the proposal just reach the stock
    at_price = what_if(item, recommendation.proposed_price).units.expected * 4
    a_bit_higher = what_if(item, recommendation.proposed_price + 0.15).units.expected * 4
    assert at_price >= 300 * 0.99
    assert a_bit_higher < 300
    assert "sells the 300 units in stock within 28 days" in recommendation.reasons[1]


def test_price_recommend_sell_through_falls_to_the_floor_when_nothing_clears() -> None:
    # given far more stock than any allowed price can sell
    item = _item(objective="sell_through", inventory=100_000)

    # when
    recommendation = _recommend(item)

    # then
    assert recommendation.proposed_price == 12.0
    assert "short of the 100000 in stock" in recommendation.reasons[1]


def test_price_recommend_raises_the_price_to_ration_scarce_stock() -> None:
    # given the same product with plenty of stock and with 60 units for 28 days of ~280 units of demand
    plenty, scarce = _item(inventory=None), _item(inventory=60)

    # when
    free, rationed = _recommend(plenty), _recommend(scarce)

    # then
    assert rationed.proposed_price > free.proposed_price + 2
    assert any(reason.startswith("Only 60 units left") for reason in rationed.reasons)


def test_price_recommend_cuts_the_price_to_clear_overstock_only_when_it_pays() -> None:
    # given stock for well over a year at today's demand (about 12 units a day)
    elastic, inelastic = _item(inventory=5000), _item(inventory=5000, estimate=_estimate(-0.8), high=25.0)

    # when
    cleared, kept = _recommend(elastic), _recommend(inelastic)

    # then elastic demand is worth chasing with a lower price; inelastic demand is not
    assert cleared.proposed_price < 19.0
    assert any("priced down to clear stock" in reason for reason in cleared.reasons)
    assert kept.proposed_price == 25.0


def test_price_recommend_keeps_the_margin_on_stock_that_sells_within_a_year() -> None:
    # given about five months of stock: far more than the 28-day horizon sells, but not dead stock
    slow_mover = _item(inventory=1800, horizon_days=28)

    # when
    recommendation = _recommend(slow_mover)

    # then the profit-maximizing price, no clearance cut
    assert recommendation.proposed_price == pytest.approx(20.0, abs=0.1)
    assert not any("clear stock" in reason for reason in recommendation.reasons)


def test_price_recommend_never_clears_stock_when_the_merchant_counts_none_as_dead() -> None:
    # given the dead stock of the test above, in a shop that does not cut prices to clear stock
    item = _item(inventory=5000, dead_stock_cover_days=None)

    # when
    recommendation = _recommend(item)

    # then the profit-maximizing price, as without stock
    assert recommendation.proposed_price == pytest.approx(20.0, abs=0.1)
    assert not any("clear stock" in reason for reason in recommendation.reasons)


def test_price_recommend_explores_only_with_a_wide_posterior() -> None:
    # given
    wide, narrow = _item(estimate=_estimate(sd=0.6)), _item(estimate=_estimate(sd=EXPLORE_SD / 2))

    # when
    wide_runs = [_recommend(wide, seed=seed) for seed in range(6)]
    narrow_runs = [_recommend(narrow, seed=seed) for seed in range(6)]
    switched_off = _recommend(wide, explore=False)

    # then
    assert all(run.explored for run in wide_runs)
    wide_prices = [run.proposed_price for run in wide_runs]
    assert max(wide_prices) - min(wide_prices) > 2.0
    assert any("Exploring" in reason for reason in wide_runs[0].reasons)
    assert not any(run.explored for run in narrow_runs)
    narrow_prices = [run.proposed_price for run in narrow_runs]
    assert max(narrow_prices) - min(narrow_prices) < 0.5
    assert not switched_off.explored


def test_price_recommend_is_reproducible_from_the_seed() -> None:
    # given
    item = _item(estimate=_estimate(sd=0.6))

    # when
    first, second = _recommend(item, seed=42), _recommend(item, seed=42)

    # then
    assert first == second


def test_price_recommend_confidence_is_a_coin_flip_at_the_current_price() -> None:
    # given the current price is already the optimum, and a range that allows only the current price
    at_optimum, pinned = _item(current_price=20.0), _item(current_price=18.0, low=18.0, high=18.0)

    # when
    stay, forced = _recommend(at_optimum), _recommend(pinned)

    # then
    assert stay.proposed_price == 20.0
    assert stay.confidence == 0.5
    assert "already close to the best" in stay.reasons[0]
    assert forced.proposed_price == 18.0 and forced.confidence == 0.5
    assert forced.units.expected == pytest.approx(0.0)


def test_price_recommend_is_confident_when_the_move_clearly_pays() -> None:
    # given current price 12 against a clear optimum at 20
    item = _item(current_price=12.0)

    # when
    recommendation = _recommend(item)

    # then
    assert recommendation.confidence > 0.95
    assert recommendation.profit.lower > 0
    assert recommendation.units.upper < 0
    assert recommendation.revenue.lower <= recommendation.revenue.expected <= recommendation.revenue.upper


def test_price_recommend_falls_back_to_revenue_without_a_cost() -> None:
    # given no cost and e = -1.5: revenue rises as the price falls
    item = _item(unit_cost=None, estimate=_estimate(-1.5))

    # when
    recommendation = _recommend(item)

    # then
    assert recommendation.proposed_price == 12.0
    assert "No cost on file: optimizing revenue instead of profit." in recommendation.reasons
    assert recommendation.profit == recommendation.revenue


def test_price_recommend_mentions_competitor_prices() -> None:
    # given
    item = _item(competitor_price=23.5)

    # when
    recommendation = _recommend(item)

    # then
    assert "Competitors sell at 23.50." in recommendation.reasons
    assert 2 <= len(recommendation.reasons) <= 4


def test_price_recommend_explains_positive_elasticity() -> None:
    # given
    item = _item(estimate=_estimate(0.3))

    # when
    recommendation = _recommend(item)

    # then
    assert recommendation.proposed_price == 30.0
    assert recommendation.reasons[0].startswith("Sales have not fallen when the price rose")


def test_price_recommend_curve_spans_the_range_and_the_current_price() -> None:
    # given a current price below the feasible range
    item = _item(current_price=10.0, low=12.0, high=30.0)

    # when
    curve = _recommend(item).curve

    # then
    assert len(curve) == 25
    assert curve[0].price == 10.0 and curve[-1].price == 30.0
    assert all(point.profit_lower <= point.profit <= point.profit_upper for point in curve)
    assert max(curve, key=lambda point: point.profit).price == pytest.approx(20.0, abs=1.0)
    assert curve[0].units > curve[-1].units


def test_price_recommend_rejects_an_unknown_objective() -> None:
    # given
    item = _item(objective="market_share")

    # when / then
    with pytest.raises(ValueError, match="market_share"):
        _recommend(item)


def test_what_if_intervals_contain_the_mean_and_widen_with_uncertainty() -> None:
    # given
    sure, unsure = _item(estimate=_estimate(sd=0.05)), _item(estimate=_estimate(sd=0.5, log_base_se=0.3))

    # when
    narrow, wide = what_if(sure, 24.0), what_if(unsure, 24.0)

    # then
    for outcome in (narrow, wide):
        for impact in (outcome.units, outcome.revenue, outcome.profit):
            assert impact.lower < impact.expected < impact.upper
    assert wide.units.upper - wide.units.lower > 3 * (narrow.units.upper - narrow.units.lower)
    # 7 days · 10 a day · (24/20)^-2 ≈ 48.6 units a week
    assert narrow.units.expected == pytest.approx(7 * 10 * (24 / 20) ** -2, rel=0.02)
    assert narrow.profit.expected == pytest.approx(narrow.units.expected * 14.0, rel=1e-9)
    assert narrow.revenue.expected == pytest.approx(narrow.units.expected * 24.0, rel=1e-9)


def test_what_if_is_reproducible_and_uses_the_weekday_pattern() -> None:
    # given a horizon starting on a weekend-heavy pattern: a week averages the factors
    pattern = (0.5, 0.5, 0.5, 0.5, 1.0, 2.0, 2.0)
    item = _item(day_of_week=pattern, estimate=_estimate(sd=0.05))

    # when
    first, second = what_if(item, 20.0, seed=3), what_if(item, 20.0, seed=3)

    # then
    assert first == second
    assert first.units.expected == pytest.approx(7 * 10 * np.mean(pattern), rel=0.02)


@pytest.mark.parametrize(
    ("inventory", "objective"), [(None, "profit"), (150, "profit"), (900, "profit"), (150, "revenue")]
)
def test_closed_form_expected_objective_matches_the_posterior_draws(inventory: int | None, objective: str) -> None:
    # given a wide posterior on both the elasticity and the demand level
    item = _item(estimate=_estimate(-2.0, sd=0.4, log_base_se=0.3), inventory=inventory, objective=objective)
    prices = np.linspace(12.0, 30.0, 7)
    draws = optimizer._posterior_draws(item.estimate, np.random.default_rng(0), 200_000)

    # when
    closed_form = optimizer._expected_objective(
        item, objective, prices, optimizer._Belief.posterior(item.estimate), 280
    )
    simulated = optimizer._objective(item, objective, prices, draws, 280).mean(axis=0)

    # then
    assert closed_form == pytest.approx(simulated, rel=0.01)


def test_price_recommend_sell_through_without_stock_optimizes_profit() -> None:
    # given
    item = _item(objective="sell_through", inventory=None)

    # when
    recommendation = _recommend(item)

    # then
    assert recommendation.proposed_price == pytest.approx(20.0, abs=0.1)
    assert "No stock level on file: optimizing profit instead of sell-through." in recommendation.reasons


@pytest.mark.parametrize("price", [0.0, -5.0, float("nan")])
def test_what_if_rejects_a_price_that_is_not_positive(price: float) -> None:
    # given
    item = _item()

    # when / then
    with pytest.raises(ValueError, match="positive"):
        what_if(item, price)
