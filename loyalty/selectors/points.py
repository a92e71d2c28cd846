"""Reads of the points program: balances (always the sum of the ledger), a customer's loyalty status for the
storefront and the support profile, and the cached "does this shop run a program?" the ingest path asks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import CharField, Exists, OuterRef, Q, Sum, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from events.models import Customer
from revopt.tenancy.models import Merchant

from ..ledger import EXPIRE, LedgerRow, LedgerState, replay
from ..models import EntryKind, LoyaltyAccount, LoyaltyProgram, PointsEntry, Reward, Tier

TIER_WINDOW = timedelta(days=365)
EXPIRING_SOON = timedelta(days=30)
RECENT_ENTRIES = 20
# Ingest asks once per batch with orders; a program switched on in the admin clears the entry at once.
ACTIVE_PROGRAM_CACHE_SECONDS = 60
# The kinds that count towards a tier: points earned, less what refunds clawed back (not staff adjustments).
TIER_KINDS = (EntryKind.EARN, EntryKind.CLAWBACK)


@dataclass(frozen=True)
class ExpiringPoints:
    points: int
    expires_at: datetime


@dataclass(frozen=True)
class LedgerLine:
    kind: str
    label: str
    points: int
    created_at: datetime
    expires_at: datetime | None
    reason: str
    reward_name: str | None
    order_external_id: str | None


@dataclass(frozen=True)
class LoyaltyStatus:
    program: LoyaltyProgram
    account: LoyaltyAccount | None
    balance: int
    tier: Tier | None
    next_tier: Tier | None
    points_to_next_tier: int
    # Between the current tier's threshold (or 0) and the next one's, 0..1; 1 at the top tier.
    progress_to_next_tier: float
    earned_last_365d: int
    rewards_available: tuple[Reward, ...]
    expiring_soon: tuple[ExpiringPoints, ...]
    recent_entries: tuple[LedgerLine, ...]


def _program_cache_key(merchant_id: int) -> str:
    return f"loyalty:active-program:{merchant_id}"


def active_program(*, merchant: Merchant) -> LoyaltyProgram | None:
    return LoyaltyProgram.objects.for_merchant(merchant).filter(is_active=True).first()


def merchant_has_active_program(*, merchant: Merchant) -> bool:
    """Cached for ACTIVE_PROGRAM_CACHE_SECONDS: the ingest path asks for every batch with orders."""
    key = _program_cache_key(merchant.pk)
    cached = cache.get(key)
    if cached is None:
        cached = LoyaltyProgram.objects.for_merchant(merchant).filter(is_active=True).exists()
        cache.set(key, cached, ACTIVE_PROGRAM_CACHE_SECONDS)
    return bool(cached)


def active_program_forget(*, merchant_id: int) -> None:
    cache.delete(_program_cache_key(merchant_id))


def points_balance(*, account: LoyaltyAccount) -> int:
    entries = PointsEntry.objects.filter(merchant_id=account.merchant_id, account=account)
    return int(entries.aggregate(total=Sum("points"))["total"] or 0)


def points_earned_since(*, account: LoyaltyAccount, now: datetime) -> int:
    """Points earned in the tier window ending at `now` (earns less clawbacks, never below 0)."""
    total = PointsEntry.objects.filter(
        merchant_id=account.merchant_id,
        account=account,
        kind__in=TIER_KINDS,
        created_at__gt=now - TIER_WINDOW,
        created_at__lte=now,
    ).aggregate(total=Sum("points"))["total"]
    return max(0, int(total or 0))


def _expired_entry_id(entry: PointsEntry) -> int | None:
    prefix = "expire:"
    if entry.kind != EntryKind.EXPIRE or not entry.idempotency_key.startswith(prefix):
        return None
    suffix = entry.idempotency_key[len(prefix) :]
    return int(suffix) if suffix.isdigit() else None


def ledger_rows(entries: list[PointsEntry]) -> list[LedgerRow]:
    return [
        LedgerRow(
            entry_id=entry.pk,
            kind=EXPIRE if entry.kind == EntryKind.EXPIRE else str(entry.kind),
            points=entry.points,
            created_at=entry.created_at,
            expires_at=entry.expires_at,
            order_id=entry.order_id,
            expires_entry_id=_expired_entry_id(entry),
        )
        for entry in entries
    ]


def ledger_state(*, account: LoyaltyAccount) -> LedgerState:
    """The account's lots after replaying its whole ledger (see loyalty.ledger)."""
    entries = list(
        PointsEntry.objects.filter(merchant_id=account.merchant_id, account=account).only(
            "pk", "kind", "points", "created_at", "expires_at", "order_id", "idempotency_key"
        )
    )
    return replay(ledger_rows(entries))


def tier_for_points(*, tiers: list[Tier], earned: int) -> Tier | None:
    """The highest tier whose threshold `earned` reaches (tiers in any order)."""
    reached = [tier for tier in tiers if tier.threshold_points <= earned]
    return max(reached, key=lambda tier: tier.threshold_points) if reached else None


