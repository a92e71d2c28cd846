from decimal import Decimal

import pytest

from catalog.models import Product
from pricing.models import Guardrail, GuardrailScope, PriceChange, PriceProposal, ProposalStatus
from pricing.services.approval import price_proposal_approve
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import CategoryFactory, ProductFactory
from tests.factories.pricing import GuardrailFactory, PriceProposalFactory

pytestmark = pytest.mark.django_db

D = Decimal
PROPOSALS_URL = "/admin/pricing/priceproposal/"
CHANGES_URL = "/admin/pricing/pricechange/"
GUARDRAILS_URL = "/admin/pricing/guardrail/"
CURVE = [
    {"price": 22.0 + step, "units": 30.0 - step * 2, "profit": 300.0 + step * 10 - step**2 * 2,
     "profit_lower": 250.0, "profit_upper": 350.0, "revenue": 600.0}
    for step in range(7)
]  # fmt: skip


@pytest.fixture
def manager_client(client, merchant_manager):
    client.force_login(merchant_manager)
    return client


def _proposal(merchant, *, title="Trail Tent", proposed="26.50", **fields) -> PriceProposal:
    product = ProductFactory(merchant=merchant, title=title, price=D("25.00"))
    return PriceProposalFactory(merchant=merchant, product=product, proposed_price=D(proposed), curve=CURVE, **fields)


def test_queue_shows_own_proposals_with_change_impact_guardrails_and_sparkline(
    manager_client, merchant, other_merchant
):
    # given: ours passes; a second one breaks a ceiling set after it was made; one of another shop
    ours = _proposal(merchant)
    capped = _proposal(merchant, title="Camp Stove")
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=capped.product, price_ceiling=D("26"))
    _proposal(other_merchant, title="Their Kayak")

    # when
    response = manager_client.get(PROPOSALS_URL)

    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert "Trail Tent" in page and "Camp Stove" in page
    assert "Their Kayak" not in page
    assert "25.00 → <strong>26.50</strong>" in page
    assert "pricing-change pricing-up" in page and "+6.0%" in page
    assert "+9" in page and "+3 to +15" in page  # expected weekly profit with its interval
    assert "✗ ceiling" in page and "✓" in page
    assert page.count('class="pricing-sparkline"') == 2
    assert "Approve selected" in page and "Reject selected" in page
    assert ours.pk


def test_queue_filters_by_category_listing_only_the_shops_categories(manager_client, merchant, other_merchant):
    # given
    tents = CategoryFactory(merchant=merchant, name="Tents", path="Tents")
    CategoryFactory(merchant=other_merchant, name="Kayaks", path="Kayaks")
    in_tents = PriceProposalFactory(merchant=merchant, product=ProductFactory(merchant=merchant, category=tents))
    _proposal(merchant, title="Elsewhere")

    # when
    response = manager_client.get(PROPOSALS_URL, {"category": tents.pk})

    # then
    page = response.content.decode()
    assert in_tents.product.title in page and "Elsewhere" not in page
    assert "Kayaks" not in page


def test_bulk_approve_action_approves_the_good_and_lists_the_refused_with_reasons(manager_client, merchant):
    # given
    good = _proposal(merchant, title="Good One")
    capped = _proposal(merchant, title="Capped One")
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=capped.product, price_ceiling=D("26"))

    # when
    response = manager_client.post(
        PROPOSALS_URL, {"action": "approve_selected", "_selected_action": [good.pk, capped.pk]}, follow=True
    )

    # then
    page = response.content.decode()
    assert "1 proposal approved" in page
    assert "Capped One" in page and "ceiling" in page
    assert Product.objects.get(pk=good.product_id).price == D("26.50")
    assert Product.objects.get(pk=capped.product_id).price == D("25.00")
    assert PriceProposal.objects.get(pk=capped.pk).status == ProposalStatus.PENDING


def test_bulk_action_cannot_reach_another_merchants_proposals(manager_client, merchant, other_merchant):
    # given
    theirs = _proposal(other_merchant)

    # when
    manager_client.post(PROPOSALS_URL, {"action": "approve_selected", "_selected_action": [theirs.pk]}, follow=True)

    # then
    assert PriceProposal.objects.get(pk=theirs.pk).status == ProposalStatus.PENDING
    assert not PriceChange.objects.exists()


def test_change_view_shows_chart_reasons_checks_and_decision_buttons_but_no_editable_price(manager_client, merchant):
    # given
    proposal = _proposal(merchant)
    GuardrailFactory(merchant=merchant, price_floor=D("20"))

    # when
    response = manager_client.get(f"{PROPOSALS_URL}{proposal.pk}/change/")

    # then
    page = response.content.decode()
    assert response.status_code == 200
    assert "Expected profit per week by price" in page and "<svg" in page
    assert proposal.reasons[0] in page
    assert 'data-check="floor" data-passed="true"' in page
    assert f"{PROPOSALS_URL}{proposal.pk}/approve/" in page and f"{PROPOSALS_URL}{proposal.pk}/reject/" in page
    assert 'name="proposed_price"' not in page and 'name="status"' not in page


