import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from freezegun import freeze_time

from events.models import OrderStatus
from events.services import event_batch_ingest
from loyalty.models import EarnAction, EarnRule, EntryKind, LoyaltyAccount, PointsEntry, Redemption
from loyalty.selectors.points import points_balance
from loyalty.services.points import (
    AdjustForbidden,
    CustomerNotEligible,
    EarnLimitReached,
    EarnRuleNotFound,
    IdempotencyConflict,
    InsufficientPoints,
    InvalidAdjustment,
    NoActiveProgram,
    RewardNotAvailable,
    loyalty_account_for,
    points_adjust,
    points_clawback_for_refund,
    points_earn_for_action,
    points_earn_for_order,
    points_expire_due,
    points_redeem,
    tier_evaluate,
    tiers_reevaluate,
)
from revopt.tenancy.models import AuditLogEntry
from tests.factories.catalog import ProductFactory
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import LoyaltyProgramFactory, RewardFactory, TierFactory

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def program(merchant):
    return LoyaltyProgramFactory(merchant=merchant, points_per_currency_unit=D("1.5"), expiry_days=365)


@pytest.fixture
def customer(merchant):
    return CustomerFactory(merchant=merchant, external_id="shopper-1")


def _order(merchant, customer, subtotal="100.00", discount="0", **fields):
    return OrderFactory(merchant=merchant, customer=customer, subtotal=D(subtotal), discount=D(discount), **fields)


def _account(merchant, customer):
    return LoyaltyAccount.objects.get(merchant=merchant, customer=customer)


def _give(merchant, customer, points, *, when=None):
    """Points from an order placed `when` (1 point per unit in these tests' default program)."""
    order = _order(merchant, customer, subtotal=str(points), placed_at=when or timezone.now())
    return points_earn_for_order(order=order)


# --- earning ----------------------------------------------------------------------------------------------


def test_an_order_earns_the_floor_of_rate_times_subtotal_after_discount_once(merchant, program, customer):
    # given
    order = _order(merchant, customer, subtotal="101.00", discount="10.50")

    # when
    first = points_earn_for_order(order=order)
    again = points_earn_for_order(order=order)

    # then floor(1.5 × 90.50) = 135, recorded once
    assert first.points == 135
    assert again.pk == first.pk
    assert first.idempotency_key == f"order:{order.pk}"
    assert first.expires_at == order.placed_at + timedelta(days=365)
    assert PointsEntry.objects.filter(merchant=merchant).count() == 1


def test_the_tiers_earn_multiplier_applies_to_orders(merchant, program, customer):
    # given a customer already in a 2x tier
    gold = TierFactory(program=program, name="Gold", threshold_points=0, earn_multiplier=D("2.00"))
    account = loyalty_account_for(merchant=merchant, customer=customer)
    tier_evaluate(account=account)

    # when
    entry = points_earn_for_order(order=_order(merchant, customer, subtotal="10.00"))

    # then floor(1.5 × 10) × 2
    assert account.tier == gold
    assert entry.points == 30


@pytest.mark.parametrize("case", ["anonymous", "erased", "cancelled", "no_program"])
def test_orders_that_earn_nothing(merchant, customer, case):
    # given
    program = LoyaltyProgramFactory(merchant=merchant, is_active=case != "no_program")
    order = _order(merchant, customer)
    if case == "anonymous":
        order = _order(merchant, CustomerFactory(merchant=merchant, external_id=None))
    if case == "erased":
        customer.erased_at = timezone.now()
        customer.save()
    if case == "cancelled":
        order.status = OrderStatus.CANCELLED
        order.save()

    # when
    entry = points_earn_for_order(order=order)

    # then
    assert entry is None
    assert not PointsEntry.objects.filter(merchant=merchant).exists()
    assert program.pk is not None


