from decimal import Decimal

import pytest
import yaml
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from catalog.models import Product
from pricing.models import GuardrailScope, PriceChange, PriceProposal, ProposalStatus
from pricing.services.approval import price_proposal_approve
from tests.factories.catalog import ProductFactory
from tests.factories.pricing import GuardrailFactory, PriceProposalFactory

pytestmark = pytest.mark.django_db

D = Decimal
LIST = "/api/v1/price-proposals"


def _approve_url(proposal) -> str:
    return f"/api/v1/price-proposals/{proposal.pk}/approve"


def _reject_url(proposal) -> str:
    return f"/api/v1/price-proposals/{proposal.pk}/reject"


def _rollback_url(change) -> str:
    return f"/api/v1/price-changes/{change.pk}/rollback"


def _session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _proposal(merchant, *, proposed="26.50", **fields) -> PriceProposal:
    product = ProductFactory(merchant=merchant, price=D("25.00"))
    return PriceProposalFactory(merchant=merchant, product=product, proposed_price=D(proposed), **fields)


def _errors(response) -> dict[str, str]:
    return {error["field"]: error["reason"] for error in response.json()["errors"]}


def test_list_shows_the_managers_pending_proposals_with_impact_and_checks(merchant, other_merchant, merchant_manager):
    # given
    pending = _proposal(merchant)
    rejected = _proposal(merchant, status=ProposalStatus.REJECTED)
    _proposal(other_merchant)

    # when
    response = _session(merchant_manager).get(LIST)
    rejected_list = _session(merchant_manager).get(LIST, {"status": "rejected", "limit": 5})

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == pending.pk
    assert row["product"]["sku"] == pending.product.sku
    assert (row["current_price"], row["proposed_price"]) == ("25.00", "26.50")
    assert row["change"] == pytest.approx(0.06)
    assert row["profit_per_week"] == {"expected": 9.0, "lower": 3.0, "upper": 15.0}
    assert [r["id"] for r in rejected_list.json()["results"]] == [rejected.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "maybe"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "500"}, "limit"),
        ({"limit": "x"}, "limit"),
    ],
)
def test_list_bad_query_is_a_400_naming_the_field(merchant_manager, query, field):
    # when
    response = _session(merchant_manager).get(LIST, query)

    # then
    assert response.status_code == 400
    assert field in _errors(response)


def test_platform_admin_names_the_shop_and_an_unknown_one_is_404(merchant, platform_admin):
    # given
    proposal = _proposal(merchant)
    client = _session(platform_admin)

    # when
    missing = client.get(LIST)
    unknown = client.get(LIST, {"merchant": "no-such-shop"})
    named = client.get(LIST, {"merchant": merchant.slug})

    # then
    assert missing.status_code == 400 and "merchant" in _errors(missing)
    assert unknown.status_code == 404
    assert [row["id"] for row in named.json()["results"]] == [proposal.pk]


def test_storefront_api_keys_get_403_and_nobody_signed_in_gets_401(merchant, api_client, anonymous_api_client):
    # given
    proposal = _proposal(merchant)

    # when
    key_list = api_client.get(LIST)
    key_approve = api_client.post(_approve_url(proposal), {}, format="json")
    anonymous = anonymous_api_client.post(_approve_url(proposal), {}, format="json")

    # then
    assert key_list.status_code == 403 and key_approve.status_code == 403
    assert "API keys cannot decide prices" in key_approve.json()["errors"][0]["reason"]
    assert anonymous.status_code == 401
    assert PriceProposal.objects.get(pk=proposal.pk).status == ProposalStatus.PENDING


def test_a_session_user_sending_an_api_key_too_is_still_refused(merchant, merchant_manager, api_client):
    # given
    proposal = _proposal(merchant)
    client = _session(merchant_manager)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_client.raw_key}")

    # when
    response = client.post(_approve_url(proposal), {}, format="json")

    # then
    assert response.status_code == 403


def test_support_agent_gets_403_and_another_merchants_manager_404(merchant, support_agent, other_merchant_manager):
    # given
    proposal = _proposal(merchant)

    # when
    agent = _session(support_agent).post(_approve_url(proposal), {}, format="json")
    agent_list = _session(support_agent).get(LIST)
    other = _session(other_merchant_manager).post(_approve_url(proposal), {}, format="json")
    other_reject = _session(other_merchant_manager).post(_reject_url(proposal), {}, format="json")

    # then
    assert agent.status_code == 403 and agent_list.status_code == 403
    assert other.status_code == 404 and other_reject.status_code == 404
    assert Product.objects.get(pk=proposal.product_id).price == D("25.00")


