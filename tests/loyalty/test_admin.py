from decimal import Decimal

import pytest

from loyalty.models import EntryKind, LoyaltyProgram, PointsEntry, Tier
from loyalty.services.points import loyalty_account_for, points_earn_for_order
from revopt.tenancy.models import AuditLogEntry
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import LoyaltyProgramFactory

pytestmark = pytest.mark.django_db

ACCOUNTS_URL = "/admin/loyalty/loyaltyaccount/"
PROGRAMS_URL = "/admin/loyalty/loyaltyprogram/"


@pytest.fixture
def manager_client(client, merchant_manager):
    client.force_login(merchant_manager)
    return client


@pytest.fixture
def account(merchant):
    LoyaltyProgramFactory(merchant=merchant)
    customer = CustomerFactory(merchant=merchant, external_id="shopper-1", email="ann@example.com")
    points_earn_for_order(order=OrderFactory(merchant=merchant, customer=customer, subtotal=Decimal("300")))
    return loyalty_account_for(merchant=merchant, customer=customer)


def _inline_management(prefix: str) -> dict:
    return {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000"}  # fmt: skip


def test_adjusting_points_asks_for_a_reason_then_writes_an_audited_entry(manager_client, merchant, account):
    # given
    url = f"{ACCOUNTS_URL}{account.pk}/adjust/"

    # when
    without_reason = manager_client.post(url, {"points": "50", "reason": "   "})
    with_reason = manager_client.post(url, {"points": "50", "reason": "Late delivery"})

    # then
    assert without_reason.status_code == 200
    assert "Say why" in without_reason.content.decode() or "required" in without_reason.content.decode()
    assert with_reason.status_code == 302
    entry = PointsEntry.objects.get(account=account, kind=EntryKind.ADJUST)
    assert (entry.points, entry.reason) == (50, "Late delivery")
    assert AuditLogEntry.objects.filter(merchant=merchant, action="loyalty.points_adjust").count() == 1


def test_the_adjust_action_applies_to_the_selected_accounts_after_the_reason_page(manager_client, account):
    # given
    selection = {"action": "adjust_points", "_selected_action": [account.pk]}

    # when
    page = manager_client.post(ACCOUNTS_URL, selection)
    applied = manager_client.post(ACCOUNTS_URL, {**selection, "apply": "1", "points": "-100", "reason": "Duplicate"})

    # then
    assert page.status_code == 200 and "Adjust points" in page.content.decode()
    assert applied.status_code == 302
    assert PointsEntry.objects.get(account=account, kind=EntryKind.ADJUST).points == -100


def test_accounts_list_shows_the_balance_and_the_ledger_cannot_be_edited(manager_client, account):
    # given
    entry = PointsEntry.objects.get(account=account)

    # when
    accounts = manager_client.get(ACCOUNTS_URL)
    entry_page = manager_client.get(f"/admin/loyalty/pointsentry/{entry.pk}/change/")
    edit = manager_client.post(f"/admin/loyalty/pointsentry/{entry.pk}/change/", {"points": "9999"})
    delete = manager_client.post(f"/admin/loyalty/pointsentry/{entry.pk}/delete/", {"post": "yes"})

    # then
    assert accounts.status_code == 200 and "300" in accounts.content.decode()
    assert entry_page.status_code == 200
    assert edit.status_code == 403 and delete.status_code == 403
    assert PointsEntry.objects.get(pk=entry.pk).points == 300


def test_support_agents_and_other_merchants_managers_cannot_adjust(
    client, account, support_agent, other_merchant_manager
):
    # given
    url = f"{ACCOUNTS_URL}{account.pk}/adjust/"

    # when
    client.force_login(support_agent)
    agent = client.post(url, {"points": "50", "reason": "because"})
    client.force_login(other_merchant_manager)
    other = client.post(url, {"points": "50", "reason": "because"})
    other_list = client.get(ACCOUNTS_URL)

    # then
    assert agent.status_code == 403
    assert other.status_code == 404
    assert "shopper-1" not in other_list.content.decode()
    assert not PointsEntry.objects.filter(kind=EntryKind.ADJUST).exists()


def test_a_manager_creates_a_program_with_tiers_inline_and_a_second_active_one_is_refused(manager_client, merchant):
    # given
    form = {
        "name": "Trail Points", "points_per_currency_unit": "2", "expiry_days": "365", "is_active": "on",
        **_inline_management("earn_rules"), **_inline_management("rewards"),
        "tiers-TOTAL_FORMS": "1", "tiers-INITIAL_FORMS": "0", "tiers-MIN_NUM_FORMS": "0", "tiers-MAX_NUM_FORMS": "1000",
        "tiers-0-name": "Gold", "tiers-0-threshold_points": "1000", "tiers-0-earn_multiplier": "1.5",
        "tiers-0-benefits": "Free shipping",
    }  # fmt: skip

    # when
    created = manager_client.post(f"{PROGRAMS_URL}add/", form)
    second = manager_client.post(f"{PROGRAMS_URL}add/", {**form, "name": "Other", "tiers-TOTAL_FORMS": "0"})

    # then
    assert created.status_code == 302, created.content.decode()[:2000]
    program = LoyaltyProgram.objects.get(merchant=merchant)
    assert Tier.objects.get(program=program).merchant == merchant
    assert AuditLogEntry.objects.filter(merchant=merchant, action="loyalty.program_created").exists()
    assert second.status_code == 200 and "deactivate it first" in second.content.decode()
    assert LoyaltyProgram.objects.filter(merchant=merchant).count() == 1


@pytest.mark.parametrize("model", ["insightrun", "customerinsight", "retentioncandidate", "redemption"])
def test_insight_and_redemption_lists_render_read_only(manager_client, model):
    # when
    response = manager_client.get(f"/admin/loyalty/{model}/")
    add = manager_client.get(f"/admin/loyalty/{model}/add/")

    # then
    assert response.status_code == 200
    assert add.status_code == 403


def test_a_program_with_members_cannot_be_deleted(manager_client, account):
    # when
    response = manager_client.post(f"{PROGRAMS_URL}{account.program_id}/delete/", {"post": "yes"})

    # then
    assert response.status_code == 403
    assert LoyaltyProgram.objects.filter(pk=account.program_id).exists()
    assert PointsEntry.objects.filter(account=account).exists()
