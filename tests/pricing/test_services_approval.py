import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.db.models import RestrictedError
from django.utils import timezone

from catalog.models import Product
from pricing.guardrails import GuardrailLimits, GuardrailViolation
from pricing.models import GuardrailScope, PriceChange, PriceChangeSource, PriceProposal, ProposalStatus
from pricing.selectors.guardrails import pricing_settings_for
from pricing.services.approval import (
    PriceDecisionForbidden,
    ProposalNotPending,
    ProposalStale,
    RollbackRefused,
    price_change_rollback,
    price_guardrail_checks,
    price_proposal_approve,
    price_proposal_auto_approve,
    price_proposal_reject,
    price_proposals_decide_bulk,
)
from pricing.services.guardrails import guardrail_save
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import ProductFactory
from tests.factories.pricing import GuardrailFactory, PriceProposalFactory

pytestmark = pytest.mark.django_db

D = Decimal


def _proposal(merchant, *, price="25.00", proposed="26.50", **product_fields) -> PriceProposal:
    product = ProductFactory(merchant=merchant, price=D(price), **product_fields)
    return PriceProposalFactory(merchant=merchant, product=product, proposed_price=D(proposed))


def _live_price(proposal: PriceProposal) -> Decimal:
    return Product.objects.get(pk=proposal.product_id).price


def _actions(merchant) -> list[str]:
    return list(AuditLogEntry.objects.for_merchant(merchant).order_by("pk").values_list("action", flat=True))


# --- approve --------------------------------------------------------------------------------------------


def test_approving_puts_the_price_live_records_the_change_and_audits_who_from_to_why(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant)

    # when
    change = price_proposal_approve(proposal=proposal, actor=merchant_manager, note="summer season")

    # then
    assert _live_price(proposal) == D("26.50")
    assert (change.from_price, change.to_price, change.source) == (D("25.00"), D("26.50"), PriceChangeSource.APPROVED)
    assert change.proposal == proposal and change.actor == merchant_manager and change.reason == "summer season"
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.APPROVED
    assert proposal.decided_by == merchant_manager and proposal.decision_note == "summer season"
    assert _actions(merchant)[-2:] == ["price.change", "price_proposal.approve"]
    audit = AuditLogEntry.objects.for_merchant(merchant).get(action="price.change")
    assert audit.actor == merchant_manager
    assert audit.detail.items() >= {"from": "25.00", "to": "26.50", "reason": "summer season"}.items()


def test_approving_twice_makes_one_price_change(merchant, merchant_manager, platform_admin):
    # given
    proposal = _proposal(merchant)
    price_proposal_approve(proposal=proposal, actor=merchant_manager)

    # when / then
    with pytest.raises(ProposalNotPending):
        price_proposal_approve(proposal=PriceProposal.objects.get(pk=proposal.pk), actor=platform_admin)
    assert PriceChange.objects.for_merchant(merchant).count() == 1


def test_a_guardrail_tightened_after_the_proposal_blocks_its_approval(merchant, merchant_manager):
    # given: proposed +6% when no limit existed; then the shop caps a step at 5%
    proposal = _proposal(merchant)
    guardrail_save(
        merchant=merchant,
        actor=merchant_manager,
        scope=GuardrailScope.MERCHANT,
        limits=GuardrailLimits(max_change_per_step=D("0.05")),
    )

    # when
    with pytest.raises(GuardrailViolation) as refused:
        price_proposal_approve(proposal=proposal, actor=merchant_manager)

    # then: nothing changed
    assert [check.name for check in refused.value.checks] == ["max_change_per_step"]
    assert _live_price(proposal) == D("25.00")
    assert not PriceChange.objects.exists()
    assert PriceProposal.objects.get(pk=proposal.pk).status == ProposalStatus.PENDING


@pytest.mark.parametrize(
    ("guardrail", "failing"),
    [
        ({"price_ceiling": D("26.00")}, "ceiling"),
        ({"min_margin": D("0.60")}, "min_margin"),
        ({"max_change_per_week": D("0.05")}, "max_change_per_week"),
        ({"max_changes_per_period": 0}, "max_changes"),
        ({"competitor_band_high": D("1.05")}, "competitor_band"),
    ],
)
def test_each_guardrail_in_force_at_decision_time_refuses_approval(merchant, merchant_manager, guardrail, failing):
    # given: competitor at 24.00, so +5% of it is 25.20
    proposal = _proposal(merchant)
    proposal.product.competitor_prices.create(
        merchant=merchant, competitor="Rival", price=D("24.00"), observed_at=timezone.now()
    )
    GuardrailFactory(merchant=merchant, **guardrail)

    # when
    with pytest.raises(GuardrailViolation) as refused:
        price_proposal_approve(proposal=proposal, actor=merchant_manager)

    # then
    assert {check.name for check in refused.value.checks} == {failing}
    assert _live_price(proposal) == D("25.00")


