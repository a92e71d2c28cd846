"""POST /api/v1/offers/redeem puts what the incentive costs on the order, as the ingest's redemption does."""

from decimal import Decimal

import pytest

from events.models import Order
from loyalty.models import IncentiveKind
from tests.factories.events import OrderFactory
from tests.factories.funnel import OfferDecisionFactory

pytestmark = pytest.mark.django_db

REDEEM_URL = "/api/v1/offers/redeem"


def _incentive_cost(merchant, external_id: str) -> Decimal:
    return Order.objects.for_merchant(merchant).get(external_id=external_id).incentive_cost


def test_redeeming_a_points_offer_costs_the_order_its_points_value(api_client, merchant):
    # given 200 bonus points at 0.01
    offer = OfferDecisionFactory(merchant=merchant, kind=IncentiveKind.POINTS, value=200.0, cost=Decimal("2.00"))
    OrderFactory(merchant=merchant, external_id="order-1")
    OrderFactory(merchant=merchant, external_id="order-2")

    # when
    first = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")
    again = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")
    other = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-2"}, format="json")

    # then
    assert (first.status_code, again.status_code, other.status_code) == (200, 200, 409)
    assert _incentive_cost(merchant, "order-1") == Decimal("2.00")
    assert _incentive_cost(merchant, "order-2") == Decimal("0.00")


def test_a_redemption_before_the_order_arrives_is_refused_and_works_once_it_has(api_client, merchant):
    # given a free-shipping offer and no order "order-1" yet
    offer = OfferDecisionFactory(merchant=merchant, kind=IncentiveKind.FREE_SHIPPING, value=0.0, cost=Decimal("6.95"))

    # when
    early = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")
    OrderFactory(merchant=merchant, external_id="order-1")
    later = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")

    # then: nothing was half-redeemed the first time, the code was still free the second
    assert early.status_code == 404
    assert early.json()["errors"] == [{"field": "order_id", "reason": "No order with this id."}]
    assert later.status_code == 200
    assert _incentive_cost(merchant, "order-1") == Decimal("6.95")


def test_another_merchants_key_cannot_put_a_cost_on_an_order(other_api_client, merchant, other_merchant):
    # given
    offer = OfferDecisionFactory(merchant=merchant, kind=IncentiveKind.FREE_SHIPPING, value=0.0, cost=Decimal("6.95"))
    OrderFactory(merchant=other_merchant, external_id="order-1")
    OrderFactory(merchant=merchant, external_id="order-1")

    # when
    response = other_api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")

    # then
    assert response.status_code == 404
    assert _incentive_cost(other_merchant, "order-1") == Decimal("0.00")
    assert _incentive_cost(merchant, "order-1") == Decimal("0.00")
