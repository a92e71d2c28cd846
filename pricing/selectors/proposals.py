"""Reads of the approval queue: a merchant's proposals and price changes, scoped and with their rows joined."""

from __future__ import annotations

from django.db.models import QuerySet

from revopt.tenancy.models import Merchant

from ..models import PriceChange, PriceProposal


def price_proposals_for(*, merchant: Merchant, status: str | None = None, limit: int = 50) -> list[PriceProposal]:
    """The merchant's proposals, newest first, optionally of one status."""
    proposals: QuerySet[PriceProposal] = PriceProposal.objects.for_merchant(merchant).select_related(
        "product", "decided_by"
    )
    if status:
        proposals = proposals.filter(status=status)
    return list(proposals.order_by("-created_at", "-pk")[:limit])


def price_proposal_for(*, merchant: Merchant | None, proposal_id: int) -> PriceProposal | None:
    """One proposal of `merchant` (None: any merchant's, for platform admins), or None."""
    proposals = PriceProposal.objects.select_related("product", "merchant", "decided_by")
    if merchant is not None:
        proposals = proposals.for_merchant(merchant)
    return proposals.filter(pk=proposal_id).first()


def price_change_for(*, merchant: Merchant | None, change_id: int) -> PriceChange | None:
    changes = PriceChange.objects.select_related("product", "merchant", "actor")
    if merchant is not None:
        changes = changes.for_merchant(merchant)
    return changes.filter(pk=change_id).first()