def test_posting_the_change_form_cannot_edit_a_proposal_by_hand(manager_client, merchant):
    # given
    proposal = _proposal(merchant)

    # when
    response = manager_client.post(
        f"{PROPOSALS_URL}{proposal.pk}/change/", {"proposed_price": "99.00", "status": "approved"}
    )

    # then
    assert response.status_code == 403
    proposal.refresh_from_db()
    assert proposal.proposed_price == D("26.50") and proposal.status == ProposalStatus.PENDING


def test_approve_button_makes_the_price_live_and_a_guardrail_refusal_is_shown(manager_client, merchant):
    # given
    proposal = _proposal(merchant)
    blocked = _proposal(merchant, title="Blocked")
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=blocked.product, map_price=D("30"))

    # when
    approved = manager_client.post(f"{PROPOSALS_URL}{proposal.pk}/approve/", {"note": "go"}, follow=True)
    refused = manager_client.post(f"{PROPOSALS_URL}{blocked.pk}/approve/", follow=True)

    # then
    assert "is now 26.50 (was 25.00)" in approved.content.decode()
    assert Product.objects.get(pk=proposal.product_id).price == D("26.50")
    assert PriceProposal.objects.get(pk=proposal.pk).decision_note == "go"
    assert "not approved" in refused.content.decode() and "advertised" in refused.content.decode()
    assert Product.objects.get(pk=blocked.product_id).price == D("25.00")


def test_reject_button_and_get_is_not_a_decision(manager_client, merchant):
    # given
    proposal = _proposal(merchant)

    # when
    get = manager_client.get(f"{PROPOSALS_URL}{proposal.pk}/reject/")
    manager_client.post(f"{PROPOSALS_URL}{proposal.pk}/reject/", {"note": "no"})

    # then
    assert get.status_code == 405
    assert PriceProposal.objects.get(pk=proposal.pk).status == ProposalStatus.REJECTED


def test_other_merchants_manager_and_support_agents_cannot_decide_in_the_admin(
    client, merchant, other_merchant_manager, support_agent
):
    # given
    proposal = _proposal(merchant)

    # when
    client.force_login(other_merchant_manager)
    foreign = client.post(f"{PROPOSALS_URL}{proposal.pk}/approve/")
    client.force_login(support_agent)
    agent = client.post(f"{PROPOSALS_URL}{proposal.pk}/approve/")
    agent_list = client.get(PROPOSALS_URL)

    # then
    assert foreign.status_code == 404
    assert agent.status_code in (403, 404)
    assert agent_list.status_code == 403
    assert PriceProposal.objects.get(pk=proposal.pk).status == ProposalStatus.PENDING


# --- price changes --------------------------------------------------------------------------------------


def test_price_changes_are_read_only_and_roll_back_through_the_button(manager_client, merchant, merchant_manager):
    # given
    change = price_proposal_approve(proposal=_proposal(merchant), actor=merchant_manager)

    # when
    page = manager_client.get(f"{CHANGES_URL}{change.pk}/change/").content.decode()
    add = manager_client.get(f"{CHANGES_URL}add/")
    delete = manager_client.post(f"{CHANGES_URL}{change.pk}/delete/", {"post": "yes"})
    without_reason = manager_client.post(f"{CHANGES_URL}{change.pk}/rollback/", {"reason": ""}, follow=True)
    rolled = manager_client.post(f"{CHANGES_URL}{change.pk}/rollback/", {"reason": "complaints"}, follow=True)

    # then
    assert "Roll back to 25.00" in page
    assert add.status_code == 403 and delete.status_code == 403
    assert "Say why" in without_reason.content.decode()
    assert "is back at 25.00" in rolled.content.decode()
    assert Product.objects.get(pk=change.product_id).price == D("25.00")
    assert PriceChange.objects.count() == 2


def test_roll_back_action_asks_why_then_unwinds_newest_first(manager_client, merchant, merchant_manager):
    # given: two changes on one product
    first = price_proposal_approve(proposal=_proposal(merchant), actor=merchant_manager)
    second = price_proposal_approve(
        proposal=PriceProposalFactory(merchant=merchant, product=first.product, proposed_price=D("27.00")),
        actor=merchant_manager,
    )
    selected = {"action": "roll_back", "_selected_action": [first.pk, second.pk]}

    # when
    confirm = manager_client.post(CHANGES_URL, selected)
    done = manager_client.post(CHANGES_URL, {**selected, "apply": "1", "reason": "bad week"}, follow=True)

    # then
    assert confirm.status_code == 200 and "Roll back 2 changes" in confirm.content.decode()
    assert "2 changes rolled back" in done.content.decode()
    assert Product.objects.get(pk=first.product_id).price == D("25.00")
    assert AuditLogEntry.objects.for_merchant(merchant).filter(action="price.rollback").count() == 2


