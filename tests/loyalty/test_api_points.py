from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import EarnAction, EarnRule, Redemption
from loyalty.services.points import points_earn_for_order
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import LoyaltyProgramFactory, RewardFactory, TierFactory

pytestmark = pytest.mark.django_db

CUSTOMER_URL = "/api/v1/loyalty/customers/{}"
REDEEM_URL = "/api/v1/loyalty/redeem"
ACTIONS_URL = "/api/v1/loyalty/actions"


@pytest.fixture
def program(merchant):
    program = LoyaltyProgramFactory(merchant=merchant)
    TierFactory(program=program, name="Silver", threshold_points=1000)
    EarnRule.objects.create(merchant=merchant, program=program, action=EarnAction.REVIEW, points=25)
    return program


@pytest.fixture
def shopper(merchant, program):
    """A customer holding 1,200 points."""
    customer = CustomerFactory(merchant=merchant, external_id="shopper-1")
    points_earn_for_order(order=OrderFactory(merchant=merchant, customer=customer, subtotal=Decimal("1200")))
    return customer


def _fields(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def test_customer_status_shows_balance_tier_and_rewards(api_client, program, shopper):
    # given
    reward = RewardFactory(program=program, name="$5 off", points_cost=500)

    # when
    response = api_client.get(CUSTOMER_URL.format("shopper-1"))

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["balance"], body["tier"]["name"], body["next_tier"]) == (1200, "Silver", None)
    assert body["progress_to_next_tier"] == 1.0
    assert [item["id"] for item in body["rewards_available"]] == [reward.pk]
    assert body["expiring_soon"] == []


@pytest.mark.parametrize(
    ("url_id", "active", "field"), [("nobody", True, "customer_id"), ("shopper-1", False, "program")]
)
def test_customer_status_404_names_the_missing_thing(api_client, merchant, url_id, active, field):
    # given
    LoyaltyProgramFactory(merchant=merchant, is_active=active)
    CustomerFactory(merchant=merchant, external_id="shopper-1")

    # when
    response = api_client.get(CUSTOMER_URL.format(url_id))

    # then
    assert response.status_code == 404
    assert _fields(response) == [field]


def test_another_merchants_key_or_no_key_cannot_read_a_customer(
    other_api_client, anonymous_api_client, other_merchant, shopper
):
    # given the other shop runs a program too
    LoyaltyProgramFactory(merchant=other_merchant)

    # when
    other = other_api_client.get(CUSTOMER_URL.format("shopper-1"))
    anonymous = anonymous_api_client.get(CUSTOMER_URL.format("shopper-1"))

    # then
    assert other.status_code == 404
    assert anonymous.status_code == 401


def test_an_erased_customer_is_unknown(api_client, shopper):
    # given
    shopper.erased_at = timezone.now()
    shopper.save()

    # when
    response = api_client.get(CUSTOMER_URL.format("shopper-1"))

    # then
    assert response.status_code == 404
    assert _fields(response) == ["customer_id"]


def test_redeem_answers_a_code_and_the_balance_and_a_retry_answers_the_same(api_client, program, shopper):
    # given
    reward = RewardFactory(program=program, points_cost=500)
    body = {"customer_id": "shopper-1", "reward_id": reward.pk, "idempotency_key": "checkout-1"}

    # when
    first = api_client.post(REDEEM_URL, body, format="json")
    retry = api_client.post(REDEEM_URL, body, format="json")

    # then
    assert first.status_code == 201
    assert first.json()["points"] == 500 and first.json()["balance"] == 700
    assert retry.status_code == 201 and retry.json()["code"] == first.json()["code"]
    assert Redemption.objects.count() == 1


