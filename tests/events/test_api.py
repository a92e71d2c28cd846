import pytest

from events.models import Event, Order
from revopt.tenancy.models import ApiKey
from revopt.tenancy.services import api_key_revoke
from tests.events.conftest import make_event, make_order

pytestmark = pytest.mark.django_db

URL = "/api/v1/events"


def test_a_batch_is_answered_event_by_event(api_client, merchant, products):
    # given
    batch = [make_event(), make_event(properties={"product_id": "SKU-1", "price": -1}), make_order()]

    # when
    response = api_client.post(URL, {"batch": batch}, format="json")

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 0, 1)
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "accepted"]
    assert body["results"][1] == {
        "index": 1,
        "messageId": batch[1]["messageId"],
        "status": "rejected",
        "errors": [{"field": "properties.price", "reason": "must be positive"}],
    }
    assert Event.objects.for_merchant(merchant).count() == 2
    assert Order.objects.for_merchant(merchant).count() == 1


def test_resending_the_same_batch_answers_duplicate(api_client, merchant, products):
    batch = [make_event(), make_event()]
    api_client.post(URL, {"batch": batch}, format="json")

    response = api_client.post(URL, {"batch": batch}, format="json")

    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["duplicate", "duplicate"]
    assert Event.objects.for_merchant(merchant).count() == 2


def test_a_batch_where_every_event_is_rejected_is_a_400(api_client, merchant, products):
    response = api_client.post(URL, {"batch": [make_event(event="Nonsense")]}, format="json")

    assert response.status_code == 400
    assert response.json()["results"][0]["errors"] == [{"field": "event", "reason": "unknown event type 'Nonsense'"}]


@pytest.mark.parametrize(
    ("body", "reason_part"),
    [
        ({}, "required"),
        ({"batch": "events"}, "list"),
        ({"batch": []}, "empty"),
        ({"batch": [make_event() for _ in range(1001)]}, "no more than 1000"),
    ],
)
def test_a_bad_envelope_is_a_400_naming_batch(api_client, merchant, products, body, reason_part):
    response = api_client.post(URL, body, format="json")

    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "batch"
    assert reason_part in error["reason"]
    assert Event.objects.count() == 0


def test_malformed_json_is_a_400(api_client):
    response = api_client.post(URL, data="{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"]


def test_missing_api_key_is_a_401(anonymous_api_client, products):
    response = anonymous_api_client.post(URL, {"batch": [make_event()]}, format="json")

    assert response.status_code == 401
    assert response.json()["errors"][0]["field"] == "authorization"
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "header",
    ["Bearer rvk_000000000000.wrong", "Bearer not-a-key", "Basic dXNlcjpwYXNz", "Bearer "],
)
def test_an_invalid_api_key_is_a_401(anonymous_api_client, products, header):
    anonymous_api_client.credentials(HTTP_AUTHORIZATION=header)

    response = anonymous_api_client.post(URL, {"batch": [make_event()]}, format="json")

    assert response.status_code == 401
    assert Event.objects.count() == 0


def test_a_revoked_api_key_is_a_401(api_client, merchant, products):
    # given
    api_key = ApiKey.objects.for_merchant(merchant).get()
    api_key_revoke(api_key=api_key)

    # when
    response = api_client.post(URL, {"batch": [make_event()]}, format="json")

    # then
    assert response.status_code == 401
    assert Event.objects.count() == 0


def test_the_key_also_works_as_x_api_key(anonymous_api_client, api_client, merchant, products):
    anonymous_api_client.credentials(HTTP_X_API_KEY=api_client.raw_key)

    response = anonymous_api_client.post(URL, {"batch": [make_event()]}, format="json")

    assert response.status_code == 200
    assert Event.objects.for_merchant(merchant).count() == 1


def test_another_merchants_key_writes_only_to_its_own_shop(other_api_client, merchant, other_merchant, products):
    # when: the other shop sends an event about this merchant's product
    response = other_api_client.post(URL, {"batch": [make_event(properties={"sku": "SKU-1"})]}, format="json")

    # then: it is rejected as unknown there, and nothing reaches this merchant
    assert response.status_code == 400
    assert response.json()["results"][0]["errors"][0]["reason"] == "unknown product 'SKU-1'"
    assert Event.objects.for_merchant(merchant).count() == 0
    assert Event.objects.for_merchant(other_merchant).count() == 0


def test_the_openapi_schema_documents_the_events_endpoint(anonymous_api_client):
    response = anonymous_api_client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    assert "post" in response.json()["paths"]["/api/v1/events"]
