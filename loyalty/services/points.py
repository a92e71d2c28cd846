"""Writes of the points program: earning, clawing back, redeeming, adjusting, expiring, tiers.

The ledger is append-only: these functions only ever insert `PointsEntry` rows, never update or delete
one, and the balance is the sum of the entries. Every write that can spend points locks the account row
first (`_locked_account`) and reads the balance inside the lock, so two redemptions of one customer queue up
and the second sees the first's entry: a redemption can never overspend. Each entry carries an idempotency
key unique per merchant, so a retried earn, clawback or redemption is recorded once.

Choices:
- Only identified customers (a shop `customer_id`) that were not erased earn; an anonymous shopper's
  order earns nothing, even if they log in later (the order moves to them, the points do not follow).
- An order earns when it is placed (the entry's `created_at` is `placed_at`, its expiry counts from there).
- A refund or cancellation claws back what the order earned, less any of it that already expired. The
  balance may go negative when the points were spent meanwhile; later earnings pay the debt off first.
- Spending takes the oldest unexpired points first (loyalty.ledger); points past their expiry are written off
  before any spend, so a customer never spends points that have expired.
- Tiers follow points earned (earns less clawbacks, not staff adjustments) over the last 365 days, up and
  down: re-evaluated after each earn or clawback, and daily for everyone (`tiers_reevaluate`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from events.models import Customer, Order, OrderStatus
from revopt.tenancy.models import Merchant, Role, StaffMembership
from revopt.tenancy.services import audit_log_write

from ..models import (
    EarnRule,
    EntryKind,
    LoyaltyAccount,
    LoyaltyProgram,
    PointsEntry,
    Redemption,
    Reward,
    Tier,
)
from ..selectors.points import (
    accounts_with_points_due,
    active_program,
    active_program_forget,
    ledger_state,
    points_balance,
    points_earned_since,
    reward_allowed_for_tier,
    tier_for_points,
    tier_window_earnings,
)

Actor = AbstractBaseUser | AnonymousUser | None
REASON_MAX = 500
ADJUST_MAX = 1_000_000
IDEMPOTENCY_KEY_MAX = 150
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
CODE_GROUPS = 3


class LoyaltyError(Exception):
    """Base of the refusals below; `field` names the input at fault, `reason` is a sentence for people."""

    field = "non_field_errors"

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        self.reason = reason
        if field is not None:
            self.field = field
        super().__init__(reason)


class NoActiveProgram(LoyaltyError):
    field = "program"


class CustomerNotEligible(LoyaltyError):
    field = "customer_id"


class InsufficientPoints(LoyaltyError):
    field = "reward_id"

    def __init__(self, *, balance: int, needed: int, field: str | None = None) -> None:
        self.balance = balance
        self.needed = needed
        super().__init__(f"The balance is {balance} points; this needs {needed}.", field=field)


class RewardNotAvailable(LoyaltyError):
    field = "reward_id"


class EarnRuleNotFound(LoyaltyError):
    field = "action"


class EarnLimitReached(LoyaltyError):
    field = "action"


class IdempotencyConflict(LoyaltyError):
    field = "idempotency_key"


class InvalidAdjustment(LoyaltyError):
    field = "points"


class AdjustForbidden(LoyaltyError):
    pass


@dataclass(frozen=True)
class OrderPointsResult:
    earned: int = 0
    clawed_back: int = 0


# --- accounts and locks ---------------------------------------------------------------------------------


def loyalty_account_for(
    *, merchant: Merchant, customer: Customer, program: LoyaltyProgram | None = None
) -> LoyaltyAccount | None:
    """The customer's account in the active program (or `program`), created on first use. None when the
    merchant runs no program or the customer was erased."""
    if customer.merchant_id != merchant.pk:
        raise ValueError("the customer belongs to another merchant")
    if customer.erased_at is not None:
        return None
    program = program or active_program(merchant=merchant)
    if program is None:
        return None
    if program.merchant_id != merchant.pk:
        raise ValueError("the program belongs to another merchant")
    account, _ = LoyaltyAccount.objects.get_or_create(
        program=program, customer=customer, defaults={"merchant": merchant, "created_at": timezone.now()}
    )
    return account


def _locked_account(account_id: int) -> LoyaltyAccount:
    """The account row locked for the rest of the transaction: every ledger write of one customer queues here."""
    return (
        LoyaltyAccount.objects.select_for_update(of=("self",))
        .select_related("program", "tier", "merchant")
        .get(pk=account_id)
    )


def _expires_at(program: LoyaltyProgram, earned_at: datetime) -> datetime | None:
    return earned_at + timedelta(days=program.expiry_days) if program.expiry_days else None


def _append(account: LoyaltyAccount, **fields: object) -> PointsEntry:
    return PointsEntry.objects.create(merchant_id=account.merchant_id, account=account, **fields)


def _existing(merchant_id: int, key: str) -> PointsEntry | None:
    return PointsEntry.objects.filter(merchant_id=merchant_id, idempotency_key=key).first()


def _expire_due_locked(account: LoyaltyAccount, now: datetime) -> int:
    """Write off what is left of every lot past its expiry; the caller holds the account's lock."""
    written = 0
    for lot in ledger_state(account=account).due(now):
        _append(
            account,
            kind=EntryKind.EXPIRE,
            points=-lot.remaining,
            idempotency_key=f"expire:{lot.entry_id}",
            created_at=now,
        )
        written += 1
    return written