def test_map_on_the_product_refuses_a_cut_below_it(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant, proposed="23.00")
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=proposal.product, map_price=D("24.00"))

    # when / then
    with pytest.raises(GuardrailViolation):
        price_proposal_approve(proposal=proposal, actor=merchant_manager)


def test_a_proposal_made_against_a_price_no_longer_live_is_refused_as_stale(merchant, merchant_manager):
    # given: the catalog import moved the price after the proposal was made
    proposal = _proposal(merchant)
    Product.objects.filter(pk=proposal.product_id).update(price=D("24.00"))

    # when / then
    with pytest.raises(ProposalStale):
        price_proposal_approve(proposal=proposal, actor=merchant_manager)
    assert _live_price(proposal) == D("24.00")


@pytest.mark.parametrize("who", ["support_agent", "other_merchant_manager", "nobody"])
def test_only_the_merchants_managers_may_decide(merchant, request, who):
    # given
    actor = None if who == "nobody" else request.getfixturevalue(who)
    proposal = _proposal(merchant)

    # when / then
    with pytest.raises(PriceDecisionForbidden):
        price_proposal_approve(proposal=proposal, actor=actor)
    with pytest.raises(PriceDecisionForbidden):
        price_proposal_reject(proposal=proposal, actor=actor)
    with pytest.raises(PriceDecisionForbidden):
        price_proposals_decide_bulk(merchant=merchant, proposal_ids=[proposal.pk], actor=actor, approve=True)
    assert _live_price(proposal) == D("25.00")
    assert PriceProposal.objects.get(pk=proposal.pk).status == ProposalStatus.PENDING


def test_a_platform_admin_may_decide_any_merchants_proposal(merchant, platform_admin):
    # given
    proposal = _proposal(merchant)

    # when
    price_proposal_approve(proposal=proposal, actor=platform_admin)

    # then
    assert _live_price(proposal) == D("26.50")


def test_rejecting_keeps_the_price_and_audits_the_note(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant)

    # when
    price_proposal_reject(proposal=proposal, actor=merchant_manager, note="brand event next week")

    # then
    proposal.refresh_from_db()
    assert proposal.status == ProposalStatus.REJECTED and proposal.decided_by == merchant_manager
    assert _live_price(proposal) == D("25.00")
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="price_proposal.reject")
    assert entry.detail["note"] == "brand event next week"
    with pytest.raises(ProposalNotPending):
        price_proposal_approve(proposal=proposal, actor=merchant_manager)


# --- bulk -----------------------------------------------------------------------------------------------


def test_bulk_approval_decides_each_alone_and_lets_no_violation_or_foreign_id_through(
    merchant, other_merchant, merchant_manager
):
    # given: one fine, one breaking its own ceiling, one stale, one of another shop, one already rejected
    fine = _proposal(merchant)
    capped = _proposal(merchant)
    GuardrailFactory(merchant=merchant, scope=GuardrailScope.PRODUCT, product=capped.product, price_ceiling=D("26"))
    stale = _proposal(merchant)
    Product.objects.filter(pk=stale.product_id).update(price=D("25.50"))
    foreign = _proposal(other_merchant)
    rejected = _proposal(merchant)
    price_proposal_reject(proposal=rejected, actor=merchant_manager)

    # when
    result = price_proposals_decide_bulk(
        merchant=merchant,
        proposal_ids=[fine.pk, capped.pk, stale.pk, foreign.pk, rejected.pk, fine.pk],
        actor=merchant_manager,
        approve=True,
    )

    # then
    assert result.decided == (fine.pk,)
    assert set(result.refused) == {capped.pk, stale.pk, foreign.pk, rejected.pk}
    assert "ceiling" in result.refused[capped.pk]
    assert "Stale" in result.refused[stale.pk]
    assert result.refused[foreign.pk] == "No such proposal in this shop."
    assert _live_price(fine) == D("26.50")
    assert [_live_price(p) for p in (capped, foreign)] == [D("25.00"), D("25.00")]
    assert PriceChange.objects.count() == 1


