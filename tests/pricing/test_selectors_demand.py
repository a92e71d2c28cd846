from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from events.models import OrderStatus
from pricing.models import PriceChangeSource
from pricing.selectors.demand import demand_panel, merchant_days
from tests.factories.catalog import CompetitorPriceObservationFactory, ProductFactory
from tests.factories.events import EventFactory, OrderFactory, OrderLineFactory, SessionFactory

pytestmark = pytest.mark.django_db

DAY_1 = date(2026, 10, 5)  # a Monday


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def view(merchant, product, day: date, price: str | None, **properties) -> None:
    EventFactory(
        merchant=merchant,
        product=product,
        timestamp=at(day),
        price=Decimal(price) if price is not None else None,
        properties={"sku": product.sku, **({"price": float(price)} if price else {}), **properties},
    )


def sale(merchant, product, day: date, quantity: int, unit_price: str, status: str = OrderStatus.COMPLETED) -> None:
    order = OrderFactory(merchant=merchant, placed_at=at(day, 13), status=status)
    OrderLineFactory(order=order, product=product, quantity=quantity, unit_price=Decimal(unit_price))


def rows_by_key(panel) -> dict[tuple[int, date], dict]:
    return {
        (int(panel.product_id[i]), date.fromordinal(int(panel.day[i]))): {
            "price": float(panel.price[i]),
            "units": float(panel.units[i]),
            "traffic": float(panel.traffic[i]),
            "competitor_ratio": float(panel.competitor_ratio[i]),
            "promoted": bool(panel.promoted[i]),
            "stocked_out": bool(panel.stocked_out[i]),
            "category_id": int(panel.category_id[i]),
        }
        for i in range(len(panel))
    }


def test_panel_reads_prices_units_traffic_competitors_and_flags(merchant):
    # given two products over three days
    day_2, day_3 = DAY_1 + timedelta(days=1), DAY_1 + timedelta(days=2)
    tent = ProductFactory(merchant=merchant, price=Decimal("100.00"))
    stove = ProductFactory(merchant=merchant, price=Decimal("40.00"), category=None)
    for day, sessions in ((DAY_1, 3), (day_2, 2), (day_3, 4)):
        for _ in range(sessions):
            SessionFactory(merchant=merchant, started_at=at(day, 9))
    # day 1: the tent is seen at 90 and 100 (mean 95), sold 2 + 1, a cancelled order does not count
    view(merchant, tent, DAY_1, "90.00")
    view(merchant, tent, DAY_1, "100.00", promoted=True)
    sale(merchant, tent, DAY_1, 2, "95.00")
    sale(merchant, tent, DAY_1, 1, "95.00")
    sale(merchant, tent, DAY_1, 5, "95.00", status=OrderStatus.CANCELLED)
    # day 2: the tent is sold without any view (price from the order lines), a refund keeps the sale
    sale(merchant, tent, day_2, 1, "80.00")
    sale(merchant, tent, day_2, 1, "84.00", status=OrderStatus.REFUNDED)
    # day 3: the tent is shown out of stock; the stove is viewed on sale (compare-at above the price)
    view(merchant, tent, day_3, "100.00", in_stock=False)
    view(merchant, stove, day_3, "30.00", compare_at_price=40.0, inventory=2)
    sale(merchant, stove, day_3, 2, "30.00")
    # a competitor sells the tent at 120 on day 1 (counts for the next week) and the stove at 25 on day 3
    CompetitorPriceObservationFactory(
        merchant=merchant, product=tent, price=Decimal("120.00"), observed_at=at(DAY_1, 8)
    )
    CompetitorPriceObservationFactory(
        merchant=merchant, product=tent, price=Decimal("150.00"), observed_at=at(DAY_1, 9)
    )
    CompetitorPriceObservationFactory(
        merchant=merchant, product=stove, price=Decimal("25.00"), observed_at=at(day_3, 8)
    )

    # when
    panel = demand_panel(merchant=merchant, start=DAY_1, end=day_3)

    # then one row per product and day on sale
    rows = rows_by_key(panel)
    assert set(rows) == {(tent.pk, DAY_1), (tent.pk, day_2), (tent.pk, day_3), (stove.pk, day_3)}
    assert rows[(tent.pk, DAY_1)]["price"] == pytest.approx(95.0)
    assert rows[(tent.pk, DAY_1)]["units"] == 3
    assert rows[(tent.pk, DAY_1)]["traffic"] == 3
    assert rows[(tent.pk, DAY_1)]["promoted"] is True
    assert rows[(tent.pk, DAY_1)]["competitor_ratio"] == pytest.approx(95 / 120)
    assert rows[(tent.pk, DAY_1)]["category_id"] == tent.category_id
    assert rows[(tent.pk, day_2)]["price"] == pytest.approx(82.0)
    assert rows[(tent.pk, day_2)]["units"] == 2
    assert rows[(tent.pk, day_2)]["competitor_ratio"] == pytest.approx(82 / 120)
    assert rows[(tent.pk, day_2)]["promoted"] is False
    assert rows[(tent.pk, day_3)]["stocked_out"] is True
    assert rows[(tent.pk, day_3)]["units"] == 0
    assert rows[(tent.pk, day_3)]["traffic"] == 4
    assert rows[(stove.pk, day_3)]["promoted"] is True
    assert rows[(stove.pk, day_3)]["stocked_out"] is True  # sold 2 of the 2 reported in stock
    assert rows[(stove.pk, day_3)]["competitor_ratio"] == pytest.approx(30 / 25)
    assert rows[(stove.pk, day_3)]["category_id"] == -1


