import hashlib
import json
from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from events.abandonment import SIGNAL_NAMES
from revopt.simulator.policy import CartContext, CatalogBrowsePolicy, CatalogListing
from revopt.simulator.session import ShopSimulator
from revopt.simulator.world import Incentive, SessionLatents, World, WorldConfig
from tests.simulator.fakes import FakeStorefront

OFF = WorldConfig(seed=7, n_sessions=1500, days=5, n_products=120, start_date=date(2024, 1, 1))
ON = WorldConfig(seed=3, n_sessions=12000, days=10, n_products=150, start_date=date(2024, 1, 1), session_signals=True)
# sha256 of the event stream of OFF, computed on the simulator before session signals existed (commit d444ea8).
EVENTS_SHA256_WITHOUT_OFFERS = "8504066f2bd91c589c625f877dd7c8529c669c30cc79ee7146bb37e29fecdfc3"
EVENTS_SHA256_WITH_PERCENT_10 = "50217d07e17cff78b0192d13df7afed5521f3a8bf78ff0a07919c1118e0b3654"


class RecordingPolicy(CatalogBrowsePolicy):
    """Offers `kind` (or nothing) at every cart and keeps the cart contexts it saw."""

    def __init__(self, kind: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.carts: list[CartContext] = []

    def incentive_for(self, cart_context: CartContext) -> Incentive | None:
        self.carts.append(cart_context)
        return Incentive(self.kind) if self.kind else None


def _simulate(config: WorldConfig, policy: CatalogBrowsePolicy) -> tuple[ShopSimulator, list[dict]]:
    world = World.generate(config)
    simulator = ShopSimulator(world=world, policy=policy)
    listing = CatalogListing(FakeStorefront(world).products)
    events = [event for day in range(config.days) for event in simulator.day_events(day, listing)]
    return simulator, events


def _sha256(events: list[dict]) -> str:
    return hashlib.sha256(json.dumps(events, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def quiet_shop() -> tuple[ShopSimulator, list[dict], RecordingPolicy]:
    policy = RecordingPolicy()
    simulator, events = _simulate(ON, policy)
    return simulator, events, policy


@pytest.mark.parametrize(
    ("kind", "expected"), [(None, EVENTS_SHA256_WITHOUT_OFFERS), ("percent_10", EVENTS_SHA256_WITH_PERCENT_10)]
)
def test_without_session_signals_the_event_stream_is_unchanged(kind, expected):
    # given / when
    _, events = _simulate(OFF, RecordingPolicy(kind))

    # then
    assert _sha256(events) == expected


def test_with_session_signals_abandonment_stays_near_the_target(quiet_shop):
    # given
    simulator, _, _ = quiet_shop

    # when
    stats = simulator.stats.as_dict()

    # then
    assert stats["carts"] > 1000
    assert abs(stats["cart_abandonment"] - ON.target_abandonment) < 0.04


def test_session_signals_emit_real_events_before_the_cart_is_viewed(quiet_shop):
    # given
    _, events, _ = quiet_shop

    # when
    pages = [event for event in events if event["type"] == "page" and event["properties"]["path"] != "/"]
    sorts = [event for event in events if event.get("event") == "Product List Filtered"]

    # then
    assert {event["properties"]["path"] for event in pages} == {"/pages/shipping", "/pages/returns"}
    assert sorts and all(event["properties"]["sorts"] == [{"type": "price", "value": "asc"}] for event in sorts)


def test_cart_context_carries_the_session_counts_and_the_cart_id(quiet_shop):
    # given
    _, events, policy = quiet_shop
    cart_ids = {event["properties"]["cart_id"] for event in events if event.get("event") == "Cart Viewed"}

    # when
    contexts = policy.carts

    # then
    assert {context.cart_id for context in contexts} == cart_ids
    assert all(set(context.signals) == set(SIGNAL_NAMES) for context in contexts)
    assert all(context.signals["cart_adds"] >= 1 and context.signals["list_views"] >= 1 for context in contexts)


def test_signals_of_abandoned_carts_show_more_hesitation(quiet_shop):
    # given
    _, events, policy = quiet_shop
    ordered = {event["properties"]["checkout_id"] for event in events if event.get("event") == "Order Completed"}
    completed = np.array([context.cart_id in ordered for context in policy.carts])

    # when
    def mean_by_outcome(name: str) -> tuple[float, float]:
        values = np.array([context.signals[name] for context in policy.carts])
        return values[~completed].mean(), values[completed].mean()

    # then
    for name in ("shipping_info_views", "returns_info_views", "price_sorted", "seconds_on_cart"):
        abandoned, bought = mean_by_outcome(name)
        assert abandoned > 1.2 * bought, name


def test_percent_off_helps_price_sensitive_shoppers_much_more():
    # given
    world = World.generate(replace(ON, n_sessions=2000))
    cart = {"shipping": 0.0, "device": "desktop", "prior_orders": 0}

    def uplift(price_sensitive: bool, cart_value: float) -> float:
        latents = SessionLatents(hesitation=0.5, price_sensitive=price_sensitive)
        offer = world.checkout_probability(
            cart_value=cart_value * 0.9, incentive=Incentive("percent_10"), latents=latents, **cart
        )
        return offer - world.checkout_probability(cart_value=cart_value, incentive=None, latents=latents, **cart)

    # when
    sensitive = [uplift(True, value) for value in (80.0, 120.0, 200.0)]
    others = [uplift(False, value) for value in (80.0, 120.0, 200.0)]

    # then
    assert all(high > 3 * low > 0 for high, low in zip(sensitive, others, strict=True))


def test_free_shipping_and_points_help_the_shoppers_they_are_meant_for():
    # given
    world = World.generate(replace(ON, n_sessions=2000))
    looked, did_not_look = SessionLatents(shipping_page_views=2), SessionLatents()

    def probability(incentive: Incentive | None, latents: SessionLatents, *, prior_orders: int = 0) -> float:
        shipping = world.shipping_for(40.0, incentive)
        return world.checkout_probability(
            cart_value=40.0,
            shipping=shipping,
            incentive=incentive,
            device="mobile",
            prior_orders=prior_orders,
            latents=latents,
        )

    # when
    free_shipping = Incentive("free_shipping")
    looked_uplift = probability(free_shipping, looked) - probability(None, looked)
    other_uplift = probability(free_shipping, did_not_look) - probability(None, did_not_look)
    points = Incentive("points", 200)
    returning_uplift = probability(points, did_not_look, prior_orders=2) - probability(
        None, did_not_look, prior_orders=2
    )
    new_uplift = probability(points, did_not_look) - probability(None, did_not_look)

    # then
    assert looked_uplift > other_uplift > 0
    assert returning_uplift > 3 * new_uplift > 0


def test_hesitation_lowers_checkout_and_a_neutral_shopper_keeps_the_old_model():
    # given
    world = World.generate(replace(ON, n_sessions=2000))
    cart = {"cart_value": 60.0, "shipping": 6.95, "incentive": None, "device": "mobile", "prior_orders": 1}

    # when
    plain = world.checkout_probability(**cart)
    neutral = world.checkout_probability(latents=SessionLatents(hesitation=0.0), **cart)
    hesitant = world.checkout_probability(latents=SessionLatents(hesitation=1.0), **cart)

    # then
    assert neutral == pytest.approx(plain)
    assert hesitant < plain - 0.1


def test_counterfactual_counters_are_consistent():
    # given
    simulator, events = _simulate(replace(ON, n_sessions=4000, days=4), RecordingPolicy("percent_10"))

    # when
    stats = simulator.stats.as_dict()

    # then
    orders = [event for event in events if event.get("event") == "Order Completed"]
    assert stats["offers"] == stats["offers_by_kind"]["percent_10"] == len(simulator.policy.carts) > 0
    assert stats["offer_orders"] == stats["orders"] == len(orders)
    # 10% off only ever raises the completion probability, so whoever would have bought anyway did buy.
    assert 0 < stats["offers_would_have_bought"] < stats["offer_orders"]
    assert stats["offer_cost"] == pytest.approx(sum(order["properties"]["discount"] for order in orders), abs=0.05)
    assert json.loads(json.dumps(stats)) == stats
