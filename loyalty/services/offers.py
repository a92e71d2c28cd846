"""The incentive decision at the cart (funnel): which offer, if any, maximizes expected margin for this cart.

Contract written by the lead; the body is being built. See the brief for the rules (experiment arm, opt-out,
exploration, uplift model, caps and budget under concurrency, one-time codes, logging).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from events.abandonment import CartSnapshot
from revopt.tenancy.models import Merchant

from ..models import OfferDecision


@dataclass(frozen=True)
class CartLineInput:
    sku: str
    quantity: int
    price: Decimal


@dataclass(frozen=True)
class OfferRequest:
    """What the storefront sends to `POST /api/v1/offers/decide` (already validated by the serializer)."""

    cart_id: str
    lines: tuple[CartLineInput, ...]
    session_id: str = ""
    customer_external_id: str | None = None  # the shop's user id
    anonymous_id: str | None = None
    device: str = "other"
    source: str = ""
    # Behaviour the storefront counted in this session, keyed by events.abandonment.SIGNAL_NAMES.
    signals: dict[str, float] = field(default_factory=dict)
    channel: str = "onsite"  # loyalty.models.OfferChannel


@dataclass(frozen=True)
class OfferOutcome:
    decision: OfferDecision
    snapshot: CartSnapshot


def offer_decide(*, merchant: Merchant, request: OfferRequest, now: datetime | None = None) -> OfferOutcome:
    """Decide, log and (for an offer) reserve budget and issue a one-time code. Always returns a logged
    decision; `decision.kind == "none"` with its reason when nothing is offered."""
    raise NotImplementedError


def offer_code_redeem(*, merchant: Merchant, code: str, order_id: int, at: datetime) -> OfferDecision | None:
    """Mark the offer with this code redeemed by the order, once: None when the code is unknown, expired or
    already redeemed by another order."""
    raise NotImplementedError