def test_bulk_reject(merchant, merchant_manager):
    # given
    proposals = [_proposal(merchant) for _ in range(3)]

    # when
    result = price_proposals_decide_bulk(
        merchant=merchant, proposal_ids=[p.pk for p in proposals], actor=merchant_manager, approve=False
    )

    # then
    assert sorted(result.decided) == sorted(p.pk for p in proposals) and not result.refused
    assert set(PriceProposal.objects.values_list("status", flat=True)) == {ProposalStatus.REJECTED}


# --- auto-approve ---------------------------------------------------------------------------------------


def _band(merchant, share: str) -> None:
    settings = pricing_settings_for(merchant=merchant)
    settings.auto_approve_max_change = D(share)
    settings.save()


@pytest.mark.parametrize(
    ("band", "proposed", "approved"),
    [("0", "25.50", False), ("0.03", "25.75", True), ("0.03", "25.76", False), ("0.03", "24.25", True)],
)
def test_auto_approve_only_within_the_band(merchant, band, proposed, approved):
    # given
    _band(merchant, band)
    proposal = _proposal(merchant, proposed=proposed)

    # when
    change = price_proposal_auto_approve(proposal=proposal)

    # then
    proposal.refresh_from_db()
    assert (change is not None) is approved
    if approved:
        assert change.source == PriceChangeSource.AUTO_APPROVED and change.actor is None
        assert proposal.status == ProposalStatus.AUTO_APPROVED
        assert _live_price(proposal) == D(proposed)
    else:
        assert proposal.status == ProposalStatus.PENDING
        assert _live_price(proposal) == D("25.00")


def test_auto_approve_never_passes_a_guardrail_failing_now(merchant):
    # given
    _band(merchant, "0.10")
    proposal = _proposal(merchant, proposed="26.00")
    GuardrailFactory(merchant=merchant, price_ceiling=D("25.99"))

    # when
    change = price_proposal_auto_approve(proposal=proposal)

    # then
    assert change is None
    assert PriceProposal.objects.get(pk=proposal.pk).status == ProposalStatus.PENDING


# --- rollback -------------------------------------------------------------------------------------------


def test_rollback_restores_the_previous_price_as_a_new_change_and_audits_it(merchant, merchant_manager):
    # given
    proposal = _proposal(merchant)
    change = price_proposal_approve(proposal=proposal, actor=merchant_manager)

    # when
    rollback = price_change_rollback(change=change, actor=merchant_manager, reason="conversion dropped")

    # then
    assert _live_price(proposal) == D("25.00")
    assert (rollback.from_price, rollback.to_price) == (D("26.50"), D("25.00"))
    assert rollback.source == PriceChangeSource.ROLLBACK and rollback.reverts == change
    entry = AuditLogEntry.objects.for_merchant(merchant).get(action="price.rollback")
    assert entry.detail["reason"] == "conversion dropped" and entry.actor == merchant_manager
    assert PriceChange.objects.count() == 2


def test_rollback_is_refused_after_a_later_change_until_that_is_undone_and_never_twice(merchant, merchant_manager):
    # given: two approved changes on one product
    first = price_proposal_approve(proposal=_proposal(merchant), actor=merchant_manager)
    later = PriceProposalFactory(merchant=merchant, product=first.product, proposed_price=D("27.00"))
    second = price_proposal_approve(proposal=later, actor=merchant_manager)

    # when / then
    with pytest.raises(RollbackRefused, match="later change"):
        price_change_rollback(change=first, actor=merchant_manager, reason="oops")
    price_change_rollback(change=second, actor=merchant_manager, reason="oops")
    with pytest.raises(RollbackRefused, match="already"):
        price_change_rollback(change=second, actor=merchant_manager, reason="again")
    assert Product.objects.get(pk=first.product_id).price == D("26.50")
    # once the later change is undone, the earlier one unwinds too
    price_change_rollback(change=first, actor=merchant_manager, reason="unwind")
    assert Product.objects.get(pk=first.product_id).price == D("25.00")


