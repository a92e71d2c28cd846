from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.utils import timezone

from events.models import OrderStatus
from loyalty.selectors.summaries import customer_history, customer_summaries, gross_margin, purchases_between
from tests.factories.events import CustomerFactory, OrderFactory, OrderLineFactory
from tests.factories.tenancy import MerchantFactory

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
# Midnight in New York after 2026-02-28: the last day observed is Saturday 2026-02-28.
AS_OF = datetime(2026, 3, 1, tzinfo=NEW_YORK)


def local(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=NEW_YORK)


def order(merchant, customer, placed_at: datetime, total: str, status: str = OrderStatus.COMPLETED):
    return OrderFactory(merchant=merchant, customer=customer, placed_at=placed_at, total=Decimal(total), status=status)


def row(summary, customer) -> dict:
    index = int(np.flatnonzero(summary.customer_id == customer.pk)[0])
    return {
        "frequency": float(summary.frequency[index]),
        "recency": float(summary.recency[index]),
        "age": float(summary.age[index]),
        "monetary": float(summary.monetary[index]),
        "orders": int(summary.orders[index]),
        "revenue": float(summary.revenue[index]),
        "days_since_last": float(summary.days_since_last[index]),
    }


@pytest.fixture
def shop():
    return MerchantFactory(timezone="America/New_York")


def test_a_hand_built_history_gives_the_frequency_recency_age_and_monetary_worked_out_by_hand(shop):
    # given: two orders on 5 January count as one purchase (30); 12 January has a 23:30 order that is
    # already 13 January in UTC; then 26 January; a cancelled and a refunded order count for nothing
    customer = CustomerFactory(merchant=shop)
    order(shop, customer, local(1, 5, 10), "10.00")
    order(shop, customer, local(1, 5, 18), "20.00")
    order(shop, customer, local(1, 12, 9), "15.00")
    order(shop, customer, local(1, 12, 23, 30), "25.00")
    order(shop, customer, local(1, 26, 12), "50.00")
    order(shop, customer, local(2, 2), "99.00", status=OrderStatus.CANCELLED)
    order(shop, customer, local(2, 3), "77.00", status=OrderStatus.REFUNDED)

    # when
    summary = customer_summaries(merchant=shop, as_of=AS_OF)

    # then: purchase days 5, 12, 26 January; T runs from 5 January to 28 February (54 days)
    assert row(summary, customer) == {
        "frequency": 2.0,
        "recency": pytest.approx(21 / 7),
        "age": pytest.approx(54 / 7),
        "monetary": pytest.approx((40 + 50) / 2),
        "orders": 5,
        "revenue": pytest.approx(120.0),
        "days_since_last": pytest.approx(33.5),  # noon 26 January → midnight 1 March, New York
    }
    assert summary.time_unit_days == 7.0


def test_a_one_time_buyer_has_no_repeat_purchases_and_no_repeat_value(shop):
    # given
    customer = CustomerFactory(merchant=shop)
    order(shop, customer, local(2, 28, 8), "42.00")

    # when
    summary = customer_summaries(merchant=shop, as_of=AS_OF, time_unit_days=1.0)

    # then
    assert row(summary, customer) == {
        "frequency": 0.0,
        "recency": 0.0,
        "age": 0.0,
        "monetary": 0.0,
        "orders": 1,
        "revenue": 42.0,
        "days_since_last": pytest.approx(16 / 24),
    }


def test_cancelled_refunded_erased_merged_later_and_other_merchants_orders_are_left_out(shop, other_merchant):
    # given
    kept = CustomerFactory(merchant=shop)
    order(shop, kept, local(1, 10), "10.00")
    only_cancelled = CustomerFactory(merchant=shop)
    order(shop, only_cancelled, local(1, 10), "10.00", status=OrderStatus.CANCELLED)
    only_refunded = CustomerFactory(merchant=shop)
    order(shop, only_refunded, local(1, 10), "10.00", status=OrderStatus.REFUNDED)
    erased = CustomerFactory(merchant=shop, erased_at=timezone.now())
    order(shop, erased, local(1, 10), "10.00")
    merged = CustomerFactory(merchant=shop, merged_into=kept)
    order(shop, merged, local(1, 11), "10.00")
    later = CustomerFactory(merchant=shop)
    order(shop, later, AS_OF, "10.00")
    elsewhere = CustomerFactory(merchant=other_merchant)
    order(other_merchant, elsewhere, local(1, 10), "10.00")

    # when
    summary = customer_summaries(merchant=shop, as_of=AS_OF)

    # then
    assert summary.customer_id.tolist() == [kept.pk]


