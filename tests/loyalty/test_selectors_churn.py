from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from events.models import OrderStatus
from loyalty.churn import FEATURES
from loyalty.models import InsightKind, RetentionCandidate, RetentionSettings, RunStatus
from loyalty.selectors.churn import churn_feature_table, retention_list, retention_settings_for
from tests.factories.events import CustomerFactory, EventFactory, OrderFactory, SessionFactory
from tests.factories.loyalty import InsightRunFactory

pytestmark = pytest.mark.django_db

HORIZON = 30


@pytest.fixture
def as_of():
    return timezone.now() - timedelta(days=100)


def _row(table, customer) -> dict[str, float]:
    index = int(np.flatnonzero(table.customer_id == customer.pk)[0])
    return dict(zip(FEATURES, table.values[index], strict=True))


def _history(merchant, customer, as_of) -> None:
    """Three orders before as_of (one refunded before it, one with a coupon), sessions and events."""
    OrderFactory(merchant=merchant, customer=customer, placed_at=as_of - timedelta(days=120), subtotal=Decimal("50"))
    OrderFactory(
        merchant=merchant,
        customer=customer,
        placed_at=as_of - timedelta(days=40),
        subtotal=Decimal("30"),
        status=OrderStatus.REFUNDED,
        refunded_at=as_of - timedelta(days=35),
    )
    OrderFactory(
        merchant=merchant,
        customer=customer,
        placed_at=as_of - timedelta(days=10),
        subtotal=Decimal("70"),
        coupon="SAVE",
    )
    OrderFactory(
        merchant=merchant, customer=customer, placed_at=as_of - timedelta(days=5), status=OrderStatus.CANCELLED
    )
    SessionFactory(merchant=merchant, customer=customer, started_at=as_of - timedelta(days=60))
    SessionFactory(merchant=merchant, customer=customer, started_at=as_of - timedelta(days=4))
    EventFactory(merchant=merchant, customer=customer, name="Product Viewed", timestamp=as_of - timedelta(days=4))
    EventFactory(merchant=merchant, customer=customer, name="Product Viewed", timestamp=as_of - timedelta(days=3))
    EventFactory(merchant=merchant, customer=customer, name="Product Added", timestamp=as_of - timedelta(days=3))
    EventFactory(merchant=merchant, customer=customer, name="Product Viewed", timestamp=as_of - timedelta(days=45))


def test_features_are_computed_from_the_history_before_as_of(merchant, as_of):
    # given
    customer = CustomerFactory(merchant=merchant, marketing_consent=True)
    _history(merchant, customer, as_of)

    # when
    table = churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=False)

    # then: the cancelled order is ignored, the refunded one counts as an order but not as revenue
    row = _row(table, customer)
    assert row["orders"] == 3
    assert row["revenue"] == pytest.approx(120.0)
    assert row["mean_order_value"] == pytest.approx(50.0)
    assert row["days_since_last_order"] == pytest.approx(10.0)
    assert row["days_since_first_order"] == pytest.approx(120.0)
    assert row["orders_last_90d"] == 2
    assert row["refunds"] == 1
    assert row["discount_share"] == pytest.approx(1 / 3)
    assert row["sessions_last_30d"] == 1
    assert row["sessions_last_90d"] == 2
    assert row["days_since_last_session"] == pytest.approx(4.0)
    assert row["product_views_last_30d"] == 2
    assert row["cart_adds_last_30d"] == 1
    assert row["marketing_consent"] == 1.0
    assert table.churned is None
    assert table.as_of == as_of.isoformat()


def test_nothing_after_as_of_changes_a_feature(merchant, as_of):
    # given: the table as of as_of
    customer = CustomerFactory(merchant=merchant)
    _history(merchant, customer, as_of)
    before = churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=False)

    # when: the customer orders, visits, browses, and an earlier order is refunded, all after as_of
    later = as_of + timedelta(hours=1)
    OrderFactory(merchant=merchant, customer=customer, placed_at=later, subtotal=Decimal("500"), coupon="BIG")
    first = customer.orders.order_by("placed_at").first()
    first.status, first.refunded_at = OrderStatus.REFUNDED, later
    first.save()
    SessionFactory(merchant=merchant, customer=customer, started_at=later)
    EventFactory(merchant=merchant, customer=customer, name="Product Added", timestamp=later)
    newcomer = CustomerFactory(merchant=merchant)
    OrderFactory(merchant=merchant, customer=newcomer, placed_at=later)
    after = churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=False)

    # then: the same customers with the same features
    np.testing.assert_array_equal(after.customer_id, before.customer_id)
    np.testing.assert_array_equal(after.values, before.values)


def test_labels_say_who_placed_no_order_in_the_horizon(merchant, as_of):
    # given: customers who ordered before as_of, then ...
    returned, cancelled, too_late, gone = CustomerFactory.create_batch(4, merchant=merchant)
    for customer in (returned, cancelled, too_late, gone):
        OrderFactory(merchant=merchant, customer=customer, placed_at=as_of - timedelta(days=20))
    OrderFactory(merchant=merchant, customer=returned, placed_at=as_of + timedelta(days=HORIZON - 1))
    OrderFactory(
        merchant=merchant, customer=cancelled, placed_at=as_of + timedelta(days=3), status=OrderStatus.CANCELLED
    )
    OrderFactory(merchant=merchant, customer=too_late, placed_at=as_of + timedelta(days=HORIZON + 1))

    # when
    table = churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=True)

    # then
    churned = dict(zip(table.customer_id.tolist(), table.churned.tolist(), strict=True))
    assert churned == {returned.pk: 0, cancelled.pk: 1, too_late.pk: 1, gone.pk: 1}