# --- tiers ------------------------------------------------------------------------------------------------


def tier_evaluate(*, account: LoyaltyAccount, now: datetime | None = None) -> Tier | None:
    """Set the tier the points earned over the last 365 days reach (up or down); audited when it changes."""
    with transaction.atomic():
        return _tier_evaluate(account, now or timezone.now())


def _tier_evaluate(account: LoyaltyAccount, now: datetime) -> Tier | None:
    """tier_evaluate inside the caller's transaction (no savepoint: it runs once per earn)."""
    earned = points_earned_since(account=account, now=now)
    tiers = list(Tier.objects.filter(merchant_id=account.merchant_id, program_id=account.program_id))
    tier = tier_for_points(tiers=tiers, earned=earned)
    new_id = tier.pk if tier is not None else None
    if new_id == account.tier_id:
        return tier
    previous = next((t for t in tiers if t.pk == account.tier_id), None)
    LoyaltyAccount.objects.filter(pk=account.pk).update(tier=tier, tier_changed_at=now)
    account.tier, account.tier_changed_at = tier, now
    audit_log_write(
        merchant=account.merchant,
        actor=None,
        action="loyalty.tier_changed",
        target=account,
        detail={
            "customer": account.customer_id,
            "from": previous.name if previous is not None else None,
            "to": tier.name if tier is not None else None,
            "earned_last_365d": earned,
        },
    )
    return tier


def tiers_reevaluate(*, merchant: Merchant, now: datetime | None = None) -> int:
    """Daily: move every account of the active program whose 365-day earnings left its tier (mostly
    downgrades, as old earnings leave the window). Returns how many accounts changed tier."""
    now = now or timezone.now()
    program = active_program(merchant=merchant)
    if program is None:
        return 0
    tiers = list(Tier.objects.for_merchant(merchant).filter(program=program))
    changed = 0
    for account_id, (tier_id, earned) in tier_window_earnings(merchant=merchant, program=program, now=now).items():
        target = tier_for_points(tiers=tiers, earned=earned)
        if (target.pk if target is not None else 0) == tier_id:
            continue
        with transaction.atomic():
            tier_evaluate(account=_locked_account(account_id), now=now)
        changed += 1
    return changed


# --- earning ------------------------------------------------------------------------------------------------


def _order_points(program: LoyaltyProgram, order: Order, tier: Tier | None) -> int:
    spent = max(order.subtotal - order.discount, Decimal(0))
    base = (program.points_per_currency_unit * spent).to_integral_value(rounding=ROUND_FLOOR)
    multiplier = tier.earn_multiplier if tier is not None else Decimal(1)
    return int((base * multiplier).to_integral_value(rounding=ROUND_FLOOR))