def test_rollback_rechecks_price_level_guardrails_but_not_the_pace_limits(merchant, merchant_manager):
    # given: a change, then limits on how fast prices move that the move back would break
    change = price_proposal_approve(proposal=_proposal(merchant), actor=merchant_manager)
    GuardrailFactory(merchant=merchant, max_change_per_step=D("0.01"), max_changes_per_period=1)
    in_force = price_guardrail_checks(product=change.product, price=change.from_price)
    assert {check.name for check in in_force if not check.passed} == {"max_change_per_step", "max_changes"}

    # when
    rollback = price_change_rollback(change=change, actor=merchant_manager, reason="pace limits do not apply")

    # then
    assert rollback.to_price == D("25.00")
    assert Product.objects.get(pk=change.product_id).price == D("25.00")


def test_rollback_is_refused_when_the_old_price_breaks_a_floor_in_force_now(merchant, merchant_manager):
    # given: 25.00 → 26.50, then the shop sets a floor of 26.00
    change = price_proposal_approve(proposal=_proposal(merchant), actor=merchant_manager)
    GuardrailFactory(merchant=merchant, price_floor=D("26.00"))

    # when / then
    with pytest.raises(GuardrailViolation) as refused:
        price_change_rollback(change=change, actor=merchant_manager, reason="undo")
    assert [check.name for check in refused.value.checks] == ["floor"]
    assert Product.objects.get(pk=change.product_id).price == D("26.50")


def test_rollback_needs_a_reason_and_a_decider(merchant, merchant_manager, support_agent):
    # given
    change = price_proposal_approve(proposal=_proposal(merchant), actor=merchant_manager)

    # when / then
    with pytest.raises(RollbackRefused):
        price_change_rollback(change=change, actor=merchant_manager, reason="  ")
    with pytest.raises(PriceDecisionForbidden):
        price_change_rollback(change=change, actor=support_agent, reason="undo")
    assert PriceChange.objects.count() == 1


def test_change_count_limit_counts_live_changes_within_the_period(merchant, merchant_manager):
    # given: at most one change in 7 days; one happened yesterday
    proposal = _proposal(merchant)
    GuardrailFactory(merchant=merchant, max_changes_per_period=1, period_days=7)
    PriceChange.objects.create(
        merchant=merchant,
        product=proposal.product,
        from_price=D("24.00"),
        to_price=D("25.00"),
        source=PriceChangeSource.APPROVED,
        reason="earlier",
        created_at=timezone.now() - timedelta(days=1),
    )

    # when / then
    with pytest.raises(GuardrailViolation) as refused:
        price_proposal_approve(proposal=proposal, actor=merchant_manager)
    assert [check.name for check in refused.value.checks] == ["max_changes"]


# --- concurrency (PostgreSQL) ---------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_deciders_approving_at_once_make_one_price_change(merchant, merchant_manager, platform_admin):
    # given
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")
    proposal = _proposal(merchant)
    barrier = threading.Barrier(2)
    outcomes, errors = [], []

    def approve(actor):
        try:
            barrier.wait()
            outcomes.append(price_proposal_approve(proposal=PriceProposal.objects.get(pk=proposal.pk), actor=actor))
        except ProposalNotPending as refused:
            outcomes.append(refused)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    # when
    threads = [threading.Thread(target=approve, args=(actor,)) for actor in (merchant_manager, platform_admin)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then
    assert not errors, errors
    assert sum(isinstance(outcome, PriceChange) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, ProposalNotPending) for outcome in outcomes) == 1
    assert PriceChange.objects.filter(product_id=proposal.product_id).count() == 1


def test_auto_approval_stamps_the_back_offices_clock(merchant):
    # given a simulated shop's night, whose clock is not the wall clock
    settings = pricing_settings_for(merchant=merchant)
    settings.auto_approve_max_change = Decimal("0.10")
    settings.save()
    night = timezone.now() - timedelta(days=20)
    proposal = PriceProposalFactory(merchant=merchant, created_at=night)

    # when
    change = price_proposal_auto_approve(proposal=proposal, now=night)

    # then pace guardrails and the price-in-force history see the change when it happened
    assert change.created_at == night
    proposal.refresh_from_db()
    assert proposal.decided_at == night


def test_price_history_keeps_a_product_but_not_its_merchant(merchant, merchant_manager):
    # given a product with a live change
    proposal = PriceProposalFactory(merchant=merchant)
    change = price_proposal_approve(proposal=proposal, actor=merchant_manager)

    # when / then deleting the product alone is refused: its price history must survive
    with pytest.raises(RestrictedError):
        change.product.delete()

    # when the whole shop is deleted
    merchant.delete()

    # then its price history goes with it
    assert not PriceChange.objects.filter(pk=change.pk).exists()