def test_the_ingest_path_earns_once_even_when_the_batch_is_sent_twice(
    merchant, program, django_capture_on_commit_callbacks
):
    # given
    ProductFactory(merchant=merchant, sku="SKU-1", price=D("25.00"))
    order_event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "m-order-1",
        "userId": "shopper-9",
        "timestamp": (timezone.now() - timedelta(minutes=5)).isoformat(),
        "properties": {"order_id": "A-1", "products": [{"sku": "SKU-1", "price": 25, "quantity": 2}]},
    }

    # when
    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[order_event])
    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[order_event])

    # then floor(1.5 × 50) = 75, once
    entries = list(PointsEntry.objects.filter(merchant=merchant))
    assert [(entry.kind, entry.points) for entry in entries] == [(EntryKind.EARN, 75)]


def test_an_order_placed_before_logging_in_earns_once_the_shopper_logs_in(
    merchant, program, django_capture_on_commit_callbacks
):
    # given an anonymous shopper's order: no member to credit yet
    ProductFactory(merchant=merchant, sku="SKU-1", price=D("25.00"))
    now = timezone.now()
    order_event = {
        "type": "track", "event": "Order Completed", "messageId": "m-anon-order", "anonymousId": "device-7",
        "timestamp": (now - timedelta(minutes=10)).isoformat(),
        "properties": {"order_id": "A-7", "products": [{"sku": "SKU-1", "price": 25, "quantity": 2}]},
    }  # fmt: skip
    login_event = {
        "type": "identify", "messageId": "m-login", "anonymousId": "device-7", "userId": "shopper-7",
        "timestamp": (now - timedelta(minutes=5)).isoformat(),
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[order_event])
    assert not PointsEntry.objects.filter(merchant=merchant).exists()

    # when the shopper logs in (twice, as storefronts resend)
    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[login_event])
    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[{**login_event, "messageId": "m-login-2"}])

    # then the order earns for the member, once: floor(1.5 × 50) = 75
    entries = list(PointsEntry.objects.filter(merchant=merchant).select_related("account__customer"))
    assert [(entry.kind, entry.points, entry.account.customer.external_id) for entry in entries] == [
        (EntryKind.EARN, 75, "shopper-7")
    ]


def test_an_order_placed_before_logging_in_to_an_existing_account_earns_after_the_merge(
    merchant, program, django_capture_on_commit_callbacks
):
    # given a member who already earned, and an order they placed on another device before logging in there
    ProductFactory(merchant=merchant, sku="SKU-1", price=D("25.00"))
    now = timezone.now()

    def order(message_id: str, order_id: str, **ids: str) -> dict:
        return {
            "type": "track", "event": "Order Completed", "messageId": message_id, **ids,
            "timestamp": (now - timedelta(minutes=20)).isoformat(),
            "properties": {"order_id": order_id, "products": [{"sku": "SKU-1", "price": 25, "quantity": 2}]},
        }  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[order("m-1", "B-1", userId="shopper-8")])
        event_batch_ingest(merchant=merchant, events=[order("m-2", "B-2", anonymousId="tablet-8")])
    login = {
        "type": "identify", "messageId": "m-login", "anonymousId": "tablet-8", "userId": "shopper-8",
        "timestamp": (now - timedelta(minutes=5)).isoformat(),
    }  # fmt: skip

    # when the anonymous customer merges into the member
    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[login])

    # then both orders have earned for the member, each once
    entries = PointsEntry.objects.filter(merchant=merchant).order_by("order__external_id")
    assert [(entry.order.external_id, entry.points) for entry in entries] == [("B-1", 75), ("B-2", 75)]
    assert {entry.account.customer.external_id for entry in entries} == {"shopper-8"}


