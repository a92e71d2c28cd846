import pickle
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from events.abandonment import AbandonmentPredictor, feature_names
from events.models import ModelRunStatus, OrderStatus
from events.selectors.abandonment import (
    abandonment_model_serving,
    abandonment_score,
    abandonment_serving_forget,
    cart_snapshot_live,
    cart_snapshots,
)
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, SessionFactory
from tests.factories.funnel import AbandonmentModelFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 6, 1, 18, 30, tzinfo=UTC)


def test_live_snapshot_reads_cart_history_and_session_signals(merchant):
    # given a customer with two earlier orders and one earlier session, and a live session with logged events
    merchant.timezone = "Europe/Berlin"
    merchant.save()
    customer = CustomerFactory(merchant=merchant)
    OrderFactory(merchant=merchant, customer=customer, placed_at=AT - timedelta(days=10), total=Decimal("40"))
    OrderFactory(merchant=merchant, customer=customer, placed_at=AT - timedelta(days=4), total=Decimal("60"))
    SessionFactory(merchant=merchant, customer=customer, started_at=AT - timedelta(days=4))
    session = SessionFactory(merchant=merchant, customer=customer, started_at=AT - timedelta(minutes=20))
    for minutes, name in (
        (19, "Product Viewed"),
        (18, "Product Viewed"),
        (17, "Product Viewed"),
        (10, "Product Added"),
    ):
        EventFactory(
            merchant=merchant, customer=customer, session=session, name=name, timestamp=AT - timedelta(minutes=minutes)
        )
    EventFactory(
        merchant=merchant,
        customer=customer,
        session=session,
        name="Page Viewed",
        properties={"path": "/help/shipping-rates"},
        timestamp=AT - timedelta(minutes=5),
    )

    EventFactory(merchant=merchant, customer=customer, session=session, timestamp=AT + timedelta(minutes=1))

    # when the storefront sends fewer product views but more searches than the log holds (as of AT)
    snapshot = cart_snapshot_live(
        merchant=merchant,
        customer=customer,
        session_external_id=session.external_id,
        lines=[("A", 2, Decimal("10.00")), ("B", 1, Decimal("5.50"))],
        device="mobile",
        source="google",
        signals={"product_views": 1, "searches": 2},
        at=AT,
        free_shipping_threshold=Decimal("50"),
    )

    # then
    assert snapshot.cart_value == pytest.approx(25.5)
    assert (snapshot.items, snapshot.distinct_products) == (3, 2)
    assert (snapshot.hour_of_day, snapshot.weekday) == (20, 0)  # 18:30 UTC is 20:30 in Berlin, a Monday
    assert snapshot.logged_in
    assert (snapshot.prior_orders, snapshot.prior_revenue, snapshot.prior_sessions) == (2, 100.0, 1)
    assert snapshot.days_since_last_order == pytest.approx(4.0)
    assert snapshot.signals["product_views"] == 3
    assert snapshot.signals["searches"] == 2
    assert snapshot.signals["cart_adds"] == 1
    assert snapshot.signals["shipping_info_views"] == 1
    assert snapshot.signals["seconds_on_site"] == pytest.approx(19 * 60)
    assert snapshot.signals["seconds_on_cart"] == pytest.approx(10 * 60)
    assert snapshot.free_shipping_gap == pytest.approx(24.5)


def test_live_snapshot_of_an_erased_customer_has_no_history(merchant):
    # given an erased customer with orders
    customer = CustomerFactory(merchant=merchant, erased_at=AT - timedelta(days=1))
    OrderFactory(merchant=merchant, customer=customer, placed_at=AT - timedelta(days=3))

    # when
    snapshot = cart_snapshot_live(
        merchant=merchant,
        customer=customer,
        session_external_id="new-session",
        lines=[("A", 1, Decimal("10"))],
        device="desktop",
        source="",
        signals={},
        at=AT,
    )

    # then
    assert (snapshot.prior_orders, snapshot.prior_revenue, snapshot.days_since_last_order) == (0, 0.0, None)


def test_live_snapshot_ignores_another_merchants_session(merchant, other_merchant):
    # given the other merchant's session with the same external id and events
    other_session = SessionFactory(
        merchant=other_merchant, external_id="shared-id", started_at=AT - timedelta(minutes=5)
    )
    EventFactory(
        merchant=other_merchant,
        customer=other_session.customer,
        session=other_session,
        timestamp=AT - timedelta(minutes=1),
    )

    # when
    snapshot = cart_snapshot_live(
        merchant=merchant,
        customer=None,
        session_external_id="shared-id",
        lines=[("A", 1, Decimal("10"))],
        device="desktop",
        source="",
        signals={},
        at=AT,
    )

    # then
    assert snapshot.signals["product_views"] == 0
    assert not snapshot.logged_in


