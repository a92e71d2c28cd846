from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import OfferDecision
from tests.factories.catalog import ProductFactory
from tests.factories.events import OrderFactory
from tests.factories.funnel import OfferDecisionFactory, OfferSettingsFactory
from tests.loyalty.offers_support import stub_collaborators, stub_uplift

pytestmark = pytest.mark.django_db


@pytest.fixture
def uplift(monkeypatch):
    return stub_uplift(monkeypatch)


@pytest.fixture(autouse=True)
def _collaborators(monkeypatch):
    stub_collaborators(monkeypatch)


DECIDE_URL = "/api/v1/offers/decide"
REDEEM_URL = "/api/v1/offers/redeem"
CODE_URL = "/api/v1/offers/{}"


@pytest.fixture
def offer_settings(merchant):
    return OfferSettingsFactory(merchant=merchant, exploration_share=0.0)


def _body(**overrides) -> dict:
    body = {
        "cart_id": "cart-1",
        "session_id": "s-1",
        "user_id": "user-42",
        "anonymous_id": "anon-9",
        "device": "mobile",
        "source": "newsletter",
        "channel": "onsite",
        "lines": [{"sku": "TEE", "quantity": 2, "price": "40.00"}, {"sku": "NOPE", "quantity": 1, "price": "20.00"}],
        "signals": {"product_views": 6, "shipping_info_views": 1, "seconds_on_site": 410.5},
    }
    body.update(overrides)
    return body


def _fields(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


# --- decide --------------------------------------------------------------------------------------------------


def test_decide_answers_the_offer_with_its_code_and_names_unknown_skus(api_client, merchant, offer_settings, uplift):
    # given
    ProductFactory(merchant=merchant, sku="TEE", price=Decimal("40"), cost=Decimal("12"))

    # when
    response = api_client.post(DECIDE_URL, _body(), format="json")

    # then
    assert response.status_code == 200, response.content
    answer = response.json()
    decision = OfferDecision.objects.get(merchant=merchant)
    assert answer["decision_id"] == decision.pk
    assert answer["cart_id"] == "cart-1"
    assert answer["incentive"]["kind"] == "percent_10"
    assert answer["incentive"]["label"] == "10% off"
    assert answer["incentive"]["code"] == decision.code
    assert answer["reason"] == "best_expected_margin"
    assert answer["abandonment_probability"] == pytest.approx(0.72)
    assert answer["expected_uplift"] == pytest.approx(0.25)
    assert answer["experiment"] is None
    assert answer["unknown_skus"] == ["NOPE"]
    # 2·(40 − 12) + 20·0.35 = 63.00
    assert decision.cart_margin == Decimal("63.00")
    assert decision.session_external_id == "s-1"


def test_decide_with_nothing_to_offer_answers_a_null_incentive(api_client, offer_settings, uplift):
    # given
    uplift.probabilities = None

    # when
    response = api_client.post(DECIDE_URL, _body(), format="json")

    # then
    assert response.status_code == 200
    assert response.json()["incentive"] is None
    assert response.json()["reason"] == "no_model"


def test_decide_at_a_past_moment_dates_the_decision_and_its_code(api_client, merchant, offer_settings, uplift):
    # when
    response = api_client.post(DECIDE_URL, _body(at="2026-10-01T09:30:00+00:00"), format="json")

    # then
    assert response.status_code == 200, response.content
    decision = OfferDecision.objects.get(merchant=merchant)
    assert decision.decided_at.isoformat() == "2026-10-01T09:30:00+00:00"
    assert response.json()["incentive"]["expires_at"].startswith("2026-10-02T09:30:00")


def test_a_retried_decide_answers_the_same_decision(api_client, merchant, offer_settings, uplift):
    # when
    first = api_client.post(DECIDE_URL, _body(), format="json").json()
    second = api_client.post(DECIDE_URL, _body(), format="json").json()

    # then
    assert first == second
    assert OfferDecision.objects.filter(merchant=merchant).count() == 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cart_id": None}, "cart_id"),
        ({"user_id": None, "anonymous_id": None}, "anonymous_id"),
        ({"lines": []}, "lines"),
        ({"lines": [{"sku": "A", "quantity": 1, "price": "1"}] * 201}, "lines"),
        (
            {"lines": [{"sku": "A", "quantity": 1, "price": "1"}] * 2 + [{"sku": "B", "quantity": 0, "price": "1"}]},
            "lines[2].quantity",
        ),  # fmt: skip
        ({"lines": [{"sku": "A", "quantity": 1, "price": "-1"}]}, "lines[0].price"),
        ({"lines": [{"quantity": 1, "price": "1"}]}, "lines[0].sku"),
        ({"signals": {"foo": 1}}, "signals.foo"),
        ({"signals": {"product_views": -1}}, "signals.product_views"),
        ({"signals": {"product_views": "many"}}, "signals.product_views"),
        ({"signals": [1, 2]}, "signals"),
        ({"device": "fridge"}, "device"),
        ({"channel": "carrier-pigeon"}, "channel"),
        ({"at": "yesterday"}, "at"),
        ({"at": "2026-11-20T12:00:00"}, "at"),
        ({"at": "2999-01-01T00:00:00Z"}, "at"),
    ],
)
def test_decide_names_the_bad_field(api_client, merchant, offer_settings, uplift, overrides, field):
    # when
    response = api_client.post(DECIDE_URL, _body(**overrides), format="json")

    # then
    assert response.status_code == 400, response.content
    assert field in _fields(response)
    assert not OfferDecision.objects.filter(merchant=merchant).exists()