def test_erased_merged_other_merchants_and_later_customers_are_left_out(merchant, other_merchant, as_of):
    # given
    kept = CustomerFactory(merchant=merchant)
    erased = CustomerFactory(merchant=merchant, erased_at=timezone.now())
    merged = CustomerFactory(merchant=merchant, merged_into=kept)
    foreign = CustomerFactory(merchant=other_merchant)
    only_cancelled = CustomerFactory(merchant=merchant)
    newcomer = CustomerFactory(merchant=merchant)
    for customer in (kept, erased, merged, foreign):
        OrderFactory(merchant=customer.merchant, customer=customer, placed_at=as_of - timedelta(days=3))
    OrderFactory(
        merchant=merchant, customer=only_cancelled, placed_at=as_of - timedelta(days=3), status=OrderStatus.CANCELLED
    )
    OrderFactory(merchant=merchant, customer=newcomer, placed_at=as_of + timedelta(days=1))

    # when
    table = churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=True)

    # then
    assert table.customer_id.tolist() == [kept.pk]
    assert table.values.shape == (1, len(FEATURES))


def test_a_customer_without_sessions_counts_as_last_seen_at_the_first_order(merchant, as_of):
    # given
    customer = CustomerFactory(merchant=merchant)
    OrderFactory(merchant=merchant, customer=customer, placed_at=as_of - timedelta(days=12))

    # when
    row = _row(churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=False), customer)

    # then
    assert row["days_since_last_session"] == pytest.approx(12.0)
    assert row["sessions_last_90d"] == 0


def test_a_horizon_not_over_yet_cannot_be_labelled(merchant):
    # given
    as_of = timezone.now() - timedelta(days=HORIZON - 1)

    # when / then
    with pytest.raises(ValueError, match="not over"):
        churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=True)


def test_an_empty_shop_gives_an_empty_table(merchant, as_of):
    # when
    table = churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=True)

    # then
    assert table.values.shape == (0, len(FEATURES))
    assert table.churned.shape == (0,)


def test_the_feature_table_takes_a_fixed_number_of_queries(merchant, as_of, django_assert_max_num_queries):
    # given
    for _ in range(15):
        _history(merchant, CustomerFactory(merchant=merchant), as_of)

    # when / then: orders, sessions, events and labels, whatever the number of customers
    with django_assert_max_num_queries(4):
        table = churn_feature_table(merchant=merchant, as_of=as_of, horizon_days=HORIZON, labelled=True)
    assert len(table.customer_id) == 15


def test_retention_settings_are_created_once_with_the_defaults(merchant):
    # when
    first = retention_settings_for(merchant=merchant)
    second = retention_settings_for(merchant=merchant)

    # then
    assert first.pk == second.pk
    assert first.churn_horizon_days == 90 and first.churn_threshold is None and first.weekly_budget == 0
    assert RetentionSettings.objects.for_merchant(merchant).count() == 1


def _candidate(run, customer, *, expected_value: float, probability: float = 0.8) -> RetentionCandidate:
    return RetentionCandidate.objects.create(
        merchant=run.merchant,
        customer=customer,
        run=run,
        churn_probability=probability,
        offer="percent_10" if expected_value > 0 else "none",
        offer_cost=Decimal("5.00") if expected_value > 0 else Decimal("0"),
        expected_value=expected_value,
        reason="test",
        created_at=timezone.now(),
    )


def test_retention_list_shows_the_latest_succeeded_runs_candidates_by_expected_value(merchant, other_merchant):
    # given: an older run, the latest succeeded run, a newer failed run, and another merchant's run
    now = timezone.now()
    older = InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, started_at=now - timedelta(days=7))
    latest = InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, started_at=now - timedelta(days=1))
    failed = InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, status=RunStatus.FAILED, started_at=now)
    foreign = InsightRunFactory(merchant=other_merchant, kind=InsightKind.CHURN, started_at=now)
    low, high, unoffered_risky, unoffered, erased = CustomerFactory.create_batch(5, merchant=merchant)
    erased.erased_at = now
    erased.save()
    _candidate(older, low, expected_value=99.0)
    _candidate(failed, low, expected_value=99.0)
    _candidate(foreign, CustomerFactory(merchant=other_merchant), expected_value=99.0)
    _candidate(latest, low, expected_value=1.0)
    _candidate(latest, high, expected_value=3.0)
    _candidate(latest, unoffered, expected_value=0.0, probability=0.6)
    _candidate(latest, unoffered_risky, expected_value=0.0, probability=0.9)
    _candidate(latest, erased, expected_value=50.0)

    # when
    listed = retention_list(merchant=merchant)
    limited = retention_list(merchant=merchant, limit=2)

    # then
    assert [c.customer_id for c in listed] == [high.pk, low.pk, unoffered_risky.pk, unoffered.pk]
    assert {c.run_id for c in listed} == {latest.pk}
    assert [c.customer_id for c in limited] == [high.pk, low.pk]


def test_retention_list_is_empty_before_any_churn_run(merchant):
    # given: only a failed run
    InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, status=RunStatus.FAILED)

    # when / then
    assert retention_list(merchant=merchant) == []