def test_since_starts_a_cohorts_calibration_window(shop):
    # given: a purchase before the window and two inside it
    customer = CustomerFactory(merchant=shop)
    order(shop, customer, local(1, 2), "10.00")
    order(shop, customer, local(2, 1), "20.00")
    order(shop, customer, local(2, 8), "30.00")

    # when
    summary = customer_summaries(merchant=shop, as_of=AS_OF, since=local(2, 1, 0), time_unit_days=1.0)

    # then: the window's first purchase is the customer's first
    assert row(summary, customer)["frequency"] == 1.0
    assert row(summary, customer)["age"] == 27.0
    assert row(summary, customer)["revenue"] == 50.0


def test_customer_ids_narrow_the_summary_both_through_the_query_and_past_its_limit(shop, monkeypatch):
    # given
    customers = [CustomerFactory(merchant=shop) for _ in range(3)]
    for customer in customers:
        order(shop, customer, local(1, 20), "10.00")
    wanted = [customers[0].pk, customers[2].pk]

    # when
    named = customer_summaries(merchant=shop, as_of=AS_OF, customer_ids=wanted)
    monkeypatch.setattr("loyalty.selectors.summaries.NAMED_CUSTOMERS_MAX", 1)
    filtered = customer_summaries(merchant=shop, as_of=AS_OF, customer_ids=wanted)

    # then
    assert named.customer_id.tolist() == sorted(wanted)
    assert filtered.customer_id.tolist() == sorted(wanted)


def test_a_shop_without_purchases_gives_an_empty_summary(shop):
    # when
    summary = customer_summaries(merchant=shop, as_of=AS_OF)

    # then
    assert len(summary) == 0
    assert summary.frequency.shape == (0,)


def test_the_history_carries_the_exact_first_and_last_order_instants(shop):
    # given
    customer = CustomerFactory(merchant=shop)
    order(shop, customer, local(1, 5, 10, 15), "10.00")
    order(shop, customer, local(2, 5, 16, 45), "10.00")

    # when
    history = customer_history(merchant=shop, as_of=AS_OF)

    # then
    assert history.first_order_at(0) == local(1, 5, 10, 15)
    assert history.last_order_at(0) == local(2, 5, 16, 45)


def test_the_summary_costs_one_query_however_many_customers(shop, django_assert_num_queries):
    # given
    for index in range(30):
        customer = CustomerFactory(merchant=shop)
        for week in range(index % 4 + 1):
            order(shop, customer, local(1, 3) + timedelta(weeks=week), "10.00")

    # when / then
    with django_assert_num_queries(1):
        summary = customer_summaries(merchant=shop, as_of=AS_OF)
    assert len(summary) == 30
    assert summary.frequency.sum() == sum(index % 4 for index in range(30))


def test_purchases_between_counts_purchase_days_in_the_window_per_customer(shop):
    # given: two orders on one day, one the next week, one after the window; a customer with none
    buyer = CustomerFactory(merchant=shop)
    idle = CustomerFactory(merchant=shop)
    erased = CustomerFactory(merchant=shop, erased_at=timezone.now())
    order(shop, buyer, local(3, 2, 9), "10.00")
    order(shop, buyer, local(3, 2, 19), "10.00")
    order(shop, buyer, local(3, 9), "10.00")
    order(shop, buyer, local(3, 10), "10.00", status=OrderStatus.REFUNDED)
    order(shop, buyer, local(4, 9), "10.00")
    order(shop, erased, local(3, 2), "10.00")

    # when
    counts = purchases_between(
        merchant=shop, customer_ids=[buyer.pk, idle.pk, erased.pk], start=AS_OF, end=local(4, 1, 0)
    )

    # then
    assert counts == {buyer.pk: 2, idle.pk: 0, erased.pk: 0}


def test_gross_margin_comes_from_the_lines_whose_cost_is_known(shop):
    # given: 100 of revenue at a cost of 60, and a line without a cost
    customer = CustomerFactory(merchant=shop)
    first = order(shop, customer, local(1, 5), "100.00")
    OrderLineFactory(order=first, quantity=2, unit_price=Decimal("50.00"), unit_cost=Decimal("30.00"))
    OrderLineFactory(order=first, quantity=1, unit_price=Decimal("80.00"), unit_cost=None)
    cancelled = order(shop, customer, local(1, 6), "100.00", status=OrderStatus.CANCELLED)
    OrderLineFactory(order=cancelled, quantity=1, unit_price=Decimal("100.00"), unit_cost=Decimal("99.00"))

    # when / then
    assert gross_margin(merchant=shop, as_of=AS_OF) == pytest.approx(0.4)


def test_gross_margin_is_unknown_without_any_cost(shop):
    # given
    customer = CustomerFactory(merchant=shop)
    OrderLineFactory(order=order(shop, customer, local(1, 5), "20.00"), unit_cost=None)

    # when / then
    assert gross_margin(merchant=shop, as_of=AS_OF) is None
