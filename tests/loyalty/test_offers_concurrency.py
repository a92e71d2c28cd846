"""Offer caps, budget, retries and redemptions under concurrent requests, on PostgreSQL (SQLite serialises
writers: there is no race to test)."""

from decimal import Decimal

import pytest
from django.db import connection

from loyalty.models import IncentiveKind, OfferBudgetDay, OfferDecision
from loyalty.services.offers import offer_code_redeem, offer_decide
from tests.concurrency import run_at_once
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.funnel import OfferDecisionFactory, OfferSettingsFactory
from tests.loyalty.offers_support import request_for, stub_collaborators, stub_uplift

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def uplift(monkeypatch):
    return stub_uplift(monkeypatch)


@pytest.fixture(autouse=True)
def _collaborators(monkeypatch):
    stub_collaborators(monkeypatch)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite serialises writers, so there is no race to test")


def test_twenty_concurrent_carts_of_one_customer_get_exactly_the_cap(merchant, uplift):
    # given
    OfferSettingsFactory(merchant=merchant, exploration_share=0.0, max_offers_per_customer=3, daily_budget=1000)
    CustomerFactory(merchant=merchant, external_id="user-1")

    # when
    outcomes, errors = run_at_once(
        20, lambda index: offer_decide(merchant=merchant, request=request_for(f"cart-{index}")).decision
    )

    # then
    assert not errors, errors
    offered = [decision for decision in outcomes if decision.kind != IncentiveKind.NONE]
    assert len(offered) == 3
    assert {decision.reason for decision in outcomes if decision.kind == IncentiveKind.NONE} == {"customer_cap"}
    assert OfferDecision.objects.filter(merchant=merchant).count() == 20


def test_forty_concurrent_customers_never_overspend_a_budget_for_seven_offers(merchant, uplift):
    # given 10% off a 100.00 cart costs 10.00: 70.00 pays for seven
    OfferSettingsFactory(
        merchant=merchant, exploration_share=0.0, daily_budget=Decimal("70.00"), allowed_kinds=["percent_10"]
    )

    # when
    outcomes, errors = run_at_once(
        40,
        lambda index: offer_decide(merchant=merchant, request=request_for(f"cart-{index}", user_id=f"u-{index}")),
    )

    # then
    assert not errors, errors
    decisions = OfferDecision.objects.filter(merchant=merchant)
    offered = decisions.exclude(kind=IncentiveKind.NONE)
    day = OfferBudgetDay.objects.get(merchant=merchant)
    assert offered.count() == 7
    assert day.spent <= Decimal("70.00")
    assert day.spent == sum(decision.cost for decision in offered)
    assert day.offers == 7
    assert set(decisions.filter(kind=IncentiveKind.NONE).values_list("reason", flat=True)) == {"budget_exhausted"}


def test_ten_concurrent_retries_of_one_cart_log_one_decision_and_spend_once(merchant, uplift):
    # given
    OfferSettingsFactory(merchant=merchant, exploration_share=0.0, max_offers_per_customer=5, daily_budget=1000)
    CustomerFactory(merchant=merchant, external_id="user-1")

    # when
    outcomes, errors = run_at_once(10, lambda index: offer_decide(merchant=merchant, request=request_for()).decision)

    # then
    assert not errors, errors
    assert len({decision.pk for decision in outcomes}) == 1
    assert OfferDecision.objects.filter(merchant=merchant).count() == 1
    assert OfferBudgetDay.objects.get(merchant=merchant).spent == Decimal("10.00")


def test_concurrent_redemptions_of_one_code_have_one_winner(merchant):
    # given
    offer = OfferDecisionFactory(merchant=merchant)
    orders = [OrderFactory(merchant=merchant) for _ in range(10)]

    # when
    outcomes, errors = run_at_once(
        10,
        lambda index: offer_code_redeem(
            merchant=merchant, code=offer.code, order_id=orders[index].pk, at=offer.decided_at
        ),
    )

    # then
    assert not errors, errors
    winners = [outcome for outcome in outcomes if outcome is not None]
    assert len(winners) == 1
    offer.refresh_from_db()
    assert offer.redeemed_order_id == winners[0].redeemed_order_id
