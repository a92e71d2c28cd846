"""What a redeemed offer costs the order (`offer_code_redeem` → `events.Order.incentive_cost`): free shipping's
carrier fee and bonus points' value, once, by the winning redemption only; percent off is already the order's
discount."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction

from events.models import Order
from events.services import event_batch_ingest
from loyalty.models import IncentiveKind
from loyalty.services.offers import offer_code_redeem, offer_decide
from tests.events.conftest import make_order
from tests.factories.catalog import ProductFactory
from tests.factories.events import OrderFactory
from tests.factories.funnel import OfferDecisionFactory, OfferSettingsFactory
from tests.loyalty.offers_support import request_for, stub_collaborators, stub_uplift

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _collaborators(monkeypatch):
    stub_collaborators(monkeypatch)


def _offer(merchant, kind: str, cost: str, **fields):
    return OfferDecisionFactory(merchant=merchant, decided_at=NOW, kind=kind, cost=Decimal(cost), **fields)


@pytest.mark.parametrize(
    ("kind", "cost", "expected"),
    [
        (IncentiveKind.FREE_SHIPPING, "6.95", Decimal("6.95")),
        (IncentiveKind.POINTS, "2.00", Decimal("2.00")),
        # The shop took 10% off the order: its discount carries the cost, nothing more to add.
        (IncentiveKind.PERCENT_10, "8.00", Decimal("0.00")),
        (IncentiveKind.PERCENT_5, "4.00", Decimal("0.00")),
    ],
)
def test_the_winning_redemption_puts_the_incentive_cost_on_the_order(merchant, kind, cost, expected):
    # given
    offer = _offer(merchant, kind, cost)
    order = OrderFactory(merchant=merchant)

    # when
    redeemed = offer_code_redeem(merchant=merchant, code=offer.code, order_id=order.pk, at=NOW)

    # then
    assert redeemed.pk == offer.pk
    order.refresh_from_db()
    assert order.incentive_cost == expected


def test_a_second_order_and_a_repeated_redemption_add_nothing(merchant):
    # given
    offer = _offer(merchant, IncentiveKind.FREE_SHIPPING, "6.95")
    first, second = OrderFactory(merchant=merchant), OrderFactory(merchant=merchant)
    offer_code_redeem(merchant=merchant, code=offer.code, order_id=first.pk, at=NOW)

    # when
    again = offer_code_redeem(merchant=merchant, code=offer.code, order_id=first.pk, at=NOW + timedelta(minutes=1))
    other = offer_code_redeem(merchant=merchant, code=offer.code, order_id=second.pk, at=NOW + timedelta(minutes=2))

    # then
    assert again.pk == offer.pk and other is None
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.incentive_cost, second.incentive_cost) == (Decimal("6.95"), Decimal("0.00"))


def test_expired_and_other_merchants_codes_cost_the_order_nothing(merchant, other_merchant):
    # given
    expired = _offer(merchant, IncentiveKind.FREE_SHIPPING, "6.95", expires_at=NOW - timedelta(minutes=1))
    theirs = _offer(other_merchant, IncentiveKind.POINTS, "2.00")
    order = OrderFactory(merchant=merchant)

    # when
    results = [
        offer_code_redeem(merchant=merchant, code=offer.code, order_id=order.pk, at=NOW) for offer in (expired, theirs)
    ]

    # then
    assert results == [None, None]
    order.refresh_from_db()
    assert order.incentive_cost == Decimal("0.00")


def test_an_order_that_redeems_two_codes_costs_both(merchant):
    # given a free-shipping offer and a points offer, both redeemed by one order through the API
    shipping = _offer(merchant, IncentiveKind.FREE_SHIPPING, "6.95")
    points = _offer(merchant, IncentiveKind.POINTS, "2.00")
    order = OrderFactory(merchant=merchant)

    # when
    for offer in (shipping, points):
        offer_code_redeem(merchant=merchant, code=offer.code, order_id=order.pk, at=NOW)

    # then
    order.refresh_from_db()
    assert order.incentive_cost == Decimal("8.95")


def test_a_rolled_back_redemption_leaves_neither_the_code_nor_the_order_touched(merchant):
    # given
    offer = _offer(merchant, IncentiveKind.FREE_SHIPPING, "6.95")
    order = OrderFactory(merchant=merchant)

    # when the caller's transaction fails after the redemption
    with pytest.raises(RuntimeError), transaction.atomic():
        offer_code_redeem(merchant=merchant, code=offer.code, order_id=order.pk, at=NOW)
        raise RuntimeError("the batch failed")

    # then
    offer.refresh_from_db()
    order.refresh_from_db()
    assert (offer.redeemed_order_id, order.incentive_cost) == (None, Decimal("0.00"))


def test_an_ingested_order_whose_coupon_is_a_free_shipping_code_carries_the_shipping_cost(merchant, monkeypatch):
    # given a free-shipping offer (the only kind the stub model finds paying) issued 2 hours ago
    OfferSettingsFactory(
        merchant=merchant,
        exploration_share=0.0,
        daily_budget=Decimal("1000"),
        allowed_kinds=[IncentiveKind.FREE_SHIPPING],
        shipping_cost=Decimal("5.50"),
    )
    uplift = stub_uplift(monkeypatch)
    uplift.probabilities = {"none": 0.40, "free_shipping": 0.60}
    ProductFactory(merchant=merchant, sku="SKU-1", external_id="pid-1")
    request = request_for(user_id=None, anonymous_id="anon-1", session_id="sess-1")
    offer = offer_decide(merchant=merchant, request=request, now=NOW - timedelta(hours=2)).decision
    assert (offer.kind, offer.cost) == (IncentiveKind.FREE_SHIPPING, Decimal("5.50"))
    order_event = make_order("order-1", timestamp=NOW.isoformat())
    order_event["properties"]["coupon"] = offer.code
    second_event = make_order("order-2", timestamp=(NOW + timedelta(minutes=5)).isoformat())
    second_event["properties"]["coupon"] = offer.code

    # when
    event_batch_ingest(merchant=merchant, events=[order_event, second_event])

    # then the first order redeemed it and carries its cost; the second used a spent code
    offer.refresh_from_db()
    costs = dict(Order.objects.for_merchant(merchant).values_list("external_id", "incentive_cost"))
    assert offer.redeemed_order.external_id == "order-1"
    assert costs == {"order-1": Decimal("5.50"), "order-2": Decimal("0.00")}