def test_a_refund_through_ingest_claws_the_points_back(merchant, program, django_capture_on_commit_callbacks):
    # given an order that earned through ingest
    ProductFactory(merchant=merchant, sku="SKU-1", price=D("25.00"))
    placed = (timezone.now() - timedelta(minutes=10)).isoformat()
    order_event = {
        "type": "track", "event": "Order Completed", "messageId": "m-1", "userId": "shopper-9", "timestamp": placed,
        "properties": {"order_id": "A-1", "products": [{"sku": "SKU-1", "price": 25, "quantity": 4}]},
    }  # fmt: skip
    refund_event = {
        "type": "track", "event": "Order Refunded", "messageId": "m-2", "userId": "shopper-9",
        "timestamp": (timezone.now() - timedelta(minutes=1)).isoformat(), "properties": {"order_id": "A-1"},
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[order_event])

    # when
    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[refund_event])

    # then
    kinds = sorted((entry.kind, entry.points) for entry in PointsEntry.objects.filter(merchant=merchant))
    assert kinds == [(EntryKind.CLAWBACK, -150), (EntryKind.EARN, 150)]


def test_a_shop_without_a_program_costs_ingest_no_loyalty_query_after_the_first_batch(
    merchant, django_capture_on_commit_callbacks
):
    # given a shop that runs no program, and one batch already seen
    ProductFactory(merchant=merchant, sku="SKU-1", price=D("25.00"))

    def order(n):
        return {
            "type": "track", "event": "Order Completed", "messageId": f"m-{n}", "userId": "shopper-9",
            "timestamp": (timezone.now() - timedelta(minutes=5)).isoformat(),
            "properties": {"order_id": f"A-{n}", "products": [{"sku": "SKU-1", "price": 25, "quantity": 1}]},
        }  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        event_batch_ingest(merchant=merchant, events=[order(1)])

    # when
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks(execute=True) as callbacks:
        event_batch_ingest(merchant=merchant, events=[order(2)])

    # then
    assert not [q for q in queries.captured_queries if "loyalty_" in q["sql"]]
    assert callbacks == []


# --- clawback ----------------------------------------------------------------------------------------------


def test_a_refund_claws_back_what_the_order_earned_once_and_the_balance_may_go_negative(merchant, program, customer):
    # given an order whose points were spent on a reward
    order = _order(merchant, customer, subtotal="400.00")
    points_earn_for_order(order=order)
    reward = RewardFactory(program=program, points_cost=500)
    points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key="r-1")
    order.status = OrderStatus.REFUNDED
    order.save()

    # when
    first = points_clawback_for_refund(order=order)
    again = points_clawback_for_refund(order=order)

    # then 600 earned, 500 spent, 600 clawed back
    assert first.points == -600 and first.kind == EntryKind.CLAWBACK
    assert again.pk == first.pk
    assert points_balance(account=_account(merchant, customer)) == -500


def test_a_completed_order_or_one_that_earned_nothing_is_not_clawed_back(merchant, program, customer):
    # given
    completed = _order(merchant, customer)
    points_earn_for_order(order=completed)
    never_earned = _order(merchant, customer, status=OrderStatus.CANCELLED)

    # when / then
    assert points_clawback_for_refund(order=completed) is None
    assert points_clawback_for_refund(order=never_earned) is None


# --- actions ------------------------------------------------------------------------------------------------


def test_an_action_earns_its_rule_up_to_the_limit_and_a_retry_returns_the_first_award(merchant, program, customer):
    # given
    EarnRule.objects.create(
        merchant=merchant, program=program, action=EarnAction.REVIEW, points=50, limit_per_customer=2
    )

    # when
    first = points_earn_for_action(merchant=merchant, customer=customer, action="review", idempotency_key="rev-1")
    retry = points_earn_for_action(merchant=merchant, customer=customer, action="review", idempotency_key="rev-1")
    second = points_earn_for_action(merchant=merchant, customer=customer, action="review", idempotency_key="rev-2")

    # then
    assert (first.points, retry.pk, second.points) == (50, first.pk, 50)
    with pytest.raises(EarnLimitReached):
        points_earn_for_action(merchant=merchant, customer=customer, action="review", idempotency_key="rev-3")
    assert points_balance(account=_account(merchant, customer)) == 100