def test_decide_without_a_key_is_refused(anonymous_api_client, merchant):
    # when
    response = anonymous_api_client.post(DECIDE_URL, _body(), format="json")

    # then
    assert response.status_code == 401
    assert not OfferDecision.objects.exists()


def test_decide_with_another_merchants_key_decides_for_that_merchant_only(
    other_api_client, merchant, other_merchant, uplift
):
    # when
    response = other_api_client.post(DECIDE_URL, _body(), format="json")

    # then
    assert response.status_code == 200
    assert not OfferDecision.objects.filter(merchant=merchant).exists()
    assert OfferDecision.objects.filter(merchant=other_merchant).count() == 1


# --- redeem and check ----------------------------------------------------------------------------------------


def test_redeem_marks_the_code_used_once(api_client, merchant):
    # given
    offer = OfferDecisionFactory(merchant=merchant)
    OrderFactory(merchant=merchant, external_id="order-1")
    OrderFactory(merchant=merchant, external_id="order-2")

    # when
    first = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")
    same_order = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")
    other_order = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-2"}, format="json")

    # then
    assert first.status_code == 200
    assert first.json()["status"] == "redeemed"
    assert same_order.status_code == 200
    assert other_order.status_code == 409
    assert _fields(other_order) == ["code"]
    assert "another order" in other_order.json()["errors"][0]["reason"]


def test_redeem_refuses_an_expired_code_with_409(api_client, merchant):
    # given
    offer = OfferDecisionFactory(merchant=merchant, decided_at=timezone.now() - timedelta(days=2))
    OrderFactory(merchant=merchant, external_id="order-1")

    # when
    response = api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")

    # then
    assert response.status_code == 409
    assert response.json()["errors"][0]["reason"] == "This code expired."


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"code": "RVO-NOSUCH00", "order_id": "order-1"}, 404, "code"),
        ({"code": "OFFER", "order_id": "order-404"}, 404, "order_id"),
        ({"order_id": "order-1"}, 400, "code"),
        ({"code": "OFFER"}, 400, "order_id"),
        ({"code": "x" * 41, "order_id": "order-1"}, 400, "code"),
    ],
)
def test_redeem_names_the_bad_field(api_client, merchant, body, status, field):
    # given
    offer = OfferDecisionFactory(merchant=merchant)
    OrderFactory(merchant=merchant, external_id="order-1")
    if body.get("code") == "OFFER":
        body = {**body, "code": offer.code}

    # when
    response = api_client.post(REDEEM_URL, body, format="json")

    # then
    assert response.status_code == status
    assert _fields(response) == [field]


def test_another_merchants_code_is_unknown(other_api_client, anonymous_api_client, merchant, other_merchant):
    # given
    offer = OfferDecisionFactory(merchant=merchant)
    OrderFactory(merchant=other_merchant, external_id="order-1")

    # when
    redeem = other_api_client.post(REDEEM_URL, {"code": offer.code, "order_id": "order-1"}, format="json")
    check = other_api_client.get(CODE_URL.format(offer.code))
    no_key = anonymous_api_client.get(CODE_URL.format(offer.code))

    # then
    assert (redeem.status_code, check.status_code, no_key.status_code) == (404, 404, 401)
    offer.refresh_from_db()
    assert offer.redeemed_order_id is None


def test_the_checkout_reads_whether_a_code_is_valid(api_client, merchant):
    # given
    valid = OfferDecisionFactory(merchant=merchant)
    expired = OfferDecisionFactory(merchant=merchant, decided_at=timezone.now() - timedelta(days=2))

    # when
    valid_answer = api_client.get(CODE_URL.format(valid.code.lower()))
    expired_answer = api_client.get(CODE_URL.format(expired.code))
    unknown = api_client.get(CODE_URL.format("RVO-NOSUCH00"))
    garbage = api_client.get(CODE_URL.format("x" * 500))

    # then
    assert valid_answer.status_code == 200
    assert valid_answer.json()["valid"] is True
    assert valid_answer.json()["kind"] == "percent_10"
    assert (expired_answer.json()["valid"], expired_answer.json()["status"]) == (False, "expired")
    assert unknown.status_code == 404
    assert [error["field"] for error in unknown.json()["errors"]] == ["code"]
    assert garbage.status_code == 404
    assert [error["field"] for error in garbage.json()["errors"]] == ["code"]


def test_the_openapi_schema_stays_valid_and_lists_the_offer_paths(anonymous_api_client):
    # given
    import yaml
    from drf_spectacular.validation import validate_schema

    # when
    response = anonymous_api_client.get("/api/schema/")

    # then
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert {"/api/v1/offers/decide", "/api/v1/offers/redeem", "/api/v1/offers/{code}"} <= set(schema["paths"])
    decide = schema["paths"]["/api/v1/offers/decide"]["post"]
    assert "200" in decide["responses"] and "400" in decide["responses"]
