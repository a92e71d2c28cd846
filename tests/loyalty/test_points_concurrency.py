"""Redemptions under concurrent requests, on PostgreSQL (SQLite serialises writers: there is no race)."""

from decimal import Decimal

import pytest
from django.db import connection

from loyalty.models import EarnAction, EarnRule, EntryKind, PointsEntry, Redemption
from loyalty.selectors.points import points_balance
from loyalty.services.points import (
    InsufficientPoints,
    loyalty_account_for,
    points_earn_for_action,
    points_earn_for_order,
    points_redeem,
)
from tests.concurrency import run_at_once
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import LoyaltyProgramFactory, RewardFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _shopper_with_1200_points(merchant):
    program = LoyaltyProgramFactory(merchant=merchant)
    customer = CustomerFactory(merchant=merchant)
    points_earn_for_order(order=OrderFactory(merchant=merchant, customer=customer, subtotal=Decimal("1200")))
    return program, customer


def test_ten_concurrent_redemptions_of_500_against_1200_points_let_exactly_two_through(merchant):
    # given
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")
    program, customer = _shopper_with_1200_points(merchant)
    reward = RewardFactory(program=program, points_cost=500)

    # when
    outcomes, errors = run_at_once(
        10,
        lambda index: points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key=f"k-{index}"),
        expected=(InsufficientPoints,),
        timeout=60,
    )

    # then
    assert not errors, errors
    assert sum(isinstance(outcome, Redemption) for outcome in outcomes) == 2
    assert sum(isinstance(outcome, InsufficientPoints) for outcome in outcomes) == 8
    account = loyalty_account_for(merchant=merchant, customer=customer)
    assert points_balance(account=account) == 200
    assert PointsEntry.objects.filter(account=account, kind=EntryKind.REDEEM).count() == 2


def test_ten_concurrent_retries_of_one_redemption_spend_once(merchant):
    # given
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")
    program, customer = _shopper_with_1200_points(merchant)
    reward = RewardFactory(program=program, points_cost=500)

    # when
    outcomes, errors = run_at_once(
        10,
        lambda _: points_redeem(merchant=merchant, customer=customer, reward=reward, idempotency_key="same"),
        expected=(InsufficientPoints,),
        timeout=60,
    )

    # then
    assert not errors, errors
    assert len({outcome.pk for outcome in outcomes}) == 1
    assert points_balance(account=loyalty_account_for(merchant=merchant, customer=customer)) == 700


def test_concurrent_first_earnings_of_a_new_customer_open_one_account_and_respect_the_limit(merchant):
    # given a customer without an account and an action allowed three times
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")
    program = LoyaltyProgramFactory(merchant=merchant)
    EarnRule.objects.create(
        merchant=merchant, program=program, action=EarnAction.REVIEW, points=10, limit_per_customer=3
    )
    customer = CustomerFactory(merchant=merchant)

    # when
    outcomes, errors = run_at_once(
        8,
        lambda index: points_earn_for_action(
            merchant=merchant, customer=customer, action="review", idempotency_key=f"review-{index}"
        ),
        timeout=60,
    )

    # then
    earned = [outcome for outcome in outcomes if isinstance(outcome, PointsEntry)]
    assert len(earned) == 3
    assert len(errors) == 5 and all(type(error).__name__ == "EarnLimitReached" for error in errors)
    assert program.accounts.count() == 1
