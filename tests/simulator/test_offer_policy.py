from datetime import UTC, date, datetime

import pytest

from revopt.simulator.driver import StorefrontAPIError, StorefrontDriver
from revopt.simulator.policy import (
    OFFERS_DECIDE_PATH,
    ApiCallingPolicy,
    CartContext,
    CartLine,
    OfferPolicy,
    OfferTruth,
    OfferTruthRecorder,
    SessionContext,
)
from revopt.simulator.world import World, WorldConfig
from tests.simulator.fakes import FakeStorefront

STARTED = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def _cart(cart_id: str = "cart-1", *, user_id: str | None = "u-1") -> CartContext:
    session = SessionContext(
        session_id=f"session-{cart_id}",
        anonymous_id=f"anon-{cart_id}",
        user_id=user_id,
        device="mobile",
        started_at=STARTED,
        category_path="Outdoor > Tents",
        utm_source="google",
    )
    return CartContext(
        session=session,
        lines=(CartLine(sku="SKU-1", price=19.5, quantity=2), CartLine(sku="SKU-2", price=5.0, quantity=1)),
        prior_orders=1,
        signals={"shipping_info_views": 2.0, "seconds_on_cart": 41.5},
        cart_id=cart_id,
    )


class OfferApi:
    """Answers POST /api/v1/offers/decide with a fixed incentive, remembering every request."""

    def __init__(
        self, incentive: dict | None, *, variant: str | None = None, fail_calls: frozenset[int] = frozenset()
    ) -> None:
        self.incentive = incentive
        self.variant = variant
        self.fail_calls = fail_calls
        self.requests: list[tuple[str, dict]] = []

    def post(self, path: str, payload: dict) -> dict:
        self.requests.append((path, payload))
        if len(self.requests) - 1 in self.fail_calls:
            raise StorefrontAPIError(f"{path} answered 503")
        return {
            "decision_id": len(self.requests),
            "cart_id": payload["cart_id"],
            "incentive": self.incentive,
            "reason": "exploration",
            "explanation": "",
            "abandonment_probability": 0.7,
            "expected_uplift": None,
            "experiment": {"key": "offers", "variant": self.variant} if self.variant else None,
        }


PERCENT_10 = {"kind": "percent_10", "value": 10.0, "code": "OFF-ABC123", "expires_at": "", "label": "10% off"}


def test_offer_policy_sends_the_cart_the_shopper_and_the_signals():
    # given
    api = OfferApi(PERCENT_10)
    policy = OfferPolicy(transport=api)

    # when
    incentive = policy.incentive_for(_cart())

    # then
    assert isinstance(policy, ApiCallingPolicy) and isinstance(policy, OfferTruthRecorder)
    assert api.requests == [
        (
            OFFERS_DECIDE_PATH,
            {
                "cart_id": "cart-1",
                "session_id": "session-cart-1",
                "user_id": "u-1",
                "anonymous_id": "anon-cart-1",
                "device": "mobile",
                "source": "google",
                "channel": "onsite",
                "lines": [
                    {"sku": "SKU-1", "quantity": 2, "price": "19.50"},
                    {"sku": "SKU-2", "quantity": 1, "price": "5.00"},
                ],
                "signals": {"shipping_info_views": 2.0, "seconds_on_cart": 41.5},
            },
        )
    ]
    assert (incentive.kind, incentive.value, incentive.code) == ("percent_10", 10.0, "OFF-ABC123")


def test_no_incentive_in_the_answer_means_no_offer():
    # given
    policy = OfferPolicy(transport=OfferApi(None))

    # when
    incentive = policy.incentive_for(_cart(user_id=None))

    # then
    assert incentive is None
    assert policy.failures == 0
    assert policy.tallies[""].decisions == 1


def test_a_failed_call_counts_and_shows_no_offer():
    # given
    policy = OfferPolicy(transport=OfferApi(PERCENT_10, fail_calls=frozenset({0})))

    # when
    first, second = policy.incentive_for(_cart("a")), policy.incentive_for(_cart("b"))

    # then
    assert first is None and second is not None
    assert policy.failures == 1


def test_an_unconnected_policy_refuses_to_decide():
    # given
    policy = OfferPolicy()

    # when / then
    with pytest.raises(RuntimeError):
        policy.incentive_for(_cart())


def test_the_truth_about_offers_is_tallied_per_experiment_arm():
    # given
    policy = OfferPolicy(transport=OfferApi(PERCENT_10, variant="blanket"))
    policy.incentive_for(_cart("a"))
    policy.incentive_for(_cart("b", user_id="u-2"))
    truth = {"kind": "percent_10", "cost": 4.4, "p_offer": 0.5, "p_none": 0.4, "margin": 20.0}

    # when
    policy.offer_truth_record(OfferTruth(cart_id="a", would_have_bought=True, completed=True, **truth))
    policy.offer_truth_record(OfferTruth(cart_id="b", would_have_bought=False, completed=False, **truth))

    # then
    tally = policy.tallies["blanket"].as_dict()
    assert tally["decisions"] == tally["offers"] == 2 and tally["shoppers"] == 2
    assert tally["share_offers_would_have_bought"] == 0.5
    assert tally["offer_orders"] == 1 and tally["offer_cost"] == 4.4
    assert tally["cost_given_away"] == 4.4  # cart a would have been bought without it
    # 0.5 · (20 − 4.4) − 0.4 · 20 = −0.2 per offer
    assert tally["true_incremental_margin"] == pytest.approx(-0.4)


class ShopWithOffers(FakeStorefront):
    """The fake storefront, answering offers/decide with 10% off and a one-time code per cart."""

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.decide_payloads: list[dict] = []

    def post(self, path: str, payload: dict) -> dict:
        if path != OFFERS_DECIDE_PATH:
            return super().post(path, payload)
        self.decide_payloads.append(payload)
        code = f"CODE-{payload['cart_id'][:8]}"
        return {"incentive": {**PERCENT_10, "code": code}, "experiment": None}


def test_a_simulated_shop_puts_the_offer_code_on_the_order():
    # given
    world = World.generate(
        WorldConfig(seed=5, n_sessions=600, days=2, n_products=80, start_date=date(2026, 3, 1), session_signals=True)
    )
    shop = ShopWithOffers(world)
    policy = OfferPolicy()

    # when
    stats = StorefrontDriver(
        world=world, transport=shop, policy=policy, now=lambda: datetime(2026, 3, 5, tzinfo=UTC)
    ).run()

    # then
    orders = [event for event in shop.events if event.get("event") == "Order Completed"]
    assert orders and all(order["properties"]["coupon"].startswith("CODE-") for order in orders)
    assert all(order["properties"]["discount"] > 0 for order in orders)
    assert stats.offers == policy.tallies[""].decisions == policy.tallies[""].offers > 0
    assert policy.failures == 0
    # each decision is asked at the moment the cart is viewed
    viewed = [event for event in shop.events if event.get("event") == "Cart Viewed"]
    cart_viewed = {event["properties"]["cart_id"]: event["timestamp"] for event in viewed}
    assert {payload["cart_id"]: payload["at"][:23] for payload in shop.decide_payloads} == {
        cart_id: timestamp[:23] for cart_id, timestamp in cart_viewed.items()
    }
