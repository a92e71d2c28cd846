"""Reads of the incentive decisions: a cart's standing decision, a code's offer, a customer's recent offers."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from events.models import Customer
from revopt.tenancy.models import Merchant

from ..models import IncentiveKind, OfferDecision, OfferSettings


def offer_settings_for(*, merchant: Merchant) -> OfferSettings:
    """The merchant's offer rules, created with the defaults on first use."""
    settings, _ = OfferSettings.objects.get_or_create(merchant=merchant)
    return settings


def allowed_incentive_kinds(*, settings: OfferSettings) -> tuple[str, ...]:
    """The kinds the decision may offer, in IncentiveKind order; empty `allowed_kinds` means all of them."""
    offers = [kind for kind in IncentiveKind.values if kind != IncentiveKind.NONE]
    if not settings.allowed_kinds:
        return tuple(offers)
    return tuple(kind for kind in offers if kind in settings.allowed_kinds)


def standing_decision(
    *, merchant: Merchant, cart_id: str, channel: str, now: datetime, valid_hours: int
) -> OfferDecision | None:
    """The decision already taken for this cart on this channel that still holds: an offer until its code
    expires, a "none" for the offers' validity. A storefront retry gets it back instead of a second one."""
    return (
        OfferDecision.objects.for_merchant(merchant)
        .filter(cart_id=cart_id, channel=channel, decided_at__gt=now - timedelta(hours=valid_hours))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("-decided_at", "-pk")
        .first()
    )


def cart_has_live_offer(*, merchant: Merchant, cart_id: str, now: datetime) -> bool:
    """Whether an unredeemed, unexpired offer of any channel is out for this cart."""
    return (
        OfferDecision.objects.for_merchant(merchant)
        .filter(cart_id=cart_id, expires_at__gt=now, redeemed_order__isnull=True)
        .exclude(kind=IncentiveKind.NONE)
        .exists()
    )


def offers_in_window(*, merchant: Merchant, customer: Customer, since: datetime) -> int:
    """Offers (not "none") decided for the customer since `since`: what the frequency cap counts."""
    return (
        OfferDecision.objects.for_merchant(merchant)
        .filter(customer=customer, decided_at__gte=since)
        .exclude(kind=IncentiveKind.NONE)
        .count()
    )


def offer_by_code(*, merchant: Merchant, code: str) -> OfferDecision | None:
    """The merchant's offer with this code (codes are matched case-insensitively, as shoppers type them)."""
    code = code.strip().upper()
    if not code:
        return None
    return OfferDecision.objects.for_merchant(merchant).filter(code=code).exclude(kind=IncentiveKind.NONE).first()
