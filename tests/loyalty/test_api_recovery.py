from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import RecoveryMessage, RecoveryStatus
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, SessionFactory
from tests.factories.funnel import RecoveryMessageFactory

pytestmark = pytest.mark.django_db

PULL_URL = "/api/v1/recovery/messages/take"
ACK_URL = "/api/v1/recovery/messages/{}/ack"


def _due(merchant, **fields) -> RecoveryMessage:
    customer = CustomerFactory(merchant=merchant, email="ann@example.com", marketing_consent=True)
    abandoned_at = timezone.now() - timedelta(hours=2)
    return RecoveryMessageFactory(merchant=merchant, customer=customer, abandoned_at=abandoned_at, **fields)


def _handed_over(merchant, **fields) -> RecoveryMessage:
    return _due(merchant, status=RecoveryStatus.SENT, sent_at=timezone.now(), **fields)


def test_pulling_hands_over_the_due_messages_once_with_their_content(api_client, merchant):
    # given a due message of a real cart, and one not due yet
    customer = CustomerFactory(
        merchant=merchant, external_id="shopper-1", email="ann@example.com", marketing_consent=True
    )
    session = SessionFactory(merchant=merchant, customer=customer, started_at=timezone.now() - timedelta(hours=3))
    product = ProductFactory(merchant=merchant, sku="MUG", title="Blue mug", price=Decimal("20.00"))
    EventFactory(
        merchant=merchant, customer=customer, session=session, name="Product Added", product=product,
        price=product.price, quantity=2, timestamp=timezone.now() - timedelta(hours=2),
    )  # fmt: skip
    due = RecoveryMessageFactory(
        merchant=merchant, customer=customer, session=session, cart_id="c-1", cart_value=Decimal("40.00"),
        abandoned_at=timezone.now() - timedelta(hours=2),
    )  # fmt: skip
    _due(merchant, scheduled_at=timezone.now() + timedelta(hours=1))

    # when
    first = api_client.post(PULL_URL, {"status": "due", "limit": 10}, format="json")
    second = api_client.post(PULL_URL, {"status": "due"}, format="json")

    # then
    assert first.status_code == 200, first.json()
    [body] = first.json()["messages"]
    assert (body["id"], body["customer_id"], body["email"], body["cart_id"]) == (
        due.pk, "shopper-1", "ann@example.com", "c-1",
    )  # fmt: skip
    assert (body["step"], body["steps"], body["cart_value"], body["currency"]) == (1, 2, "40.00", merchant.currency)
    assert [(i["sku"], i["quantity"], i["price"]) for i in body["content"]["items"]] == [("MUG", 2, "20.00")]
    assert body["content"]["offer"] is None
    assert second.json() == {"messages": []}
    due.refresh_from_db()
    assert due.status == RecoveryStatus.SENT
    assert due.sent_at is not None


def test_pulling_respects_the_limit(api_client, merchant):
    # given
    for _ in range(3):
        _due(merchant)

    # when
    response = api_client.post(PULL_URL, {"status": "due", "limit": 2}, format="json")

    # then
    assert len(response.json()["messages"]) == 2
    assert RecoveryMessage.objects.filter(merchant=merchant, status=RecoveryStatus.PENDING).count() == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"status": "due", "limit": 0}, "limit"),
        ({"status": "due", "limit": 101}, "limit"),
        ({"status": "due", "limit": "ten"}, "limit"),
    ],
)
def test_bad_pull_parameters_are_400_naming_the_field(api_client, merchant, params, field):
    # given
    message = _due(merchant)

    # when
    response = api_client.post(PULL_URL, params, format="json")

    # then nothing was handed over
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]
    message.refresh_from_db()
    assert message.status == RecoveryStatus.PENDING


def test_taking_messages_by_get_is_refused(api_client, merchant):
    # given
    message = _due(merchant)

    # when
    response = api_client.get(PULL_URL, {"status": "due"})

    # then
    assert response.status_code == 405
    message.refresh_from_db()
    assert message.status == RecoveryStatus.PENDING


def test_another_shop_and_callers_without_a_key_get_none_of_the_merchants_messages(
    merchant, other_api_client, anonymous_api_client
):
    # given
    message = _due(merchant)

    # when
    other = other_api_client.post(PULL_URL, {"status": "due"}, format="json")
    anonymous = anonymous_api_client.post(PULL_URL, {"status": "due"}, format="json")

    # then
    assert other.status_code == 200
    assert other.json() == {"messages": []}
    assert anonymous.status_code == 401
    assert anonymous.json()["errors"][0]["field"] == "authorization"
    message.refresh_from_db()
    assert message.status == RecoveryStatus.PENDING


def test_acking_failed_records_the_error_and_sent_confirms(api_client, merchant):
    # given two handed-over messages
    bounced, delivered = _handed_over(merchant), _handed_over(merchant)

    # when
    failed = api_client.post(ACK_URL.format(bounced.pk), {"status": "failed", "error": "550 no mailbox"}, format="json")
    sent = api_client.post(ACK_URL.format(delivered.pk), {"status": "sent"}, format="json")

    # then
    assert (failed.status_code, failed.json()) == (200, {"id": bounced.pk, "status": "failed"})
    assert (sent.status_code, sent.json()) == (200, {"id": delivered.pk, "status": "sent"})
    bounced.refresh_from_db()
    assert (bounced.status, bounced.last_error) == (RecoveryStatus.FAILED, "550 no mailbox")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "delivered"}, "status"),
        ({"status": "failed"}, "error"),
        ({"status": "failed", "error": "x" * 301}, "error"),
    ],
)
def test_bad_acks_are_400_naming_the_field(api_client, merchant, body, field):
    # given
    message = _handed_over(merchant)

    # when
    response = api_client.post(ACK_URL.format(message.pk), body, format="json")

    # then
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_a_message_never_handed_over_cannot_be_acked(api_client, merchant):
    # given
    pending = _due(merchant)

    # when
    response = api_client.post(ACK_URL.format(pending.pk), {"status": "sent"}, format="json")

    # then
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "status"
    pending.refresh_from_db()
    assert pending.status == RecoveryStatus.PENDING


def test_another_shops_message_is_404_and_no_key_is_401(merchant, other_api_client, anonymous_api_client, api_client):
    # given
    message = _handed_over(merchant)

    # when
    other = other_api_client.post(ACK_URL.format(message.pk), {"status": "failed", "error": "x"}, format="json")
    anonymous = anonymous_api_client.post(ACK_URL.format(message.pk), {"status": "failed", "error": "x"}, format="json")
    unknown = api_client.post(ACK_URL.format(999999), {"status": "sent"}, format="json")

    # then
    assert other.status_code == 404
    assert other.json()["errors"][0]["field"] == "message_id"
    assert anonymous.status_code == 401
    assert unknown.status_code == 404
    message.refresh_from_db()
    assert message.status == RecoveryStatus.SENT


def test_the_openapi_schema_lists_the_recovery_endpoints(anonymous_api_client):
    # given
    import yaml
    from drf_spectacular.validation import validate_schema

    # when
    schema = yaml.safe_load(anonymous_api_client.get("/api/schema/").content)

    # then
    validate_schema(schema)
    assert {"/api/v1/recovery/messages/take", "/api/v1/recovery/messages/{message_id}/ack"} <= set(schema["paths"])