def points_earn_for_order(*, order: Order, program: LoyaltyProgram | None = None) -> PointsEntry | None:
    """Points for a completed order: floor(points per unit × (subtotal − discount)) × the tier's multiplier,
    once per order (key "order:<id>"). None when nothing is earned: no active program, an anonymous or
    erased customer, an order no longer completed, or a zero amount."""
    customer = order.customer
    if not customer.is_identified or customer.erased_at is not None:
        return None
    program = program or active_program(merchant=order.merchant)
    if program is None or program.merchant_id != order.merchant_id:
        return None
    key = f"order:{order.pk}"
    with transaction.atomic():
        account = loyalty_account_for(merchant=order.merchant, customer=customer, program=program)
        if account is None:
            return None
        account = _locked_account(account.pk)
        existing = _existing(order.merchant_id, key)
        if existing is not None:
            return existing
        # Read inside the lock: a refund that committed meanwhile means the order earns nothing.
        current = Order.objects.filter(pk=order.pk).only("status", "subtotal", "discount", "placed_at").first()
        if current is None or current.status != OrderStatus.COMPLETED:
            return None
        points = _order_points(program, current, account.tier)
        if points <= 0:
            return None
        entry = _append(
            account,
            kind=EntryKind.EARN,
            points=points,
            idempotency_key=key,
            order_id=order.pk,
            created_at=current.placed_at,
            expires_at=_expires_at(program, current.placed_at),
        )
        # An order stamped a little ahead of this clock (allowed skew) still counts towards the tier now.
        _tier_evaluate(account, max(timezone.now(), current.placed_at))
    return entry


def points_clawback_for_refund(*, order: Order) -> PointsEntry | None:
    """Take back what a refunded or cancelled order earned (key "refund:<id>"), less what of it already
    expired. The balance may go negative if the points were spent; None when there is nothing to take."""
    earned = (
        PointsEntry.objects.filter(merchant_id=order.merchant_id, idempotency_key=f"order:{order.pk}")
        .only("pk", "account_id", "points")
        .first()
    )
    if earned is None:
        return None
    key = f"refund:{order.pk}"
    now = timezone.now()
    with transaction.atomic():
        account = _locked_account(earned.account_id)
        existing = _existing(order.merchant_id, key)
        if existing is not None:
            return existing
        status = Order.objects.filter(pk=order.pk).values_list("status", flat=True).first()
        if status not in (OrderStatus.REFUNDED, OrderStatus.CANCELLED):
            return None
        _expire_due_locked(account, now)
        lot = ledger_state(account=account).lot(earned.pk)
        amount = earned.points - (lot.expired if lot is not None else 0)
        if amount <= 0:
            return None
        entry = _append(
            account, kind=EntryKind.CLAWBACK, points=-amount, idempotency_key=key, order_id=order.pk, created_at=now
        )
        _tier_evaluate(account, now)
    return entry


def points_apply_order_changes(
    *, merchant: Merchant, placed_order_ids: Sequence[int], reversed_order_refs: Sequence[str]
) -> OrderPointsResult:
    """What the ingest path calls after a batch commits: earn for new orders, then claw back refunded or
    cancelled ones (by the shop's order id). Safe to repeat."""
    program = active_program(merchant=merchant)
    if program is None and not reversed_order_refs:
        return OrderPointsResult()
    earned = clawed = 0
    if program is not None:
        placed = Order.objects.for_merchant(merchant).filter(pk__in=list(placed_order_ids))
        for order in placed.select_related("customer", "merchant").order_by("placed_at", "pk"):
            entry = points_earn_for_order(order=order, program=program)
            earned += entry.points if entry is not None else 0
    if reversed_order_refs:
        reversed_orders = Order.objects.for_merchant(merchant).filter(external_id__in=list(reversed_order_refs))
        for order in reversed_orders.order_by("pk"):
            entry = points_clawback_for_refund(order=order)
            clawed += -entry.points if entry is not None else 0
    return OrderPointsResult(earned=earned, clawed_back=clawed)


