from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty.models import PointsEntry
from loyalty.selectors.points import loyalty_status, merchant_has_active_program, points_balance
from loyalty.services.points import (
    loyalty_account_for,
    loyalty_program_save,
    points_earn_for_order,
    points_redeem,
)
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import LoyaltyProgramFactory, RewardFactory, TierFactory

pytestmark = pytest.mark.django_db

D = Decimal


def _earn(merchant, customer, points, *, days_ago=0):
    placed = timezone.now() - timedelta(days=days_ago)
    return points_earn_for_order(
        order=OrderFactory(merchant=merchant, customer=customer, subtotal=D(points), placed_at=placed)
    )


def test_status_shows_balance_tier_progress_affordable_rewards_and_points_expiring_soon(merchant):
    # given Silver at 500 and Gold at 1,500 earned; 900 points, 200 of them expiring in 10 days
    program = LoyaltyProgramFactory(merchant=merchant, expiry_days=60)
    silver = TierFactory(program=program, name="Silver", threshold_points=500)
    gold = TierFactory(program=program, name="Gold", threshold_points=1500)
    customer = CustomerFactory(merchant=merchant)
    _earn(merchant, customer, 200, days_ago=50)
    _earn(merchant, customer, 700, days_ago=1)
    cheap = RewardFactory(program=program, name="$5 off", points_cost=500)
    RewardFactory(program=program, name="$20 off", points_cost=2000)
    RewardFactory(program=program, name="Gold gift", points_cost=100, minimum_tier=gold)
    RewardFactory(program=program, name="Retired", points_cost=100, is_active=False)

    # when
    status = loyalty_status(merchant=merchant, customer=customer)

    # then
    assert status.balance == 900
    assert status.tier == silver and status.next_tier == gold
    assert status.earned_last_365d == 900
    assert status.points_to_next_tier == 600
    assert status.progress_to_next_tier == pytest.approx((900 - 500) / (1500 - 500))
    assert [reward.pk for reward in status.rewards_available] == [cheap.pk]
    assert [(item.points, item.expires_at.date()) for item in status.expiring_soon] == [
        (200, (timezone.now() + timedelta(days=10)).date())
    ]
    assert [line.points for line in status.recent_entries] == [700, 200]


def test_status_of_a_customer_who_never_earned_is_zero_and_creates_nothing(merchant):
    # given
    program = LoyaltyProgramFactory(merchant=merchant)
    bronze = TierFactory(program=program, name="Bronze", threshold_points=100)
    customer = CustomerFactory(merchant=merchant)

    # when
    status = loyalty_status(merchant=merchant, customer=customer)

    # then
    assert (status.balance, status.tier, status.next_tier, status.points_to_next_tier) == (0, None, bronze, 100)
    assert status.progress_to_next_tier == 0.0
    assert status.account is None
    assert not program.accounts.exists()


def test_status_is_none_without_an_active_program_and_refuses_another_merchants_customer(merchant, other_merchant):
    # given
    LoyaltyProgramFactory(merchant=merchant, is_active=False)
    LoyaltyProgramFactory(merchant=other_merchant)

    # when / then
    assert loyalty_status(merchant=merchant, customer=CustomerFactory(merchant=merchant)) is None
    with pytest.raises(ValueError):
        loyalty_status(merchant=other_merchant, customer=CustomerFactory(merchant=merchant))


def test_status_reads_a_constant_number_of_queries_however_long_the_ledger(merchant):
    # given
    program = LoyaltyProgramFactory(merchant=merchant, expiry_days=90)
    TierFactory(program=program, threshold_points=100)
    RewardFactory(program=program, points_cost=50)
    short, long = CustomerFactory(merchant=merchant), CustomerFactory(merchant=merchant)
    _earn(merchant, short, 60)
    for day in range(30):
        _earn(merchant, long, 60, days_ago=day)
    points_redeem(merchant=merchant, customer=long, reward=program.rewards.get(), idempotency_key="r")

    # when
    with CaptureQueriesContext(connection) as few:
        loyalty_status(merchant=merchant, customer=short)
    with CaptureQueriesContext(connection) as many:
        loyalty_status(merchant=merchant, customer=long)

    # then
    assert len(many) == len(few) <= 6


def test_balance_is_the_sum_of_the_entries(merchant):
    # given
    LoyaltyProgramFactory(merchant=merchant)
    customer = CustomerFactory(merchant=merchant)
    _earn(merchant, customer, 120)
    _earn(merchant, customer, 30)
    account = loyalty_account_for(merchant=merchant, customer=customer)

    # when
    balance = points_balance(account=account)

    # then
    assert balance == 150 == sum(PointsEntry.objects.filter(account=account).values_list("points", flat=True))


def test_the_cached_active_program_flag_is_cleared_when_a_program_is_saved(
    merchant, django_capture_on_commit_callbacks
):
    # given a shop seen without a program
    assert merchant_has_active_program(merchant=merchant) is False

    # when
    with django_capture_on_commit_callbacks(execute=True):
        loyalty_program_save(program=LoyaltyProgramFactory.build(merchant=merchant), actor=None)

    # then
    assert merchant_has_active_program(merchant=merchant) is True