def reward_allowed_for_tier(*, reward: Reward, tier: Tier | None) -> bool:
    if reward.minimum_tier_id is None:
        return True
    return tier is not None and tier.threshold_points >= reward.minimum_tier.threshold_points


def _ledger_line(entry: PointsEntry) -> LedgerLine:
    return LedgerLine(
        kind=str(entry.kind),
        label=EntryKind(entry.kind).label,
        points=entry.points,
        created_at=entry.created_at,
        expires_at=entry.expires_at,
        reason=entry.reason,
        reward_name=entry.reward.name if entry.reward_id is not None and entry.reward is not None else None,
        order_external_id=entry.order.external_id if entry.order_id is not None and entry.order else None,
    )


def loyalty_status(*, merchant: Merchant, customer: Customer, now: datetime | None = None) -> LoyaltyStatus | None:
    """The customer's standing in the merchant's active program; None when the shop has none. A customer
    without an account yet has a zero balance (reading never creates one)."""
    if customer.merchant_id != merchant.pk:
        raise ValueError("the customer belongs to another merchant")
    now = now or timezone.now()
    program = active_program(merchant=merchant)
    if program is None:
        return None
    tiers = list(Tier.objects.for_merchant(merchant).filter(program=program).order_by("threshold_points"))
    account = (
        LoyaltyAccount.objects.for_merchant(merchant)
        .filter(program=program, customer=customer)
        .select_related("tier")
        .first()
    )
    balance = earned = 0
    entries: list[PointsEntry] = []
    expiring: tuple[ExpiringPoints, ...] = ()
    if account is not None:
        entries = list(PointsEntry.objects.filter(merchant=merchant, account=account).select_related("reward", "order"))
        balance = sum(entry.points for entry in entries)
        earned = max(
            0,
            sum(
                entry.points
                for entry in entries
                if entry.kind in TIER_KINDS and now - TIER_WINDOW < entry.created_at <= now
            ),
        )
        by_date: dict[datetime, int] = {}
        for lot in replay(ledger_rows(entries)).expiring_by(now + EXPIRING_SOON):
            by_date[lot.expires_at] = by_date.get(lot.expires_at, 0) + lot.remaining
        expiring = tuple(ExpiringPoints(points=points, expires_at=moment) for moment, points in by_date.items())
    tier = account.tier if account is not None else None
    current_threshold = tier.threshold_points if tier is not None else 0
    next_tier = next((t for t in tiers if t.threshold_points > max(current_threshold, earned)), None)
    if next_tier is None:
        points_to_next, progress = 0, 1.0
    else:
        points_to_next = max(0, next_tier.threshold_points - earned)
        span = next_tier.threshold_points - current_threshold
        progress = min(1.0, max(0.0, (earned - current_threshold) / span)) if span > 0 else 1.0
    rewards = tuple(
        reward
        for reward in Reward.objects.for_merchant(merchant)
        .filter(program=program, is_active=True, points_cost__lte=max(balance, 0))
        .select_related("minimum_tier")
        if reward_allowed_for_tier(reward=reward, tier=tier)
    )
    recent = sorted(entries, key=lambda entry: (entry.created_at, entry.pk), reverse=True)[:RECENT_ENTRIES]
    return LoyaltyStatus(
        program=program,
        account=account,
        balance=balance,
        tier=tier,
        next_tier=next_tier,
        points_to_next_tier=points_to_next,
        progress_to_next_tier=progress,
        earned_last_365d=earned,
        rewards_available=rewards,
        expiring_soon=expiring,
        recent_entries=tuple(_ledger_line(entry) for entry in recent),
    )


def accounts_with_points_due(*, merchant: Merchant, now: datetime) -> list[int]:
    """Ids of accounts holding points past their expiry that may not have been written off yet: accounts with
    a positive balance and an expired lot without an expiry entry (spent lots are weeded out by the replay)."""
    written_off = PointsEntry.objects.filter(
        merchant=merchant, idempotency_key=Concat(Value("expire:"), Cast(OuterRef("pk"), CharField()))
    )
    due_accounts = (
        PointsEntry.objects.for_merchant(merchant)
        .filter(points__gt=0, expires_at__isnull=False, expires_at__lte=now)
        .filter(~Exists(written_off))
        .values("account_id")
    )
    return list(
        LoyaltyAccount.objects.for_merchant(merchant)
        .filter(pk__in=due_accounts)
        .annotate(balance=Sum("entries__points"))
        .filter(balance__gt=0)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def tier_window_earnings(*, merchant: Merchant, program: LoyaltyProgram, now: datetime) -> dict[int, tuple[int, int]]:
    """account id → (current tier id or 0, points earned in the window) for every account of the program."""
    rows = (
        LoyaltyAccount.objects.for_merchant(merchant)
        .filter(program=program)
        .annotate(
            earned=Sum(
                "entries__points",
                filter=Q(
                    entries__kind__in=TIER_KINDS,
                    entries__created_at__gt=now - TIER_WINDOW,
                    entries__created_at__lte=now,
                ),
            )
        )
        .values_list("pk", "tier_id", "earned")
    )
    return {pk: (tier_id or 0, max(0, int(earned or 0))) for pk, tier_id, earned in rows}