def test_panel_competitor_price_older_than_a_week_is_unknown(merchant):
    # given a competitor price seen eight days before the only sale
    product = ProductFactory(merchant=merchant)
    CompetitorPriceObservationFactory(merchant=merchant, product=product, observed_at=at(DAY_1 - timedelta(days=8)))
    sale(merchant, product, DAY_1, 1, "25.00")

    # when
    panel = demand_panel(merchant=merchant, start=DAY_1, end=DAY_1)

    # then
    assert len(panel) == 1
    assert np.isnan(panel.competitor_ratio[0])


def test_panel_falls_back_to_price_in_force_and_median_traffic(merchant, merchant_manager):
    # given views without a price on day 2 after a price change on day 1, and sessions only on day 1 and 3
    from pricing.models import PriceChange

    day_2, day_3 = DAY_1 + timedelta(days=1), DAY_1 + timedelta(days=2)
    product = ProductFactory(merchant=merchant, price=Decimal("30.00"))
    PriceChange.objects.create(
        merchant=merchant,
        product=product,
        from_price=Decimal("25.00"),
        to_price=Decimal("30.00"),
        source=PriceChangeSource.APPROVED,
        reason="test",
        created_at=at(day_2, 6),
    )
    for day, sessions in ((DAY_1, 2), (day_3, 6)):
        for _ in range(sessions):
            SessionFactory(merchant=merchant, started_at=at(day, 9))
    view(merchant, product, DAY_1, None)
    view(merchant, product, day_2, None)

    # when
    rows = rows_by_key(demand_panel(merchant=merchant, start=DAY_1, end=day_3))

    # then the day before the change shows its from-price, the day of the change its to-price
    assert rows[(product.pk, DAY_1)]["price"] == 25.0
    assert rows[(product.pk, day_2)]["price"] == 30.0
    assert rows[(product.pk, DAY_1)]["traffic"] == 2
    assert rows[(product.pk, day_2)]["traffic"] == 4  # median of the days with sessions
    assert merchant_days(merchant=merchant, start=DAY_1, end=day_3) == {DAY_1: 2, day_3: 6}


def test_panel_is_tenant_scoped_and_honours_product_ids(merchant, other_merchant):
    # given sales in two shops, and two products in the merchant's shop
    mine = ProductFactory(merchant=merchant)
    also_mine = ProductFactory(merchant=merchant)
    theirs = ProductFactory(merchant=other_merchant)
    sale(merchant, mine, DAY_1, 1, "25.00")
    sale(merchant, also_mine, DAY_1, 1, "25.00")
    sale(other_merchant, theirs, DAY_1, 4, "25.00")
    view(other_merchant, theirs, DAY_1, "25.00")

    # when
    everything = demand_panel(merchant=merchant, start=DAY_1, end=DAY_1)
    only_one = demand_panel(merchant=merchant, start=DAY_1, end=DAY_1, product_ids=[mine.pk, theirs.pk])

    # then
    assert sorted(everything.product_id.tolist()) == sorted([mine.pk, also_mine.pk])
    assert only_one.product_id.tolist() == [mine.pk]


def test_panel_of_a_shop_without_history_is_empty(merchant):
    # given / when
    panel = demand_panel(merchant=merchant, start=DAY_1, end=DAY_1 + timedelta(days=30))

    # then
    assert len(panel) == 0


def test_panel_query_count_does_not_grow_with_products(merchant, django_assert_max_num_queries):
    # given ten products sold and viewed on two days
    for product in ProductFactory.create_batch(10, merchant=merchant):
        for day in (DAY_1, DAY_1 + timedelta(days=1)):
            view(merchant, product, day, "25.00")
            sale(merchant, product, day, 1, "25.00")

    # when / then: views, sales, products, sessions, competitor prices
    with django_assert_max_num_queries(6):
        panel = demand_panel(merchant=merchant, start=DAY_1, end=DAY_1 + timedelta(days=1))
    assert len(panel) == 20


def test_days_are_the_merchants_local_days(merchant):
    # given a shop in New York and a sale at 02:00 UTC, still the evening before there
    merchant.timezone = "America/New_York"
    merchant.save(update_fields=["timezone"])
    product = ProductFactory(merchant=merchant)
    order = OrderFactory(merchant=merchant, placed_at=datetime(2026, 10, 6, 2, 0, tzinfo=UTC))
    OrderLineFactory(order=order, product=product, quantity=2)
    SessionFactory(merchant=merchant, started_at=datetime(2026, 10, 6, 1, 0, tzinfo=UTC))

    # when
    panel = demand_panel(merchant=merchant, start=DAY_1, end=DAY_1)

    # then
    assert [date.fromordinal(int(day)) for day in panel.day] == [DAY_1]
    assert panel.units.tolist() == [2.0]
    assert merchant_days(merchant=merchant, start=DAY_1, end=DAY_1) == {DAY_1: 1}