# --- guardrails -----------------------------------------------------------------------------------------


def _guardrail_form(**overrides) -> dict:
    data = {"scope": "merchant", "category": "", "product": "", "note": ""}
    data.update(overrides)
    return data


def test_guardrail_admin_saves_through_the_service_and_shows_validation_beside_the_field(manager_client, merchant):
    # when
    bad = manager_client.post(f"{GUARDRAILS_URL}add/", _guardrail_form(price_floor="30", price_ceiling="20"))
    map_on_shop = manager_client.post(f"{GUARDRAILS_URL}add/", _guardrail_form(map_price="10"))
    good = manager_client.post(f"{GUARDRAILS_URL}add/", _guardrail_form(price_floor="5", min_margin="0.2"))

    # then
    assert bad.status_code == 200 and "The ceiling must be at least the floor." in bad.content.decode()
    assert "minimum advertised price belongs to one product" in map_on_shop.content.decode()
    assert good.status_code == 302
    row = Guardrail.objects.for_merchant(merchant).get()
    assert row.min_margin == D("0.2000")
    assert AuditLogEntry.objects.for_merchant(merchant).filter(action="guardrail.save").count() == 1


def test_guardrail_admin_refuses_another_merchants_product_and_a_second_row_for_a_target(
    manager_client, merchant, other_merchant
):
    # given
    theirs = ProductFactory(merchant=other_merchant)
    ours = ProductFactory(merchant=merchant)
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=ours, price_floor=D("1"))

    # when
    foreign = manager_client.post(f"{GUARDRAILS_URL}add/", _guardrail_form(scope="product", product=theirs.pk))
    twice = manager_client.post(f"{GUARDRAILS_URL}add/", _guardrail_form(scope="product", product=ours.pk))

    # then
    assert foreign.status_code == 200 and twice.status_code == 200
    assert "already has its guardrails" in twice.content.decode()
    assert Guardrail.objects.count() == 1


def test_settings_and_model_rows_admin_pages_render(manager_client, merchant):
    # when
    pages = [
        manager_client.get(url)
        for url in (
            "/admin/pricing/pricingsettings/",
            "/admin/pricing/pricingsettings/add/",
            "/admin/pricing/demandmodelrun/",
            "/admin/pricing/elasticityestimate/",
            GUARDRAILS_URL,
            CHANGES_URL,
        )
    ]

    # then
    assert [page.status_code for page in pages] == [200] * len(pages)


def test_queue_reads_a_constant_number_of_queries_however_many_rows(manager_client, merchant):
    # given
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    GuardrailFactory(merchant=merchant, price_floor=D("1"))
    for index in range(3):
        _proposal(merchant, title=f"First {index}")
    with CaptureQueriesContext(connection) as few:
        manager_client.get(PROPOSALS_URL)
    for index in range(12):
        _proposal(merchant, title=f"More {index}")

    # when
    with CaptureQueriesContext(connection) as many:
        response = manager_client.get(PROPOSALS_URL)

    # then
    assert response.content.decode().count('class="pricing-sparkline"') == 15
    assert len(many.captured_queries) == len(few.captured_queries)


def test_a_decided_proposal_shows_its_checks_at_decision_and_no_buttons(manager_client, merchant, merchant_manager):
    # given: approved, then a floor above the new price is set
    proposal = _proposal(merchant)
    price_proposal_approve(proposal=proposal, actor=merchant_manager)
    GuardrailFactory(merchant=merchant, price_floor=D("40"))

    # when
    page = manager_client.get(f"{PROPOSALS_URL}{proposal.pk}/change/").content.decode()
    listed = manager_client.get(PROPOSALS_URL).content.decode()

    # then
    assert "Guardrails when decided" in page
    assert 'data-check="floor"' not in page
    assert f"{PROPOSALS_URL}{proposal.pk}/approve/" not in page
    assert "✗" not in listed and "approved" in listed


def test_settings_admin_sets_the_auto_approve_band_through_the_service(manager_client, merchant):
    # given
    form = {
        "objective": "profit",
        "auto_approve_max_change": "0.02",
        "explore": "on",
        "horizon_days": "28",
        "history_days": "180",
    }

    # when
    response = manager_client.post("/admin/pricing/pricingsettings/add/", form)
    too_wide = manager_client.post("/admin/pricing/pricingsettings/add/", {**form, "auto_approve_max_change": "0.8"})

    # then
    assert response.status_code == 302
    assert too_wide.status_code in (200, 403)
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="pricing_settings.save")
    assert entry.detail["changed"]["auto_approve_max_change"] == [None, "0.0200"]
