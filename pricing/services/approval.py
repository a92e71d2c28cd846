"""Deciding proposals and changing live prices: approve, reject, auto-approve, roll back.

Every path that makes a price live (the admin, the manager API, the merchant screens, auto-approval) ends
in `price_set_live`, after `_decide_locked` has, in one transaction with the product row and then the
proposal row locked (always in that order, so two deciders never deadlock):
- checked the decider may decide this merchant's prices;
- checked the proposal is still pending and was made against the price that is live now;
- re-checked every guardrail against the limits and the context as they are now, not as they were
  when the proposal was made (a guardrail tightened since blocks it).
Approving twice, or from two places at once, makes one price change: the second decider waits for the
lock and then finds the proposal decided.

Rollback restores the price a change replaced. It re-checks the price-level guardrails (floor, ceiling,
minimum margin, competitor band, MAP): a price that broke no rule when it went live may break one
tightened since, and a rollback must not be a way around the rules. It does not re-check the step, week
and change-count limits: it is the emergency brake that undoes a change, and a limit on how often prices
move must not keep a wrong price live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import Product
from revopt.tenancy.models import Merchant
from revopt.tenancy.services import audit_log_write

from ..guardrails import GuardrailCheck, GuardrailViolation, failed_checks, guardrail_checks
from ..models import PriceChange, PriceChangeSource, PriceProposal, PricingSettings, ProposalStatus
from ..selectors.access import can_decide_prices
from ..selectors.guardrails import guardrail_context_for, guardrail_limits_for

Actor = AbstractBaseUser | AnonymousUser | None
# The guardrails a rollback re-checks (see the module docstring).
ROLLBACK_CHECKS = frozenset({"floor", "ceiling", "min_margin", "competitor_band", "map"})


class PriceDecisionRefused(Exception):
    """Base of the refusals below; `reason` is a sentence for the merchant."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class PriceDecisionForbidden(PriceDecisionRefused):
    """The actor may not decide this merchant's prices."""


class ProposalNotPending(PriceDecisionRefused):
    """Already decided, superseded, or made against a price that is no longer live (stale)."""


class ProposalStale(ProposalNotPending):
    """Made against a price that is no longer the live one."""


class RollbackRefused(PriceDecisionRefused):
    """The change cannot be rolled back (a later change happened, or it was already rolled back)."""


@dataclass(frozen=True)
class BulkDecision:
    decided: tuple[int, ...] = ()
    refused: dict[int, str] = field(default_factory=dict)


def _require_decider(*, actor: Actor, merchant: Merchant) -> None:
    if not can_decide_prices(user=actor, merchant=merchant):
        raise PriceDecisionForbidden("Only this shop's managers and platform admins decide its prices.")


def _lock_product(product_id: int, merchant_id: int) -> Product:
    return Product.objects.for_merchant(merchant_id).select_for_update().get(pk=product_id)


def _lock_proposal(proposal_id: int, merchant_id: int) -> PriceProposal:
    return PriceProposal.objects.for_merchant(merchant_id).select_for_update().get(pk=proposal_id)


def _actor_or_none(actor: Actor) -> AbstractBaseUser | None:
    return actor if actor is not None and actor.is_authenticated else None


def price_guardrail_checks(*, product: Product, price: Decimal, now=None) -> tuple[GuardrailCheck, ...]:
    """Every guardrail of `product` judged at `price` with the limits and context in force now."""
    now = now or timezone.now()
    limits = guardrail_limits_for(merchant=product.merchant, product=product)
    context = guardrail_context_for(merchant=product.merchant, product=product, now=now)
    return guardrail_checks(limits, context, price)


@transaction.atomic
def price_set_live(
    *,
    product: Product,
    to_price: Decimal,
    source: str,
    actor: Actor,
    reason: str,
    proposal: PriceProposal | None = None,
    reverts: PriceChange | None = None,
    now: datetime | None = None,
) -> PriceChange:
    """Make `to_price` the product's live price and record the change (append-only) and an audit row.

    The primitive under every decision: it checks no permission or guardrail itself, its callers do.
    `now` is for the back office of a simulated shop, whose clock is not the wall clock."""
    if to_price <= 0:
        raise ValueError("a live price is above zero")
    locked = _lock_product(product.pk, product.merchant_id)
    now = now or timezone.now()
    from_price = locked.price
    locked.price = to_price
    locked.save(update_fields=["price", "updated_at"])
    product.price = to_price
    change = PriceChange.objects.create(
        merchant_id=locked.merchant_id,
        product=locked,
        from_price=from_price,
        to_price=to_price,
        source=source,
        proposal=proposal,
        reverts=reverts,
        actor=_actor_or_none(actor),
        reason=reason,
        created_at=now,
    )
    audit_log_write(
        merchant=locked.merchant,
        actor=_actor_or_none(actor),
        action="price.change",
        target=change,
        detail={
            "product": locked.sku,
            "from": str(from_price),
            "to": str(to_price),
            "source": source,
            "reason": reason,
            "proposal": proposal.pk if proposal is not None else None,
            "reverts": reverts.pk if reverts is not None else None,
        },
    )
    return change