def test_action_refusals(merchant, other_merchant, program, customer):
    # given
    EarnRule.objects.create(merchant=merchant, program=program, action=EarnAction.REVIEW, points=50)
    points_earn_for_action(merchant=merchant, customer=customer, action="review", idempotency_key="k-1")
    someone_else = CustomerFactory(merchant=merchant)

    # when / then
    with pytest.raises(EarnRuleNotFound):
        points_earn_for_action(merchant=merchant, customer=customer, action="referral", idempotency_key="k-2")
    with pytest.raises(IdempotencyConflict):
        points_earn_for_action(merchant=merchant, customer=someone_else, action="review", idempotency_key="k-1")
    with pytest.raises(CustomerNotEligible):
        points_earn_for_action(
            merchant=merchant, customer=CustomerFactory(merchant=other_merchant), action="review", idempotency_key="x"
        )
    with pytest.raises(NoActiveProgram):
        points_earn_for_action(
            merchant=other_merchant,
            customer=CustomerFactory(merchant=other_merchant),
            action="review",
            idempotency_key="y",
        )


# --- redeeming ----------------------------------------------------------------------------------------------


def test_redeeming_spends_the_cost_issues_a_code_and_a_retry_returns_the_same_redemption(merchant, program, customer):
    # given 1,200 points
    _give(merchant, customer, 800)
    reward = RewardFactory(program=program, points_cost=500)

    # when
    first = points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key="checkout-1")
    retry = points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key="checkout-1")
    second = points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key="checkout-2")

    # then
    assert retry.pk == first.pk
    assert first.code != second.code
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", first.code)
    assert first.entry.points == -500 and first.entry.kind == EntryKind.REDEEM
    assert points_balance(account=_account(merchant, customer)) == 200
    with pytest.raises(InsufficientPoints) as short:
        points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key="checkout-3")
    assert (short.value.balance, short.value.needed) == (200, 500)
    assert Redemption.objects.filter(merchant=merchant).count() == 2


def test_a_reward_for_a_higher_tier_or_inactive_is_refused(merchant, program, customer):
    # given 1,000 points, below the Gold threshold of 2,000 earned
    _give(merchant, customer, 700)
    gold = TierFactory(program=program, name="Gold", threshold_points=2000)
    gold_only = RewardFactory(program=program, points_cost=100, minimum_tier=gold)
    retired = RewardFactory(program=program, points_cost=100, is_active=False)

    # when / then
    with pytest.raises(RewardNotAvailable):
        points_redeem(merchant=merchant, customer=customer, reward=gold_only, idempotency_key="a")
    with pytest.raises(RewardNotAvailable):
        points_redeem(merchant=merchant, customer=customer, reward=retired, idempotency_key="b")
    assert points_balance(account=_account(merchant, customer)) == 1050


def test_the_same_redeem_key_for_another_reward_is_a_conflict(merchant, program, customer):
    # given
    _give(merchant, customer, 800)
    first, other = RewardFactory(program=program, points_cost=100), RewardFactory(program=program, points_cost=200)
    points_redeem(merchant=merchant, customer=customer, reward=first, idempotency_key="k")

    # when / then
    with pytest.raises(IdempotencyConflict):
        points_redeem(merchant=merchant, customer=customer, reward=other, idempotency_key="k")


# --- adjusting ------------------------------------------------------------------------------------------------


