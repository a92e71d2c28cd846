from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from revopt.dashboard.selectors import WINDOW_DAYS, dashboard_access_for, merchant_overview
from revopt.tenancy.models import Role
from revopt.tenancy.services import staff_member_create
from tests.factories.catalog import ProductFactory
from tests.factories.events import (
    CustomerFactory,
    DataQualityReportFactory,
    EventFactory,
    OrderFactory,
    OrderLineFactory,
    SessionFactory,
)
from tests.factories.tenancy import MerchantFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 31, 15, 0, tzinfo=UTC)


def _shop(merchant):
    """A small shop: 3 products (1 inactive, 1 out of stock), 3 customers, 4 sessions, 2 orders."""
    tent = ProductFactory(merchant=merchant, sku="TENT", title="Trail Tent", price=Decimal("120.00"))
    boots = ProductFactory(merchant=merchant, sku="BOOT", title="Hiking Boots", price=Decimal("80.00"), inventory=0)
    ProductFactory(merchant=merchant, sku="OLD", title="Old Stove", is_active=False, inventory=0)
    alice = CustomerFactory(merchant=merchant, external_id="alice", created_at=NOW - timedelta(days=2))
    bob = CustomerFactory(merchant=merchant, external_id="bob", created_at=NOW - timedelta(days=90))
    anonymous = CustomerFactory(merchant=merchant, external_id=None, created_at=NOW - timedelta(days=1))
    # Merged into alice by identity stitching: the same person, not a fourth customer.
    CustomerFactory(merchant=merchant, external_id=None, merged_into=alice, created_at=NOW - timedelta(days=3))

    recent = SessionFactory(merchant=merchant, customer=alice, started_at=NOW - timedelta(days=1))
    recent_browse = SessionFactory(merchant=merchant, customer=anonymous, started_at=NOW - timedelta(hours=2))
    SessionFactory(merchant=merchant, customer=anonymous, started_at=NOW - timedelta(days=5))
    old = SessionFactory(merchant=merchant, customer=bob, started_at=NOW - timedelta(days=60))

    for hours in (26, 25):
        EventFactory(
            merchant=merchant, customer=alice, session=recent, product=tent, timestamp=NOW - timedelta(hours=hours)
        )
    EventFactory(
        merchant=merchant, customer=anonymous, session=recent_browse, product=boots, timestamp=NOW - timedelta(hours=2)
    )
    EventFactory(
        merchant=merchant, customer=alice, session=recent, name="Order Completed", timestamp=NOW - timedelta(hours=24)
    )
    EventFactory(merchant=merchant, customer=bob, session=old, product=boots, timestamp=NOW - timedelta(days=60))

    recent_order = OrderFactory(
        merchant=merchant, customer=alice, session=recent, placed_at=NOW - timedelta(hours=24), total=Decimal("240.00")
    )
    OrderLineFactory(order=recent_order, product=tent, quantity=2, unit_price=Decimal("120.00"))
    old_order = OrderFactory(
        merchant=merchant, customer=bob, session=old, placed_at=NOW - timedelta(days=60), total=Decimal("80.00")
    )
    OrderLineFactory(order=old_order, product=boots, quantity=1, unit_price=Decimal("80.00"))
    return tent, boots


def test_overview_counts_a_hand_built_shop(merchant):
    # given
    tent, boots = _shop(merchant)

    # when
    overview = merchant_overview(merchant=merchant, now=NOW)

    # then
    kpis = overview.kpis
    assert (kpis.products, kpis.active_products, kpis.out_of_stock) == (3, 2, 1)
    assert (kpis.customers, kpis.identified_customers, kpis.new_customers) == (3, 2, 2)
    assert (kpis.sessions, kpis.sessions_in_period) == (4, 3)
    assert (kpis.events, kpis.events_in_period) == (5, 4)
    assert (kpis.orders, kpis.orders_in_period) == (2, 1)
    assert (kpis.revenue, kpis.revenue_in_period) == (Decimal("320.00"), Decimal("240.00"))
    assert kpis.conversion_rate == pytest.approx(2 / 4)
    assert kpis.conversion_rate_in_period == pytest.approx(1 / 3)
    assert kpis.average_order_value == Decimal("160.00")
    assert kpis.average_order_value_in_period == Decimal("240.00")


def test_daily_series_covers_thirty_days_ending_today(merchant):
    # given
    _shop(merchant)

    # when
    overview = merchant_overview(merchant=merchant, now=NOW)

    # then
    assert len(overview.daily) == WINDOW_DAYS
    assert overview.daily[-1].day == date(2026, 3, 31)
    assert overview.daily[0].day == date(2026, 3, 2)
    by_day = {point.day: point for point in overview.daily}
    assert by_day[date(2026, 3, 30)].events == 3
    assert by_day[date(2026, 3, 31)].events == 1
    assert by_day[date(2026, 3, 30)].orders == 1
    assert by_day[date(2026, 3, 30)].revenue == Decimal("240.00")
    assert sum(point.events for point in overview.daily) == 4
    assert not overview.period.anchored_to_latest_data