def test_approve_makes_the_price_live_and_answers_the_change(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant)

    # when
    response = _session(merchant_manager).post(_approve_url(proposal), {"note": "ok"}, format="json")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["proposal"]["status"] == "approved" and body["proposal"]["decided_by"] == "manager"
    assert body["price_change"]["from_price"] == "25.00" and body["price_change"]["to_price"] == "26.50"
    assert Product.objects.get(pk=proposal.product_id).price == D("26.50")


def test_approve_breaking_a_guardrail_is_409_naming_the_failed_checks(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant)
    GuardrailFactory(merchant=merchant, price_ceiling=D("26.00"), max_change_per_step=D("0.02"))

    # when
    response = _session(merchant_manager).post(_approve_url(proposal), {}, format="json")

    # then
    assert response.status_code == 409
    errors = response.json()["errors"]
    assert {error["field"] for error in errors} == {"proposed_price"}
    assert sorted(error["reason"].split(":")[0] for error in errors) == ["ceiling", "max_change_per_step"]
    assert not PriceChange.objects.exists()


def test_approve_twice_or_stale_is_409(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant)
    stale = _proposal(merchant)
    Product.objects.filter(pk=stale.product_id).update(price=D("24.00"))
    client = _session(merchant_manager)

    # when
    client.post(_approve_url(proposal), {}, format="json")
    again = client.post(_approve_url(proposal), {}, format="json")
    stale_response = client.post(_approve_url(stale), {}, format="json")

    # then
    assert again.status_code == 409 and "status" in _errors(again)
    assert stale_response.status_code == 409 and "current_price" in _errors(stale_response)
    assert PriceChange.objects.count() == 1


def test_bad_decision_input_is_400_and_unknown_ids_404(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant)
    client = _session(merchant_manager)

    # when
    too_long = client.post(_approve_url(proposal), {"note": "x" * 501}, format="json")
    not_an_object = client.post(_reject_url(proposal), ["note"], format="json")
    unknown = client.post("/api/v1/price-proposals/999999/approve", {}, format="json")

    # then
    assert too_long.status_code == 400 and "note" in _errors(too_long)
    assert not_an_object.status_code == 400
    assert unknown.status_code == 404
    assert PriceProposal.objects.get(pk=proposal.pk).status == ProposalStatus.PENDING


def test_reject_keeps_the_price(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant)

    # when
    response = _session(merchant_manager).post(_reject_url(proposal), {"note": "not now"}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["proposal"]["status"] == "rejected" and response.json()["price_change"] is None
    assert Product.objects.get(pk=proposal.product_id).price == D("25.00")


def test_rollback_restores_the_price_and_refuses_bad_input_wrong_callers_and_a_second_time(
    merchant, merchant_manager, other_merchant_manager, support_agent, api_client
):
    # given
    change = price_proposal_approve(proposal=_proposal(merchant), actor=merchant_manager)
    client = _session(merchant_manager)

    # when
    no_reason = client.post(_rollback_url(change), {}, format="json")
    blank = client.post(_rollback_url(change), {"reason": ""}, format="json")
    other = _session(other_merchant_manager).post(_rollback_url(change), {"reason": "x"}, format="json")
    agent = _session(support_agent).post(_rollback_url(change), {"reason": "x"}, format="json")
    key = api_client.post(_rollback_url(change), {"reason": "x"}, format="json")
    done = client.post(_rollback_url(change), {"reason": "complaints"}, format="json")
    twice = client.post(_rollback_url(change), {"reason": "again"}, format="json")

    # then
    assert no_reason.status_code == 400 and "reason" in _errors(no_reason)
    assert blank.status_code == 400
    assert (other.status_code, agent.status_code, key.status_code) == (404, 403, 403)
    assert done.status_code == 200
    assert done.json()["source"] == "rollback" and done.json()["reverts_id"] == change.pk
    assert done.json()["to_price"] == "25.00"
    assert twice.status_code == 409 and "price_change" in _errors(twice)
    assert Product.objects.get(pk=change.product_id).price == D("25.00")


def test_rollback_into_a_floor_in_force_now_is_409(merchant, merchant_manager):
    # given
    change = price_proposal_approve(proposal=_proposal(merchant), actor=merchant_manager)
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=change.product, price_floor=D("26"))

    # when
    response = _session(merchant_manager).post(_rollback_url(change), {"reason": "undo"}, format="json")

    # then
    assert response.status_code == 409 and "to_price" in _errors(response)


def test_openapi_schema_stays_valid_and_lists_the_workflow_paths(anonymous_api_client):
    # when
    response = anonymous_api_client.get("/api/schema/")

    # then
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert {
        "/api/v1/price-proposals",
        "/api/v1/price-proposals/{proposal_id}/approve",
        "/api/v1/price-proposals/{proposal_id}/reject",
        "/api/v1/price-changes/{change_id}/rollback",
    } <= set(schema["paths"])
