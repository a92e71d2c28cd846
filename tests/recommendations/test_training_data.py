from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from events.models import OrderStatus
from recommendations.engine.dataset import FEEDBACK_KINDS
from recommendations.models import RecommenderSettings
from recommendations.training_data import training_data_for
from tests.factories.catalog import CategoryFactory, ProductFactory
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, OrderLineFactory, SessionFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _rows(data) -> set[tuple[int, int, str]]:
    """(customer id, product id, kind) of every interaction, translated back to database ids."""
    interactions = data.interactions
    return {
        (int(data.users.ids[user]), int(data.items.ids[item]), FEEDBACK_KINDS[kind])
        for user, item, kind in zip(interactions.user, interactions.item, interactions.kind, strict=True)
    }


def test_events_and_completed_orders_become_interactions_of_each_kind(merchant):
    # given
    tent, mug, stove = (ProductFactory(merchant=merchant) for _ in range(3))
    ada = CustomerFactory(merchant=merchant)
    session = SessionFactory(merchant=merchant, customer=ada, started_at=NOW - timedelta(days=1))
    at = NOW - timedelta(hours=5)
    EventFactory(merchant=merchant, customer=ada, product=tent, name="Product Viewed", timestamp=at, session=session)
    EventFactory(merchant=merchant, customer=ada, product=tent, name="Product Clicked", timestamp=at)
    EventFactory(merchant=merchant, customer=ada, product=mug, name="Product Added to Wishlist", timestamp=at)
    EventFactory(merchant=merchant, customer=ada, product=stove, name="Product Added", timestamp=at)
    EventFactory(merchant=merchant, customer=ada, product=stove, name="Product Removed", timestamp=at)
    EventFactory(merchant=merchant, customer=ada, product=None, name="Product Viewed", timestamp=at)
    order = OrderFactory(merchant=merchant, customer=ada, placed_at=at, session=session)
    OrderLineFactory(order=order, product=stove)
    OrderLineFactory(order=order, product=mug)
    OrderLineFactory(order=order, product=None)

    # when
    data = training_data_for(merchant=merchant, now=NOW)

    # then
    assert _rows(data) == {
        (ada.pk, tent.pk, "view"),
        (ada.pk, tent.pk, "click"),
        (ada.pk, mug.pk, "wishlist"),
        (ada.pk, stove.pk, "cart"),
        (ada.pk, stove.pk, "purchase"),
        (ada.pk, mug.pk, "purchase"),
    }
    assert len(data.interactions) == 6
    viewed = data.interactions.kind == FEEDBACK_KINDS.index("view")
    assert data.interactions.session[viewed].tolist() == [session.pk]
    assert data.interactions.timestamp[viewed].tolist() == [at.timestamp()]
    assert data.now == NOW.timestamp()
    assert len(data.baskets) == 1
    basket = data.baskets.item[data.baskets.offsets[0] : data.baskets.offsets[1]]
    assert sorted(data.items.ids[basket].tolist()) == sorted([stove.pk, mug.pk])


def test_cancelled_and_refunded_orders_are_not_purchases(merchant):
    # given
    tent, mug, stove = (ProductFactory(merchant=merchant) for _ in range(3))
    ada = CustomerFactory(merchant=merchant)
    at = NOW - timedelta(days=2)
    OrderLineFactory(order=OrderFactory(merchant=merchant, customer=ada, placed_at=at), product=tent)
    OrderLineFactory(
        order=OrderFactory(merchant=merchant, customer=ada, placed_at=at, status=OrderStatus.CANCELLED), product=mug
    )
    OrderLineFactory(
        order=OrderFactory(merchant=merchant, customer=ada, placed_at=at, status=OrderStatus.REFUNDED), product=stove
    )

    # when
    data = training_data_for(merchant=merchant, now=NOW)

    # then
    assert _rows(data) == {(ada.pk, tent.pk, "purchase")}
    assert len(data.baskets) == 1
    assert data.users.segment == ["one_time"]


def test_only_the_training_window_is_read(merchant):
    # given
    tent, mug = ProductFactory(merchant=merchant), ProductFactory(merchant=merchant)
    ada = CustomerFactory(merchant=merchant)
    settings = RecommenderSettings.objects.create(merchant=merchant, training_window_days=30)
    EventFactory(merchant=merchant, customer=ada, product=tent, timestamp=NOW - timedelta(days=29))
    EventFactory(merchant=merchant, customer=ada, product=mug, timestamp=NOW - timedelta(days=31))
    EventFactory(merchant=merchant, customer=ada, product=mug, timestamp=NOW + timedelta(hours=1))
    old_order = OrderFactory(merchant=merchant, customer=ada, placed_at=NOW - timedelta(days=40))
    OrderLineFactory(order=old_order, product=mug)

    # when
    data = training_data_for(merchant=merchant, now=NOW, settings=settings)

    # then
    assert _rows(data) == {(ada.pk, tent.pk, "view")}
    assert data.interactions.timestamp.tolist() == [(NOW - timedelta(days=29)).timestamp()]
    assert len(data.baskets) == 0