def test_days_follow_the_merchant_time_zone():
    # given: 23:30 UTC on the 29th is already the 30th in Auckland
    merchant = MerchantFactory(timezone="Pacific/Auckland")
    EventFactory(merchant=merchant, timestamp=datetime(2026, 3, 29, 23, 30, tzinfo=UTC))

    # when
    overview = merchant_overview(merchant=merchant, now=NOW)

    # then
    counted = [point.day for point in overview.daily if point.events]
    assert counted == [date(2026, 3, 30)]


def test_window_moves_back_to_the_latest_data_when_nothing_is_recent(merchant):
    # given
    EventFactory(merchant=merchant, timestamp=NOW - timedelta(days=100))

    # when
    overview = merchant_overview(merchant=merchant, now=NOW)

    # then
    assert overview.period.anchored_to_latest_data
    assert overview.daily[-1].day == (NOW - timedelta(days=100)).date()
    assert overview.kpis.events_in_period == 1


def test_top_products_by_views_and_by_orders(merchant):
    # given
    tent, boots = _shop(merchant)

    # when
    overview = merchant_overview(merchant=merchant, now=NOW)

    # then
    assert [(product.sku, product.count) for product in overview.top_viewed] == [("TENT", 2), ("BOOT", 1)]
    assert [(product.sku, product.count, product.units, product.revenue) for product in overview.top_ordered] == [
        ("TENT", 1, 2, Decimal("240.00"))
    ]
    assert [(item.name, item.count) for item in overview.event_mix] == [("Product Viewed", 3), ("Order Completed", 1)]


def test_latest_data_quality_report_and_its_problems(merchant):
    # given
    DataQualityReportFactory(merchant=merchant, passed=True)
    DataQualityReportFactory(
        merchant=merchant,
        passed=False,
        checks=[
            {"name": "null_ids", "status": "pass", "value": 0, "limit": 0.01},
            {"name": "volume_drop", "status": "warn", "value": 0.4, "limit": 0.5},
            {"name": "price_non_positive", "status": "fail", "value": 0.2, "limit": 0.01, "detail": "20% of events"},
        ],
    )

    # when
    overview = merchant_overview(merchant=merchant, now=NOW)

    # then
    assert overview.data_quality is not None and not overview.data_quality.passed
    assert [(check.name, check.status) for check in overview.data_quality_problems] == [
        ("price_non_positive", "fail"),
        ("volume_drop", "warn"),
    ]


def test_another_merchants_rows_never_count(merchant, other_merchant):
    # given
    _shop(other_merchant)
    DataQualityReportFactory(merchant=other_merchant, passed=False)

    # when
    overview = merchant_overview(merchant=merchant, now=NOW)

    # then
    kpis = overview.kpis
    assert (kpis.products, kpis.customers, kpis.sessions, kpis.events, kpis.orders) == (0, 0, 0, 0, 0)
    assert kpis.revenue == Decimal("0")
    assert kpis.conversion_rate is None and kpis.average_order_value is None
    assert overview.top_viewed == () and overview.top_ordered == () and overview.event_mix == ()
    assert overview.data_quality is None and overview.simulation is None
    assert all(point.events == 0 and point.orders == 0 for point in overview.daily)


def test_overview_query_count_does_not_grow_with_the_data(merchant, django_assert_max_num_queries):
    # given
    _shop(merchant)
    for _ in range(20):
        product = ProductFactory(merchant=merchant)
        EventFactory(merchant=merchant, product=product, timestamp=NOW - timedelta(days=3))
        OrderLineFactory(order=OrderFactory(merchant=merchant, placed_at=NOW - timedelta(days=3)), product=product)

    # when
    with django_assert_max_num_queries(12) as captured:
        overview = merchant_overview(merchant=merchant, now=NOW)

    # then
    assert len(overview.top_ordered) == 5
    scope = f'merchant_id" = {merchant.pk}'
    unscoped = [query["sql"] for query in captured.captured_queries if scope not in query["sql"]]
    assert unscoped == []


def test_access_for_each_role(merchant, other_merchant):
    # given
    manager = staff_member_create(username="m", password="x", role=Role.MERCHANT_MANAGER, merchant=merchant)
    agent = staff_member_create(username="s", password="x", role=Role.SUPPORT_AGENT, merchant=merchant)
    admin = staff_member_create(username="a", password="x", role=Role.PLATFORM_ADMIN, merchant=None)

    # when / then: staff see their own merchant even when asking for another
    assert dashboard_access_for(user=manager, requested_slug=other_merchant.slug).merchant == merchant
    assert dashboard_access_for(user=agent, requested_slug=None).merchant == merchant
    chooser = dashboard_access_for(user=admin, requested_slug=None)
    assert chooser.merchant is None and set(chooser.choices) == {merchant, other_merchant}
    assert dashboard_access_for(user=admin, requested_slug=other_merchant.slug).merchant == other_merchant