def _decide_locked(*, proposal: PriceProposal) -> tuple[Product, PriceProposal]:
    """Lock the product then the proposal; refuse a decided or stale proposal."""
    product = _lock_product(proposal.product_id, proposal.merchant_id)
    locked = _lock_proposal(proposal.pk, proposal.merchant_id)
    if locked.status != ProposalStatus.PENDING:
        raise ProposalNotPending(f"This proposal is {locked.get_status_display().lower()}, not waiting for a decision.")
    if product.price != locked.current_price:
        raise ProposalStale(
            f"Stale: the proposal was made against {locked.current_price}, the live price is now {product.price}. "
            "Wait for a new proposal."
        )
    return product, locked


def _approve_locked(
    *, product: Product, proposal: PriceProposal, actor: Actor, note: str, source: str, status: str, now
) -> PriceChange:
    checks = price_guardrail_checks(product=product, price=proposal.proposed_price, now=now)
    failed = failed_checks(checks)
    if failed:
        raise GuardrailViolation(failed)
    reason = note or f"Proposal #{proposal.pk}: " + " ".join(proposal.reasons[:2] if proposal.reasons else [])
    change = price_set_live(
        product=product,
        to_price=proposal.proposed_price,
        source=source,
        actor=actor,
        reason=reason.strip(),
        proposal=proposal,
        now=now,
    )
    proposal.status, proposal.decided_at = status, now
    proposal.decided_by, proposal.decision_note = _actor_or_none(actor), note[:500]
    proposal.guardrail_checks = [check.as_dict() for check in checks]
    proposal.save(update_fields=["status", "decided_at", "decided_by", "decision_note", "guardrail_checks"])
    audit_log_write(
        merchant=product.merchant,
        actor=_actor_or_none(actor),
        action="price_proposal.approve" if status == ProposalStatus.APPROVED else "price_proposal.auto_approve",
        target=proposal,
        detail={
            "product": product.sku,
            "from": str(proposal.current_price),
            "to": str(proposal.proposed_price),
            "note": note,
            "price_change": change.pk,
        },
    )
    return change


def price_proposal_approve(*, proposal: PriceProposal, actor: Actor, note: str = "") -> PriceChange:
    """Put the proposed price live. Raises PriceDecisionForbidden, ProposalNotPending (decided or stale) or
    GuardrailViolation (a guardrail in force now fails; nothing changes)."""
    _require_decider(actor=actor, merchant=proposal.merchant)
    with transaction.atomic():
        product, locked = _decide_locked(proposal=proposal)
        change = _approve_locked(
            product=product,
            proposal=locked,
            actor=actor,
            note=note,
            source=PriceChangeSource.APPROVED,
            status=ProposalStatus.APPROVED,
            now=timezone.now(),
        )
    proposal.refresh_from_db()
    return change


def price_proposal_reject(*, proposal: PriceProposal, actor: Actor, note: str = "") -> PriceProposal:
    """Decline the proposal; the live price stays."""
    _require_decider(actor=actor, merchant=proposal.merchant)
    with transaction.atomic():
        _lock_product(proposal.product_id, proposal.merchant_id)
        locked = _lock_proposal(proposal.pk, proposal.merchant_id)
        if locked.status != ProposalStatus.PENDING:
            raise ProposalNotPending(
                f"This proposal is {locked.get_status_display().lower()}, not waiting for a decision."
            )
        locked.status, locked.decided_at = ProposalStatus.REJECTED, timezone.now()
        locked.decided_by, locked.decision_note = _actor_or_none(actor), note[:500]
        locked.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
        audit_log_write(
            merchant=proposal.merchant,
            actor=_actor_or_none(actor),
            action="price_proposal.reject",
            target=locked,
            detail={
                "product_id": locked.product_id,
                "from": str(locked.current_price),
                "to": str(locked.proposed_price),
                "note": note,
            },
        )
    proposal.refresh_from_db()
    return proposal


def _refusal_reason(error: Exception) -> str:
    if isinstance(error, GuardrailViolation):
        return "Breaks a guardrail: " + "; ".join(check.message for check in error.checks)
    if isinstance(error, PriceDecisionRefused):
        return error.reason
    return str(error)