def test_redeem_with_too_few_points_is_a_409_naming_the_reward_with_balance_and_cost(api_client, program, shopper):
    # given
    reward = RewardFactory(program=program, points_cost=5000)

    # when
    response = api_client.post(
        REDEEM_URL, {"customer_id": "shopper-1", "reward_id": reward.pk, "idempotency_key": "k"}, format="json"
    )

    # then
    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["field"] == "reward_id"
    assert "1200" in error["reason"] and "5000" in error["reason"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reward_id": 1, "idempotency_key": "k"}, "customer_id"),
        ({"customer_id": "shopper-1", "reward_id": "one", "idempotency_key": "k"}, "reward_id"),
        ({"customer_id": "shopper-1", "reward_id": 1}, "idempotency_key"),
        ({"customer_id": "shopper-1", "reward_id": 1, "idempotency_key": "k" * 151}, "idempotency_key"),
    ],
)
def test_redeem_bad_input_is_a_400_naming_the_field(api_client, shopper, body, field):
    # when
    response = api_client.post(REDEEM_URL, body, format="json")

    # then
    assert response.status_code == 400
    assert _fields(response) == [field]


def test_redeem_of_another_merchants_reward_or_customer_is_a_404(
    api_client, other_api_client, anonymous_api_client, other_merchant, program, shopper
):
    # given
    foreign_reward = RewardFactory(program=LoyaltyProgramFactory(merchant=other_merchant), points_cost=1)
    own_reward = RewardFactory(program=program, points_cost=1)

    # when
    foreign = api_client.post(
        REDEEM_URL, {"customer_id": "shopper-1", "reward_id": foreign_reward.pk, "idempotency_key": "a"}, format="json"
    )
    wrong_shop = other_api_client.post(
        REDEEM_URL, {"customer_id": "shopper-1", "reward_id": own_reward.pk, "idempotency_key": "b"}, format="json"
    )
    no_key = anonymous_api_client.post(REDEEM_URL, {}, format="json")

    # then
    assert foreign.status_code == 404 and _fields(foreign) == ["reward_id"]
    assert wrong_shop.status_code == 404
    assert no_key.status_code == 401
    assert not Redemption.objects.exists()


def test_an_action_earns_its_points_once_per_key(api_client, shopper):
    # given
    body = {"customer_id": "shopper-1", "action": "review", "idempotency_key": "review-77"}

    # when
    first = api_client.post(ACTIONS_URL, body, format="json")
    retry = api_client.post(ACTIONS_URL, body, format="json")

    # then
    assert first.status_code == retry.status_code == 201
    assert first.json() == {"points": 25, "balance": 1225}
    assert retry.json() == {"points": 25, "balance": 1225}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"customer_id": "shopper-1", "action": "dance", "idempotency_key": "k"}, 400, "action"),
        ({"customer_id": "shopper-1", "action": "referral", "idempotency_key": "k"}, 409, "action"),
        ({"customer_id": "ghost", "action": "review", "idempotency_key": "k"}, 404, "customer_id"),
        ({"customer_id": "shopper-1", "action": "review"}, 400, "idempotency_key"),
    ],
)
def test_action_refusals_name_the_field(api_client, shopper, body, status, field):
    # when
    response = api_client.post(ACTIONS_URL, body, format="json")

    # then
    assert response.status_code == status
    assert _fields(response) == [field]


def test_another_merchants_key_cannot_earn_for_a_customer(other_api_client, shopper):
    # when
    response = other_api_client.post(
        ACTIONS_URL, {"customer_id": "shopper-1", "action": "review", "idempotency_key": "k"}, format="json"
    )

    # then
    assert response.status_code == 404
    assert _fields(response) == ["customer_id"]


def test_the_openapi_schema_stays_valid_and_lists_the_loyalty_paths(anonymous_api_client):
    # given
    import yaml
    from drf_spectacular.validation import validate_schema

    # when
    response = anonymous_api_client.get("/api/schema/")

    # then
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert {
        "/api/v1/loyalty/customers/{customer_id}",
        "/api/v1/loyalty/redeem",
        "/api/v1/loyalty/actions",
    } <= set(schema["paths"])