def points_earn_for_action(*, merchant: Merchant, customer: Customer, action: str, idempotency_key: str) -> PointsEntry:
    """Points for an action under the program's earn rule (a review, a referral ...), at most the rule's
    `limit_per_customer` times. Retrying with the same key returns the first entry."""
    program = active_program(merchant=merchant)
    if program is None:
        raise NoActiveProgram("This shop runs no loyalty program.")
    if customer.merchant_id != merchant.pk or customer.erased_at is not None or not customer.is_identified:
        raise CustomerNotEligible("No such customer.")
    rule = EarnRule.objects.for_merchant(merchant).filter(program=program, action=action).first()
    if rule is None:
        raise EarnRuleNotFound(f"The program has no earn rule for {action!r}.")
    key = f"action:{idempotency_key}"
    now = timezone.now()
    with transaction.atomic():
        account = _locked_account(loyalty_account_for(merchant=merchant, customer=customer, program=program).pk)
        existing = _existing(merchant.pk, key)
        if existing is not None:
            if existing.account_id != account.pk or existing.action != action:
                raise IdempotencyConflict("This idempotency key was used for another customer or action.")
            return existing
        if rule.limit_per_customer is not None:
            done = PointsEntry.objects.filter(
                merchant=merchant, account=account, kind=EntryKind.EARN, action=action
            ).count()
            if done >= rule.limit_per_customer:
                raise EarnLimitReached(
                    f"{action!r} earns points at most {rule.limit_per_customer} time(s) per customer."
                )
        try:
            with transaction.atomic():
                entry = _append(
                    account,
                    kind=EntryKind.EARN,
                    points=rule.points,
                    idempotency_key=key,
                    action=action,
                    created_at=now,
                    expires_at=_expires_at(program, now),
                )
        except IntegrityError:
            raise IdempotencyConflict("This idempotency key was used for another customer or action.") from None
        _tier_evaluate(account, now)
    return entry


# --- spending ---------------------------------------------------------------------------------------------


