from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from events.models import OrderStatus
from loyalty.models import InsightKind, InsightRun, RunStatus
from loyalty.tasks import insights_refresh_all, lifetime_value_refresh_task, segments_refresh_task
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.tenancy import MerchantFactory

pytestmark = pytest.mark.django_db


def orders_for(merchant, customers: int = 5, status: str = OrderStatus.COMPLETED) -> None:
    for index in range(customers):
        OrderFactory(
            merchant=merchant,
            customer=CustomerFactory(merchant=merchant),
            placed_at=timezone.now() - timedelta(days=index + 1),
            total=Decimal(10 + index),
            status=status,
        )


def test_the_segments_task_refreshes_the_merchants_segments(merchant):
    # given
    orders_for(merchant)

    # when
    run_id = segments_refresh_task(merchant.pk)

    # then
    run = InsightRun.objects.get(pk=run_id)
    assert (run.merchant, run.kind, run.status, run.customers) == (
        merchant,
        InsightKind.SEGMENTS,
        RunStatus.SUCCEEDED,
        5,
    )


def test_a_shop_too_small_for_lifetime_value_is_logged_not_raised(merchant):
    # given
    orders_for(merchant)

    # when
    result = lifetime_value_refresh_task(merchant.pk)

    # then
    assert result is None
    run = InsightRun.objects.for_merchant(merchant).get()
    assert (run.kind, run.status) == (InsightKind.LIFETIME_VALUE, RunStatus.FAILED)


def test_tasks_of_an_inactive_or_deleted_merchant_do_nothing(db):
    # given
    inactive = MerchantFactory(is_active=False)
    orders_for(inactive)

    # when / then
    assert segments_refresh_task(inactive.pk) is None
    assert lifetime_value_refresh_task(10**9) is None
    assert not InsightRun.objects.exists()


def test_the_nightly_refresh_runs_both_kinds_for_each_active_merchant_with_orders(merchant, other_merchant):
    # given: one shop with orders, one with only cancelled orders, one inactive
    orders_for(merchant)
    orders_for(other_merchant, status=OrderStatus.CANCELLED)
    orders_for(MerchantFactory(is_active=False))

    # when
    dispatched = insights_refresh_all()

    # then
    assert dispatched == 1
    assert set(InsightRun.objects.values_list("merchant", "kind")) == {
        (merchant.pk, InsightKind.SEGMENTS),
        (merchant.pk, InsightKind.LIFETIME_VALUE),
    }