def _session_events(merchant, session, events):
    """events: (seconds after AT, name, properties) in the session."""
    for seconds, name, properties in events:
        EventFactory(
            merchant=merchant,
            customer=session.customer,
            session=session,
            name=name,
            properties=properties or {},
            price=(properties or {}).get("price"),
            quantity=(properties or {}).get("quantity"),
            timestamp=AT + timedelta(seconds=seconds),
        )


CART = [
    (0, "Page Viewed", {"path": "/"}),
    (10, "Product Viewed", {}),
    (20, "Product Added", {"sku": "A", "price": "30.00", "quantity": 2}),
    (30, "Product Added", {"sku": "B", "price": "15.00", "quantity": 1}),
    (40, "Page Viewed", {"path": "/pages/shipping"}),
    (60, "Cart Viewed", {}),
]


def test_training_snapshot_is_taken_at_the_cart_view_and_later_events_change_nothing(merchant):
    # given a cart viewed at AT+60s
    session = SessionFactory(merchant=merchant, started_at=AT, device="mobile", utm_source="google")
    _session_events(merchant, session, CART)
    before = cart_snapshots(merchant=merchant, start=AT - timedelta(days=1), end=AT + timedelta(days=1))

    # when the shopper goes on to check out and look at more pages
    _session_events(
        merchant,
        session,
        [
            (70, "Checkout Started", {}),
            (75, "Page Viewed", {"path": "/pages/returns"}),
            (80, "Product Viewed", {}),
            (90, "Coupon Denied", {}),
        ],
    )
    after = cart_snapshots(merchant=merchant, start=AT - timedelta(days=1), end=AT + timedelta(days=1))

    # then
    assert before[0] == after[0] and before[2] == after[2]
    snapshot = after[0][0]
    assert after[2] == [AT + timedelta(seconds=60)]
    assert (snapshot.cart_value, snapshot.items, snapshot.distinct_products) == (75.0, 3, 2)
    assert (snapshot.device, snapshot.source) == ("mobile", "google")
    assert snapshot.signals["product_views"] == 1
    assert snapshot.signals["shipping_info_views"] == 1
    assert snapshot.signals["cart_adds"] == 2
    assert snapshot.signals["seconds_on_cart"] == 30
    assert snapshot.signals["seconds_on_site"] == 60
    assert after[1].tolist() == [1]


def test_training_snapshot_never_passes_checkout_started(merchant):
    # given a cart that goes to checkout without a cart view, then views the cart
    session = SessionFactory(merchant=merchant, started_at=AT)
    _session_events(
        merchant,
        session,
        [
            (0, "Product Added", {"sku": "A", "price": "10.00", "quantity": 1}),
            (5, "Product Viewed", {}),
            (50, "Checkout Started", {}),
            (60, "Cart Viewed", {}),
        ],
    )

    # when
    snapshots, _, moments = cart_snapshots(merchant=merchant, start=AT - timedelta(days=1), end=AT + timedelta(days=1))

    # then just after the add, before the checkout
    assert moments == [AT + timedelta(seconds=1)]
    assert snapshots[0].signals["product_views"] == 0
    assert snapshots[0].items == 1


def test_training_labels_come_from_the_sessions_orders(merchant):
    # given a bought cart, a cart whose order was cancelled and a cart left alone
    bought, cancelled, left = (
        SessionFactory(merchant=merchant, started_at=AT + timedelta(minutes=minutes)) for minutes in (0, 10, 20)
    )
    for session in (bought, cancelled, left):
        _session_events(
            merchant, session, [(seconds + (session.started_at - AT).seconds, n, p) for seconds, n, p in CART]
        )
    OrderFactory(merchant=merchant, customer=bought.customer, session=bought, placed_at=AT + timedelta(minutes=5))
    OrderFactory(
        merchant=merchant,
        customer=cancelled.customer,
        session=cancelled,
        placed_at=AT + timedelta(minutes=15),
        status=OrderStatus.CANCELLED,
    )

    # when
    _, labels, _ = cart_snapshots(merchant=merchant, start=AT - timedelta(days=1), end=AT + timedelta(days=1))

    # then in moment order
    assert labels.tolist() == [0, 1, 1]