def price_proposals_decide_bulk(
    *, merchant: Merchant, proposal_ids: Sequence[int], actor: Actor, approve: bool
) -> BulkDecision:
    """Approve (or reject) each proposal on its own, exactly as one at a time: one refusal (a guardrail, a
    stale price, another merchant's id) never stops the others and never lets one through."""
    _require_decider(actor=actor, merchant=merchant)
    unique_ids = list(dict.fromkeys(int(proposal_id) for proposal_id in proposal_ids))
    proposals = {
        proposal.pk: proposal
        for proposal in PriceProposal.objects.for_merchant(merchant)
        .filter(pk__in=unique_ids)
        .select_related("merchant")
    }
    decided: list[int] = []
    refused: dict[int, str] = {}
    for proposal_id in unique_ids:
        proposal = proposals.get(proposal_id)
        if proposal is None:
            refused[proposal_id] = "No such proposal in this shop."
            continue
        try:
            if approve:
                price_proposal_approve(proposal=proposal, actor=actor)
            else:
                price_proposal_reject(proposal=proposal, actor=actor)
        except (PriceDecisionRefused, GuardrailViolation) as error:
            refused[proposal_id] = _refusal_reason(error)
        else:
            decided.append(proposal_id)
    return BulkDecision(decided=tuple(decided), refused=refused)


def price_proposal_auto_approve(
    *, proposal: PriceProposal, settings: PricingSettings | None = None, now: datetime | None = None
) -> PriceChange | None:
    """Put a fresh proposal live without a person when the merchant's auto-approve band allows it: the band is
    set (> 0), the change is within it, and every guardrail passes now. Otherwise it stays pending.

    Pass the merchant's `settings` when deciding many proposals (saves a query each)."""
    if settings is None:
        settings = PricingSettings.objects.for_merchant(proposal.merchant_id).first()
    band = settings.auto_approve_max_change if settings is not None else Decimal("0")
    if band <= 0 or proposal.status != ProposalStatus.PENDING:
        return None
    if abs(proposal.proposed_price - proposal.current_price) > band * proposal.current_price:
        return None
    try:
        with transaction.atomic():
            product, locked = _decide_locked(proposal=proposal)
            change = _approve_locked(
                product=product,
                proposal=locked,
                actor=None,
                note=f"Auto-approved: within the ±{band * 100:.4g}% band.",
                source=PriceChangeSource.AUTO_APPROVED,
                status=ProposalStatus.AUTO_APPROVED,
                now=now or timezone.now(),
            )
    except (ProposalNotPending, GuardrailViolation):
        return None
    proposal.refresh_from_db()
    return change


def _undone_later_changes(change: PriceChange) -> bool:
    """Whether a change after `change` on its product is still in force (not itself rolled back)."""
    later = PriceChange.objects.for_merchant(change.merchant_id).filter(
        Q(created_at__gt=change.created_at) | Q(created_at=change.created_at, pk__gt=change.pk),
        product_id=change.product_id,
    )
    rolled_back = set(later.filter(source=PriceChangeSource.ROLLBACK).values_list("reverts_id", flat=True))
    return later.exclude(source=PriceChangeSource.ROLLBACK).exclude(pk__in=rolled_back).exists()


def price_change_rollback(*, change: PriceChange, actor: Actor, reason: str) -> PriceChange:
    """Restore the price `change` replaced, as a new change (source ROLLBACK, reverts=change).

    Refused (RollbackRefused) when the product's live price is no longer `change.to_price` (a later change
    happened: roll that back first), when the change was already rolled back, or without a reason; raises
    GuardrailViolation when the restored price breaks a price-level guardrail in force now."""
    _require_decider(actor=actor, merchant=change.merchant)
    reason = (reason or "").strip()
    if not reason:
        raise RollbackRefused("Say why the change is rolled back.")
    with transaction.atomic():
        product = _lock_product(change.product_id, change.merchant_id)
        locked = PriceChange.objects.for_merchant(change.merchant_id).get(pk=change.pk)
        if PriceChange.objects.for_merchant(change.merchant_id).filter(reverts=locked).exists():
            raise RollbackRefused("This change was already rolled back.")
        if product.price != locked.to_price or _undone_later_changes(locked):
            raise RollbackRefused(
                f"The live price is {product.price}, not the {locked.to_price} this change set: a later change "
                "happened. Roll that one back first."
            )
        checks = price_guardrail_checks(product=product, price=locked.from_price)
        failed = tuple(check for check in failed_checks(checks) if check.name in ROLLBACK_CHECKS)
        if failed:
            raise GuardrailViolation(failed)
        rollback = price_set_live(
            product=product,
            to_price=locked.from_price,
            source=PriceChangeSource.ROLLBACK,
            actor=actor,
            reason=reason,
            reverts=locked,
        )
        audit_log_write(
            merchant=product.merchant,
            actor=_actor_or_none(actor),
            action="price.rollback",
            target=rollback,
            detail={
                "product": product.sku,
                "from": str(locked.to_price),
                "to": str(locked.from_price),
                "reverts": locked.pk,
                "reason": reason,
            },
        )
    return rollback