def _new_code(merchant_id: int) -> str:
    for _ in range(5):
        code = "-".join("".join(secrets.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(CODE_GROUPS))
        if not Redemption.objects.filter(merchant_id=merchant_id, code=code).exists():
            return code
    raise RuntimeError("could not draw a unique redemption code")  # 32^12 codes: never in practice


def points_redeem(*, merchant: Merchant, customer: Customer, reward: Reward, idempotency_key: str) -> Redemption:
    """Spend the reward's cost and issue a one-time code. Inside the account's lock: write off expired
    points, read the balance, refuse when it is short (`InsufficientPoints`) or the reward is not for this
    customer (`RewardNotAvailable`). Retrying with the same key returns the first redemption."""
    program = active_program(merchant=merchant)
    if program is None:
        raise NoActiveProgram("This shop runs no loyalty program.")
    if customer.merchant_id != merchant.pk or customer.erased_at is not None or not customer.is_identified:
        raise CustomerNotEligible("No such customer.")
    if reward.merchant_id != merchant.pk:
        raise RewardNotAvailable("No such reward.")
    key = f"redeem:{idempotency_key}"
    now = timezone.now()
    with transaction.atomic():
        account = _locked_account(loyalty_account_for(merchant=merchant, customer=customer, program=program).pk)
        existing = _existing(merchant.pk, key)
        if existing is not None:
            redemption = Redemption.objects.filter(entry=existing).select_related("reward").first()
            if redemption is None or existing.account_id != account.pk or redemption.reward_id != reward.pk:
                raise IdempotencyConflict("This idempotency key was used for another redemption.")
            return redemption
        if reward.program_id != program.pk or not reward.is_active:
            raise RewardNotAvailable(f"{reward.name} is not available.")
        tier = _tier_evaluate(account, now)
        if not reward_allowed_for_tier(reward=reward, tier=tier):
            raise RewardNotAvailable(f"{reward.name} is for {reward.minimum_tier.name} members and above.")
        _expire_due_locked(account, now)
        balance = points_balance(account=account)
        if balance < reward.points_cost:
            raise InsufficientPoints(balance=balance, needed=reward.points_cost)
        try:
            with transaction.atomic():
                entry = _append(
                    account,
                    kind=EntryKind.REDEEM,
                    points=-reward.points_cost,
                    idempotency_key=key,
                    reward=reward,
                    created_at=now,
                )
        except IntegrityError:
            # The same key, used at the same moment for another customer (whose lock is not ours).
            raise IdempotencyConflict("This idempotency key was used for another redemption.") from None
        return Redemption.objects.create(
            merchant=merchant, account=account, reward=reward, entry=entry, code=_new_code(merchant.pk), created_at=now
        )


def _may_adjust(actor: Actor, merchant_id: int) -> bool:
    if actor is None or not actor.is_authenticated:
        return False
    if actor.is_superuser:
        return True
    membership = StaffMembership.objects.filter(user=actor).first()
    if membership is None:
        return False
    if membership.role == Role.PLATFORM_ADMIN:
        return True
    return membership.merchant_id == merchant_id


@transaction.atomic
def points_adjust(*, account: LoyaltyAccount, points: int, reason: str, actor: Actor) -> PointsEntry:
    """A staff correction, positive or negative, with a mandatory reason; audited. A negative adjustment may
    not take the balance below 0. Added points expire like earned ones."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidAdjustment("Say why the points are adjusted.", field="reason")
    if len(reason) > REASON_MAX:
        raise InvalidAdjustment(f"Keep the reason under {REASON_MAX} characters.", field="reason")
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise InvalidAdjustment("Adjust by a non-zero whole number of points.")
    if abs(points) > ADJUST_MAX:
        raise InvalidAdjustment(f"Adjust by at most {ADJUST_MAX:,} points at a time.")
    if not _may_adjust(actor, account.merchant_id):
        raise AdjustForbidden("Only this shop's staff and platform admins adjust its customers' points.")
    now = timezone.now()
    account = _locked_account(account.pk)
    _expire_due_locked(account, now)
    balance = points_balance(account=account)
    if points < 0 and balance + points < 0:
        raise InsufficientPoints(balance=balance, needed=-points, field="points")
    entry = _append(
        account,
        kind=EntryKind.ADJUST,
        points=points,
        idempotency_key=f"adjust:{uuid.uuid4().hex}",
        reason=reason,
        actor=actor,
        created_at=now,
        expires_at=_expires_at(account.program, now) if points > 0 else None,
    )
    audit_log_write(
        merchant=account.merchant,
        actor=actor,
        action="loyalty.points_adjust",
        target=entry,
        detail={
            "account": account.pk,
            "customer": account.customer_id,
            "points": points,
            "reason": reason,
            "balance_before": balance,
            "balance_after": balance + points,
        },
    )
    return entry


# --- expiry -------------------------------------------------------------------------------------------------


def points_expire_due(*, merchant: Merchant, now: datetime | None = None) -> int:
    """Daily: write off earned points past their expiry that were not spent (FIFO, see loyalty.ledger), one
    entry per lot under "expire:<entry id>". Safe to repeat. Returns the number of entries written."""
    now = now or timezone.now()
    written = 0
    for account_id in accounts_with_points_due(merchant=merchant, now=now):
        with transaction.atomic():
            written += _expire_due_locked(_locked_account(account_id), now)
    return written


# --- the program ------------------------------------------------------------------------------------------


@transaction.atomic
def loyalty_program_save(*, program: LoyaltyProgram, actor: Actor) -> LoyaltyProgram:
    """Create or change a program (the admin); the ingest path's cached "runs a program?" is cleared."""
    created = program.pk is None
    program.save()
    audit_log_write(
        merchant=program.merchant,
        actor=actor,
        action="loyalty.program_created" if created else "loyalty.program_changed",
        target=program,
        detail={
            "name": program.name,
            "is_active": program.is_active,
            "points_per_currency_unit": str(program.points_per_currency_unit),
            "expiry_days": program.expiry_days,
        },
    )
    merchant_id = program.merchant_id
    transaction.on_commit(lambda: active_program_forget(merchant_id=merchant_id))
    return program