def test_training_leaves_out_erased_merged_other_merchants_and_cartless_sessions(merchant, other_merchant):
    # given
    erased = SessionFactory(merchant=merchant, started_at=AT, customer__erased_at=AT)
    merged_into = CustomerFactory(merchant=merchant)
    merged = SessionFactory(merchant=merchant, started_at=AT, customer__merged_into=merged_into)
    browsing = SessionFactory(merchant=merchant, started_at=AT)
    foreign = SessionFactory(merchant=other_merchant, started_at=AT)
    kept = SessionFactory(merchant=merchant, started_at=AT)
    for session in (erased, merged, foreign, kept):
        _session_events(session.merchant, session, CART)
    _session_events(merchant, browsing, [(0, "Product Viewed", {})])

    # when
    snapshots, labels, _ = cart_snapshots(merchant=merchant, start=AT - timedelta(days=1), end=AT + timedelta(days=1))

    # then
    assert len(snapshots) == 1 and len(labels) == 1


def test_training_history_counts_only_what_came_before_the_session(merchant):
    # given a customer with an order and a session before, and an order after
    customer = CustomerFactory(merchant=merchant)
    SessionFactory(merchant=merchant, customer=customer, started_at=AT - timedelta(days=3))
    OrderFactory(merchant=merchant, customer=customer, placed_at=AT - timedelta(days=2), total=Decimal("42.50"))
    OrderFactory(merchant=merchant, customer=customer, placed_at=AT + timedelta(days=2), total=Decimal("99"))
    session = SessionFactory(merchant=merchant, customer=customer, started_at=AT)
    _session_events(merchant, session, CART)

    # when
    snapshots, _, _ = cart_snapshots(merchant=merchant, start=AT - timedelta(days=1), end=AT + timedelta(days=5))

    # then
    snapshot = snapshots[0]
    assert (snapshot.prior_orders, snapshot.prior_revenue, snapshot.prior_sessions) == (1, 42.5, 1)
    assert snapshot.days_since_last_order == pytest.approx(2 + 60 / 86400)
    assert snapshot.logged_in


def test_training_data_costs_the_same_queries_for_any_number_of_carts(merchant, django_assert_num_queries):
    # given ten carts
    for index in range(10):
        session = SessionFactory(merchant=merchant, started_at=AT + timedelta(hours=index))
        _session_events(merchant, session, [(s + 3600 * index, n, p) for s, n, p in CART])

    # when / then
    with django_assert_num_queries(6):
        snapshots, _, _ = cart_snapshots(merchant=merchant, start=AT - timedelta(days=1), end=AT + timedelta(days=1))
    assert len(snapshots) == 10


def test_score_is_none_without_a_model_and_ignores_failed_ones(merchant):
    # given only a failed training
    AbandonmentModelFactory(merchant=merchant, status=ModelRunStatus.FAILED, artifact=_artifact())
    abandonment_serving_forget()

    # when / then
    assert abandonment_model_serving(merchant=merchant) is None
    assert abandonment_score(merchant=merchant, snapshot=_live(merchant)) is None


def test_score_uses_the_newest_succeeded_model_and_caches_it(merchant, other_merchant, django_assert_num_queries):
    # given an older and a newer model, and the other merchant's
    AbandonmentModelFactory(merchant=merchant, finished_at=AT - timedelta(days=2), artifact=_artifact(constant=0.9))
    newest = AbandonmentModelFactory(merchant=merchant, finished_at=AT, artifact=_artifact(constant=0.2))
    AbandonmentModelFactory(
        merchant=other_merchant, finished_at=AT + timedelta(days=1), artifact=_artifact(constant=0.6)
    )
    abandonment_serving_forget()
    snapshot = _live(merchant)

    # when
    first = abandonment_score(merchant=merchant, snapshot=snapshot)
    with django_assert_num_queries(0):
        second = abandonment_score(merchant=merchant, snapshot=snapshot)

    # then
    assert abandonment_model_serving(merchant=merchant) == newest
    assert first == second == pytest.approx(0.2)


def _live(merchant):
    return cart_snapshot_live(
        merchant=merchant,
        customer=None,
        session_external_id="",
        lines=[("A", 1, Decimal("20"))],
        device="desktop",
        source="",
        signals={},
        at=AT,
    )


def _artifact(*, constant: float = 0.5) -> bytes:
    """A fitted predictor whose score is `constant` for every cart."""
    labels = np.array([1] * round(constant * 100) + [0] * round((1 - constant) * 100))
    estimator = DummyClassifier(strategy="prior").fit(np.zeros((len(labels), len(feature_names()))), labels)
    return pickle.dumps(AbandonmentPredictor(estimator=estimator, feature_names=feature_names()))