def test_an_adjustment_needs_a_reason_and_is_audited(merchant, program, customer, merchant_manager):
    # given
    account = loyalty_account_for(merchant=merchant, customer=customer)

    # when
    with pytest.raises(InvalidAdjustment) as no_reason:
        points_adjust(account=account, points=100, reason="  ", actor=merchant_manager)
    with pytest.raises(InvalidAdjustment):
        points_adjust(account=account, points=0, reason="nothing", actor=merchant_manager)
    entry = points_adjust(account=account, points=100, reason="Parcel lost in transit", actor=merchant_manager)

    # then
    assert no_reason.value.field == "reason"
    assert (entry.kind, entry.points, entry.reason, entry.actor) == (
        EntryKind.ADJUST, 100, "Parcel lost in transit", merchant_manager
    )  # fmt: skip
    audit = AuditLogEntry.objects.get(merchant=merchant, action="loyalty.points_adjust")
    assert audit.actor == merchant_manager
    assert audit.detail["reason"] == "Parcel lost in transit"
    assert (audit.detail["balance_before"], audit.detail["balance_after"]) == (0, 100)


def test_a_negative_adjustment_may_not_take_the_balance_below_zero(merchant, program, customer, merchant_manager):
    # given
    account = loyalty_account_for(merchant=merchant, customer=customer)
    points_adjust(account=account, points=100, reason="goodwill", actor=merchant_manager)

    # when / then
    with pytest.raises(InsufficientPoints):
        points_adjust(account=account, points=-101, reason="typo", actor=merchant_manager)
    points_adjust(account=account, points=-100, reason="typo", actor=merchant_manager)
    assert points_balance(account=account) == 0


def test_another_merchants_staff_may_not_adjust(merchant, program, customer, other_merchant_manager, platform_admin):
    # given
    account = loyalty_account_for(merchant=merchant, customer=customer)

    # when / then
    with pytest.raises(AdjustForbidden):
        points_adjust(account=account, points=10, reason="hello", actor=other_merchant_manager)
    assert points_adjust(account=account, points=10, reason="support ticket 7", actor=platform_admin).points == 10


# --- expiry ------------------------------------------------------------------------------------------------------


def test_expiry_writes_off_only_unspent_points_oldest_first_and_once(merchant, customer):
    # given two lots of 100 expiring 30 days after earning, and 150 spent on day 20
    LoyaltyProgramFactory(merchant=merchant, expiry_days=30)
    start = timezone.now() - timedelta(days=60)
    _give(merchant, customer, 100, when=start)
    _give(merchant, customer, 100, when=start + timedelta(days=10))
    reward = RewardFactory(program=_account(merchant, customer).program, points_cost=150)
    with freeze_time(start + timedelta(days=20)):
        points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key="r")

    # when the first lot's expiry passes (it was spent), then the second's
    after_first = points_expire_due(merchant=merchant, now=start + timedelta(days=35))
    after_second = points_expire_due(merchant=merchant, now=start + timedelta(days=41))
    again = points_expire_due(merchant=merchant, now=start + timedelta(days=50))

    # then only the 50 left of the second lot expire, once
    assert (after_first, after_second, again) == (0, 1, 0)
    expired = PointsEntry.objects.get(merchant=merchant, kind=EntryKind.EXPIRE)
    assert expired.points == -50
    assert points_balance(account=_account(merchant, customer)) == 0


def test_a_redemption_never_spends_points_past_their_expiry(merchant, customer):
    # given 600 points that expired yesterday (the daily task has not run yet)
    program = LoyaltyProgramFactory(merchant=merchant, expiry_days=30)
    _give(merchant, customer, 600, when=timezone.now() - timedelta(days=31))
    reward = RewardFactory(program=program, points_cost=500)

    # when / then
    with pytest.raises(InsufficientPoints) as short:
        points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key="r")
    assert short.value.balance == 0


# --- tiers ---------------------------------------------------------------------------------------------------------


