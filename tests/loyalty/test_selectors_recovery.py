from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from events.models import OrderStatus
from loyalty.models import RecoveryStatus
from loyalty.selectors.recovery import recovery_messages, recovery_summary
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.funnel import RecoveryMessageFactory

pytestmark = pytest.mark.django_db

DAY_1 = datetime(2026, 3, 2, 10, tzinfo=UTC)
DAY_2 = DAY_1 + timedelta(days=1)


def _message(merchant, *, created_at, status=RecoveryStatus.PENDING, sent_at=None, cart_id=None, order=None, step=1):
    fields = {"cart_id": cart_id} if cart_id else {}
    customer = order.customer if order is not None else CustomerFactory(merchant=merchant)
    return RecoveryMessageFactory(
        merchant=merchant, customer=customer, abandoned_at=created_at, created_at=created_at, status=status,
        sent_at=sent_at, recovered_order=order, step=step, **fields,
    )  # fmt: skip


def test_the_summary_counts_messages_carts_and_recovered_revenue_by_day(merchant):
    # given on day 1: a cart messaged twice that led to a 120.00 order on day 2, a cancelled message;
    # on day 2: a failed message and a sent one whose order was refunded
    order = OrderFactory(merchant=merchant, placed_at=DAY_2, total=Decimal("120.00"), subtotal=Decimal("120.00"))
    _message(merchant, created_at=DAY_1, status="sent", sent_at=DAY_1, cart_id="c-1", order=None)
    _message(merchant, created_at=DAY_1, status="sent", sent_at=DAY_2, cart_id="c-1", order=order, step=2)
    _message(merchant, created_at=DAY_1, status=RecoveryStatus.CANCELLED)
    _message(merchant, created_at=DAY_2, status=RecoveryStatus.FAILED)
    refunded = OrderFactory(merchant=merchant, placed_at=DAY_2, total=Decimal("50.00"), status=OrderStatus.REFUNDED)
    _message(merchant, created_at=DAY_2, status="sent", sent_at=DAY_2, order=refunded)

    # when
    summary = recovery_summary(merchant=merchant, start=date(2026, 3, 2), end=date(2026, 3, 4))

    # then
    assert (summary.scheduled, summary.sent, summary.cancelled, summary.failed) == (5, 3, 1, 1)
    assert (summary.carts_messaged, summary.carts_recovered, summary.recovered_orders) == (2, 1, 1)
    assert summary.recovered_revenue == Decimal("120.00")
    assert summary.recovery_rate == 0.5
    assert [
        (d.day.day, d.scheduled, d.sent, d.cancelled, d.recovered_orders, d.recovered_revenue) for d in summary.by_day
    ] == [
        (2, 3, 1, 1, 0, Decimal("0")),
        (3, 2, 2, 0, 1, Decimal("120.00")),
        (4, 0, 0, 0, 0, Decimal("0")),
    ]


def test_the_summary_uses_the_shops_days_and_only_its_messages(merchant, other_merchant):
    # given a shop in Los Angeles: 02:00 UTC on March 3rd is still March 2nd there
    merchant.timezone = "America/Los_Angeles"
    merchant.save()
    _message(merchant, created_at=datetime(2026, 3, 3, 2, tzinfo=UTC))
    _message(other_merchant, created_at=DAY_1)

    # when
    summary = recovery_summary(merchant=merchant, start=date(2026, 3, 2), end=date(2026, 3, 3))

    # then
    assert [(d.day.day, d.scheduled) for d in summary.by_day] == [(2, 1), (3, 0)]


def test_a_period_ending_before_it_starts_is_refused(merchant):
    # when / then
    with pytest.raises(ValueError):
        recovery_summary(merchant=merchant, start=date(2026, 3, 2), end=date(2026, 3, 1))


def test_messages_are_the_merchants_newest_first_filtered_by_status(merchant, other_merchant):
    # given
    older = _message(merchant, created_at=DAY_1)
    newer = _message(merchant, created_at=DAY_2)
    _message(merchant, created_at=DAY_2, status=RecoveryStatus.CANCELLED)
    _message(other_merchant, created_at=DAY_2)

    # when
    pending = list(recovery_messages(merchant=merchant, status=RecoveryStatus.PENDING))

    # then
    assert pending == [newer, older]
    assert recovery_messages(merchant=merchant).count() == 3


def test_messages_of_erased_customers_are_left_out(merchant):
    # given
    kept = _message(merchant, created_at=DAY_1)
    erased = _message(merchant, created_at=DAY_1)
    erased.customer.erased_at = DAY_2
    erased.customer.save()

    # when
    listed = list(recovery_messages(merchant=merchant))

    # then
    assert listed == [kept]
