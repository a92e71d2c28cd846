import json
from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from revopt.simulator.world import ELASTICITY_BOUNDS, Incentive, ShopperState, World, WorldConfig

CONFIG = WorldConfig(seed=11, n_sessions=2000, n_products=150, days=30, start_date=date(2026, 3, 2))


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(CONFIG)


def test_same_seed_gives_the_same_world(world):
    # given / when
    again = World.generate(CONFIG)

    # then
    assert json.dumps(again.to_ground_truth()) == json.dumps(world.to_ground_truth())


def test_another_seed_gives_another_world(world):
    # given / when
    other = World.generate(replace(CONFIG, seed=12))

    # then
    assert not np.allclose(other.products["latent"], world.products["latent"])
    assert other.coefficients.outside_utility != world.coefficients.outside_utility


def test_ground_truth_is_json_and_rebuilds_the_same_world(world):
    # given
    ground_truth = json.loads(json.dumps(world.to_ground_truth()))

    # when
    rebuilt = World.from_ground_truth(ground_truth)

    # then
    assert rebuilt.to_ground_truth() == ground_truth
    shown = world.default_listings()[0]
    np.testing.assert_array_equal(
        rebuilt.purchase_probabilities(np.arange(5), shown, rebuilt.list_price[shown]),
        world.purchase_probabilities(np.arange(5), shown, world.list_price[shown]),
    )
    assert len(ground_truth["products"]) == 150
    assert len(ground_truth["shoppers"]) == 500
    assert {"sku", "price_coef", "latent", "ref_price", "unit_cost"} <= set(ground_truth["products"][0])


@pytest.mark.parametrize("price_level", ["ref_price", "list_price"])
def test_true_elasticities_lie_between_minus_three_and_minus_half(world, price_level):
    # given
    prices = getattr(world, price_level)

    # when
    elasticity = world.elasticities(prices)

    # then
    shown = ~np.isnan(elasticity)
    assert shown.sum() >= 0.9 * len(prices)
    low, high = ELASTICITY_BOUNDS
    assert low <= elasticity[shown].min() and elasticity[shown].max() <= high
    # At reference prices the calibration hits each product's target exactly.
    if price_level == "ref_price":
        np.testing.assert_allclose(elasticity[shown], world.products["target_elasticity"][shown], rtol=1e-9)


def test_elasticity_matches_a_finite_difference_of_expected_demand(world):
    # given
    prices = world.list_price.copy()
    product = int(world.default_listings()[3][2])
    bumped = prices.copy()
    bumped[product] *= 1.001

    # when
    demand, demand_bumped = world.expected_demand(prices), world.expected_demand(bumped)

    # then
    numeric = (np.log(demand_bumped[product]) - np.log(demand[product])) / np.log(1.001)
    assert numeric == pytest.approx(world.elasticities(prices)[product], rel=1e-3)


def test_purchase_probabilities_include_the_outside_option_and_fall_with_price(world):
    # given
    shown = world.default_listings()[0]
    prices = world.list_price[shown].copy()

    # when
    before = world.purchase_probabilities(7, shown, prices)[0]
    prices[0] *= 1.5
    after = world.purchase_probabilities(7, shown, prices)[0]

    # then
    assert before.sum() == pytest.approx(1.0)
    assert after[0] < before[0]
    assert after[-1] > before[-1]


def test_expected_profit_is_an_oracle_objective(world):
    # given: everything at cost earns nothing
    at_cost = world.unit_cost.copy()

    # when / then
    assert world.expected_profit(at_cost) == pytest.approx(0.0, abs=1e-9)
    assert world.expected_profit(world.list_price) > 0


def test_checkout_probability_responds_to_shipping_incentives_and_cart_value(world):
    # given
    base = {"cart_value": 60.0, "shipping": 6.95, "incentive": None, "device": "mobile", "prior_orders": 0}

    # when
    plain = world.checkout_probability(**base)
    free_shipping = world.checkout_probability(**{**base, "shipping": 0.0, "incentive": Incentive("free_shipping")})
    ten_percent = world.checkout_probability(**{**base, "incentive": Incentive("percent_10", 10)})
    expensive = world.checkout_probability(**{**base, "cart_value": 300.0})
    loyal = world.checkout_probability(**{**base, "prior_orders": 3})

    # then
    assert free_shipping > plain and ten_percent > plain and loyal > plain
    assert expensive < plain
    assert world.shipping_for(80.0, None) == 0.0 and world.shipping_for(20.0, None) == world.config.shipping_fee
    with pytest.raises(ValueError):
        Incentive("buy_one_get_ten")


def test_sessions_per_day_add_up_to_the_requested_sessions(world):
    # given / when
    counts = world.sessions_per_day()

    # then
    assert counts.sum() == CONFIG.n_sessions and len(counts) == CONFIG.days


def test_a_purchase_raises_the_return_rate_and_churned_shoppers_stop_visiting(world):
    # given
    state = ShopperState.initial(len(world.shoppers["user_id"]))
    rng = np.random.default_rng(0)

    # when
    world.record_order(state, 3)
    for day in range(CONFIG.days):
        visitors = world.visits_for_day(day, state, rng)

    # then
    assert state.visit_lift[3] == world.config.repeat_visit_lift
    assert not state.alive.all()
    assert set(visitors.tolist()).isdisjoint(np.flatnonzero(~state.alive).tolist())


def test_a_world_needs_a_start_date():
    with pytest.raises(ValueError, match="start_date"):
        World.generate(replace(CONFIG, start_date=None))