def test_timestamps_keep_their_milliseconds(merchant):
    # given
    at = NOW - timedelta(days=1, seconds=12.345)
    EventFactory(merchant=merchant, product=ProductFactory(merchant=merchant), timestamp=at)

    # when
    data = training_data_for(merchant=merchant, now=NOW)

    # then
    assert data.interactions.timestamp[0] == pytest.approx(at.timestamp(), abs=1e-3)


def test_merged_customers_do_not_appear(merchant):
    # given: an anonymous visitor merged into ada at login; one late row still carries the old id
    tent, mug = ProductFactory(merchant=merchant), ProductFactory(merchant=merchant)
    ada = CustomerFactory(merchant=merchant)
    anonymous = CustomerFactory(merchant=merchant, external_id=None, merged_into=ada)
    EventFactory(merchant=merchant, customer=ada, product=tent, timestamp=NOW - timedelta(days=1))
    EventFactory(merchant=merchant, customer=anonymous, product=mug, timestamp=NOW - timedelta(days=1))

    # when
    data = training_data_for(merchant=merchant, now=NOW)

    # then
    assert data.users.ids.tolist() == [ada.pk]
    assert _rows(data) == {(ada.pk, tent.pk, "view"), (ada.pk, mug.pk, "view")}


def test_items_are_every_product_with_its_catalog_features(merchant):
    # given
    tents = CategoryFactory(merchant=merchant, name="Tents", path="Outdoor > Tents")
    tent = ProductFactory(
        merchant=merchant,
        category=tents,
        title="Cirrus Tent",
        description="Two-person tent",
        brand="Nordline",
        attributes={"colour": "green"},
        price="129.50",
        is_active=False,
    )
    loose = ProductFactory(merchant=merchant, category=None)
    ProductFactory(merchant=CustomerFactory().merchant)

    # when
    data = training_data_for(merchant=merchant, now=NOW)

    # then
    assert data.items.ids.tolist() == [tent.pk, loose.pk]
    assert data.items.category.tolist() == [tents.pk, -1]
    assert data.items.category_path == ["Outdoor > Tents", ""]
    assert data.items.title[0] == "Cirrus Tent" and data.items.description[0] == "Two-person tent"
    assert data.items.brand[0] == "Nordline" and data.items.attributes[0] == {"colour": "green"}
    assert data.items.price[0] == pytest.approx(129.5)
    assert data.items.created_at[0] == pytest.approx(tent.created_at.timestamp())
    assert len(data.interactions) == 0 and len(data.users) == 0 and len(data.baskets) == 0


def test_users_carry_their_main_device_and_order_segment(merchant):
    # given
    tent = ProductFactory(merchant=merchant)
    new, once, repeat = (CustomerFactory(merchant=merchant) for _ in range(3))
    for device in ("mobile", "mobile", "desktop"):
        SessionFactory(merchant=merchant, customer=once, device=device, started_at=NOW - timedelta(days=3))
    EventFactory(merchant=merchant, customer=new, product=tent, timestamp=NOW - timedelta(days=1))
    first_order = OrderFactory(merchant=merchant, customer=once, placed_at=NOW - timedelta(days=1))
    OrderLineFactory(order=first_order, product=tent)
    for days in (1, 2):
        order = OrderFactory(merchant=merchant, customer=repeat, placed_at=NOW - timedelta(days=days))
        OrderLineFactory(order=order, product=tent)

    # when
    data = training_data_for(merchant=merchant, now=NOW)

    # then
    features = zip(data.users.device, data.users.segment, strict=True)
    by_customer = dict(zip(data.users.ids.tolist(), features, strict=True))
    assert by_customer == {new.pk: ("other", "new"), once.pk: ("mobile", "one_time"), repeat.pk: ("other", "repeat")}


def test_other_merchants_rows_are_never_read(merchant, other_merchant):
    # given
    theirs = ProductFactory(merchant=other_merchant)
    EventFactory(merchant=other_merchant, product=theirs, timestamp=NOW - timedelta(days=1))
    OrderLineFactory(order=OrderFactory(merchant=other_merchant, placed_at=NOW - timedelta(days=1)), product=theirs)

    # when
    data = training_data_for(merchant=merchant, now=NOW)

    # then
    assert len(data.items) == 0 and len(data.interactions) == 0 and len(data.users) == 0


def test_interaction_indexes_point_into_users_and_items(merchant):
    # given
    products = [ProductFactory(merchant=merchant) for _ in range(5)]
    customers = [CustomerFactory(merchant=merchant) for _ in range(4)]
    for position, customer in enumerate(customers):
        for product in products[position:]:
            EventFactory(merchant=merchant, customer=customer, product=product, timestamp=NOW - timedelta(days=1))

    # when
    data = training_data_for(merchant=merchant, now=NOW)

    # then
    assert len(data.interactions) == 5 + 4 + 3 + 2
    assert data.interactions.user.dtype == np.int64 and data.interactions.item.dtype == np.int64
    counts = np.bincount(data.interactions.user, minlength=len(data.users))
    assert dict(zip(data.users.ids.tolist(), counts.tolist(), strict=True)) == {
        customer.pk: 5 - position for position, customer in enumerate(customers)
    }
