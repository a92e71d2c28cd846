from datetime import date

import numpy as np
import pytest

from pricing.evaluation import simulated
from pricing.evaluation.simulated import (
    StudyGuardrails,
    oracle_prices,
    profit_and_gradient,
    simulated_pricing_study,
)
from revopt.simulator.world import World, WorldConfig

SMALL_STUDY = {"n_products": 16, "n_categories": 3, "sessions_per_day": 2500, "weeks": 6, "draws": 100}


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(
        WorldConfig(seed=5, n_sessions=2000, days=28, n_products=20, n_categories=3, start_date=date(2026, 1, 5))
    )


@pytest.fixture(scope="module")
def small_report():
    return simulated_pricing_study(seed=1, **SMALL_STUDY)


def test_profit_gradient_matches_finite_differences(world):
    # given: prices scattered around list price
    listings = world.default_listings()
    log_prices = np.log(world.list_price) + np.random.default_rng(0).normal(0.0, 0.1, size=len(world.list_price))

    # when
    profit, gradient = profit_and_gradient(world, log_prices, listings)

    # then
    assert profit == pytest.approx(world.expected_profit(np.exp(log_prices), listings))
    step = 1e-6
    for k in range(len(log_prices)):
        shift = np.zeros(len(log_prices))
        shift[k] = step
        numeric = (
            profit_and_gradient(world, log_prices + shift, listings)[0]
            - profit_and_gradient(world, log_prices - shift, listings)[0]
        ) / (2 * step)
        assert gradient[k] == pytest.approx(numeric, abs=1e-8)


def test_oracle_stays_in_bounds_and_beats_list_and_random_prices(world):
    # given
    listings = world.default_listings()
    low, high = world.list_price * 0.7, world.list_price * 1.5

    # when
    oracle = oracle_prices(world, low=low, high=high, listings=listings, starts=[world.list_price])

    # then
    assert (oracle >= low - 1e-9).all() and (oracle <= high + 1e-9).all()
    best = world.expected_profit(oracle, listings)
    assert best > world.expected_profit(world.list_price, listings)
    rng = np.random.default_rng(1)
    for _ in range(50):
        assert best >= world.expected_profit(rng.uniform(low, high), listings)


def test_oracle_is_a_local_maximum_product_by_product(world):
    # given
    listings = world.default_listings()
    low, high = world.list_price * 0.7, world.list_price * 1.5
    oracle = oracle_prices(world, low=low, high=high, listings=listings, starts=[world.list_price, high])
    best = world.expected_profit(oracle, listings)

    # when: each price alone moves 1% either way (inside the bounds)
    moved = []
    for k in range(len(oracle)):
        for factor in (0.99, 1.01):
            prices = oracle.copy()
            prices[k] = np.clip(prices[k] * factor, low[k], high[k])
            moved.append(world.expected_profit(prices, listings))

    # then
    assert max(moved) <= best + 1e-12


def test_small_study_engine_beats_static_and_the_oracle_beats_both(small_report):
    # then
    final = small_report.weeks[-1].engine_profit
    assert final > small_report.static_profit
    assert small_report.oracle_profit >= final
    assert small_report.oracle_profit >= small_report.static_profit
    assert small_report.oracle_profit >= small_report.learned_profit > small_report.static_profit
    assert all(week.engine_profit <= small_report.oracle_profit for week in small_report.weeks)
    assert small_report.oracle_beats_every_vector
    assert small_report.lift_over_static > 0


def test_small_study_report_shape(small_report):
    # then: a row per week, the first two at list prices, then the engine
    assert [week.week for week in small_report.weeks] == [1, 2, 3, 4, 5, 6]
    assert [week.engine_active for week in small_report.weeks] == [False, False, True, True, True, True]
    assert small_report.weeks[0].engine_profit == pytest.approx(small_report.static_profit)
    assert small_report.weeks[2].changed > 0
    curve = small_report.ratio_curve()
    assert len(curve) == 6 and curve[0][1] == pytest.approx(small_report.static_ratio)
    checks = small_report.checks()
    assert [len(row) for row in checks] == [4] * len(checks)
    assert {row[0] for row in checks} >= {"setup", "static (list prices) profit / oracle"}
    assert 0.0 <= small_report.coverage <= 1.0
    for product in small_report.products:
        assert 0.7 * product.list_price - 0.01 <= product.final_price <= 1.5 * product.list_price + 0.01
        assert product.lower is None or product.lower <= product.estimate <= product.upper


def test_study_panel_follows_the_weekday_traffic_and_weekly_prices(monkeypatch):
    # given: the panels the engine is fitted on are captured
    panels = []
    real_fit = simulated.demand_fit

    def capture(panel, **kwargs):
        panels.append(panel)
        return real_fit(panel, **kwargs)

    monkeypatch.setattr(simulated, "demand_fit", capture)

    # when
    simulated_pricing_study(seed=2, n_products=8, n_categories=2, sessions_per_day=1000, weeks=4, stockout_rate=0.2)

    # then: refits at the end of weeks 2, 3 and 4 (the last one for the learned prices), each on the whole history
    assert [len(np.unique(panel.day)) for panel in panels] == [14, 21, 28]
    panel = panels[-1]
    weekdays = (panel.day - panel.day.min()) % 7
    weekday_traffic = {int(weekday): traffic for weekday, traffic in zip(weekdays, panel.traffic, strict=True)}
    assert weekday_traffic[5] > weekday_traffic[0] > weekday_traffic[1]
    assert 0.1 < panel.stocked_out.mean() < 0.3
    first_two_weeks = panel.day < panel.day.min() + 14
    for product in np.unique(panel.product_id):
        prices = panel.price[(panel.product_id == product) & first_two_weeks]
        assert len(np.unique(prices)) == 1


def test_study_is_deterministic_from_the_seed():
    # given
    options = {"n_products": 8, "n_categories": 2, "sessions_per_day": 1000, "weeks": 3, "draws": 50}

    # when
    first = simulated_pricing_study(seed=4, **options)
    second = simulated_pricing_study(seed=4, **options)

    # then
    assert first == second


def test_study_guardrails_are_described_and_validated():
    # then
    assert StudyGuardrails().describe() == "price in [0.70, 1.50] × list price, at most ±15% per weekly step"
    with pytest.raises(ValueError, match="weeks"):
        simulated_pricing_study(weeks=2, baseline_weeks=2)