def test_tiers_follow_points_earned_over_365_days_up_and_down(merchant, customer):
    # given Silver from 500 and Gold from 1,000 points earned in a year
    program = LoyaltyProgramFactory(merchant=merchant)
    silver = TierFactory(program=program, name="Silver", threshold_points=500)
    gold = TierFactory(program=program, name="Gold", threshold_points=1000)
    start = timezone.now()

    # when / then
    with freeze_time(start):
        _give(merchant, customer, 600, when=start)
        assert _account(merchant, customer).tier == silver
    with freeze_time(start + timedelta(days=100)):
        _give(merchant, customer, 500, when=start + timedelta(days=100))
        assert _account(merchant, customer).tier == gold
    with freeze_time(start + timedelta(days=400)):  # the first 600 left the window
        assert tiers_reevaluate(merchant=merchant) == 1
        assert _account(merchant, customer).tier == silver
    with freeze_time(start + timedelta(days=500)):
        assert tiers_reevaluate(merchant=merchant) == 1
        assert tiers_reevaluate(merchant=merchant) == 0
        account = _account(merchant, customer)
        assert account.tier is None
        assert account.tier_changed_at == timezone.now()
    moves = AuditLogEntry.objects.filter(merchant=merchant, action="loyalty.tier_changed").order_by("pk")
    assert [(row.detail["from"], row.detail["to"]) for row in moves] == [
        (None, "Silver"), ("Silver", "Gold"), ("Gold", "Silver"), ("Silver", None)
    ]  # fmt: skip


def test_a_refund_can_drop_the_tier(merchant, customer):
    # given
    program = LoyaltyProgramFactory(merchant=merchant)
    TierFactory(program=program, name="Silver", threshold_points=500)
    order = _order(merchant, customer, subtotal="600.00")
    points_earn_for_order(order=order)
    order.status = OrderStatus.REFUNDED
    order.save()

    # when
    points_clawback_for_refund(order=order)

    # then
    assert _account(merchant, customer).tier is None


# --- ledger invariants ---------------------------------------------------------------------------------------------


def test_balance_is_the_sum_of_entries_and_no_entry_is_ever_updated_or_deleted(merchant, customer, merchant_manager):
    # given a program with expiry, tiers, rules and rewards
    program = LoyaltyProgramFactory(merchant=merchant, expiry_days=30)
    TierFactory(program=program, name="Silver", threshold_points=300, earn_multiplier=D("1.50"))
    EarnRule.objects.create(merchant=merchant, program=program, action=EarnAction.REVIEW, points=40)
    reward = RewardFactory(program=program, points_cost=120)
    start = timezone.now() - timedelta(days=90)
    seen: dict[int, tuple] = {}

    def snapshot():
        for row in PointsEntry.objects.filter(merchant=merchant).values_list("pk", "kind", "points", "created_at"):
            assert seen.setdefault(row[0], row) == row

    # when a long mixed sequence runs
    with CaptureQueriesContext(connection) as queries:
        for day in range(0, 90, 3):
            moment = start + timedelta(days=day)
            with freeze_time(moment):
                order = _order(merchant, customer, subtotal=str(40 + day), placed_at=moment)
                points_earn_for_order(order=order)
                if day % 9 == 0:
                    points_earn_for_action(
                        merchant=merchant, customer=customer, action="review", idempotency_key=f"r{day}"
                    )
                if day % 12 == 0:
                    order.status = OrderStatus.REFUNDED
                    order.save()
                    points_clawback_for_refund(order=order)
                account = _account(merchant, customer)
                if day % 18 == 0 and points_balance(account=account) >= 120:
                    points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key=f"x{day}")
                if day % 15 == 0:
                    points_adjust(account=account, points=7, reason="goodwill", actor=merchant_manager)
                points_expire_due(merchant=merchant, now=moment)
                snapshot()

    # then
    entries = PointsEntry.objects.filter(merchant=merchant)
    assert points_balance(account=_account(merchant, customer)) == sum(entries.values_list("points", flat=True))
    assert {kind for kind in entries.values_list("kind", flat=True)} == set(EntryKind.values)
    writes = [q["sql"] for q in queries.captured_queries if "loyalty_pointsentry" in q["sql"]]
    assert not [sql for sql in writes if sql.lstrip().upper().startswith(("UPDATE", "DELETE"))]
