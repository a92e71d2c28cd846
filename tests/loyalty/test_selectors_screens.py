from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events.models import OrderStatus
from loyalty.models import (
    EntryKind,
    InsightKind,
    PointsEntry,
    RetentionCandidate,
    RetentionSettings,
    RunStatus,
    Segment,
)
from loyalty.selectors.screens import (
    clusters_from,
    cohort_retention,
    loyalty_kpis,
    loyalty_overview,
    risk_list,
    run_states,
)
from tests.factories.events import CustomerFactory, OrderFactory
from tests.factories.loyalty import (
    CustomerInsightFactory,
    InsightRunFactory,
    LoyaltyAccountFactory,
    LoyaltyProgramFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 15, 12, tzinfo=UTC)


def _at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


def _orders(merchant, *days: str, status: str = OrderStatus.COMPLETED, customer=None):
    customer = customer or CustomerFactory(merchant=merchant)
    for day in days:
        OrderFactory(merchant=merchant, customer=customer, placed_at=_at(day), status=status)
    return customer


def _entry(account, points: int, key: str) -> PointsEntry:
    return PointsEntry.objects.create(
        merchant=account.merchant, account=account, kind=EntryKind.EARN if points > 0 else EntryKind.REDEEM,
        points=points, idempotency_key=key, created_at=timezone.now(),
    )  # fmt: skip


def test_cohort_retention_by_hand(merchant, other_merchant):
    # given: January's cohort is A (again in January and in March) and B (again in February)
    _orders(merchant, "2026-01-05", "2026-01-20", "2026-03-02")
    _orders(merchant, "2026-01-10", "2026-02-10")
    _orders(merchant, "2026-02-03")  # February's cohort, never back
    late = _orders(merchant, "2026-02-05", status=OrderStatus.CANCELLED)  # a cancelled order is no order
    _orders(merchant, "2026-03-01", customer=late)
    erased = _orders(merchant, "2026-01-07", "2026-02-07")
    erased.erased_at = NOW
    erased.save()
    _orders(merchant, "2025-02-10", "2026-03-03")  # a cohort older than the 12 months shown
    _orders(other_merchant, "2026-01-02", "2026-01-03")

    # when
    rows = cohort_retention(merchant=merchant, now=NOW)

    # then
    assert [(row.month, row.customers) for row in rows] == [
        (date(2026, 1, 1), 2),
        (date(2026, 2, 1), 1),
        (date(2026, 3, 1), 1),
    ]
    assert rows[0].shares == [0.5, 0.5, 0.5] + [None] * 9
    assert rows[1].shares == [0.0, 0.0] + [None] * 10
    assert rows[2].shares == [0.0] + [None] * 11


def test_cohorts_are_months_of_the_merchants_time_zone(merchant):
    # given: 03:00 UTC on 1 February is still 31 January in New York
    merchant.timezone = "America/New_York"
    merchant.save()
    customer = CustomerFactory(merchant=merchant)
    OrderFactory(merchant=merchant, customer=customer, placed_at=datetime(2026, 2, 1, 3, tzinfo=UTC))
    OrderFactory(merchant=merchant, customer=customer, placed_at=datetime(2026, 2, 20, 15, tzinfo=UTC))

    # when
    rows = cohort_retention(merchant=merchant, now=NOW)

    # then
    assert rows[0].month == date(2026, 1, 1) and rows[0].customers == 1
    assert rows[0].shares[:3] == [0.0, 1.0, 0.0]


def test_kpis_count_buyers_repeaters_risk_and_points_liability(merchant, other_merchant):
    # given
    _orders(merchant, "2026-01-05", "2026-02-05")
    _orders(merchant, "2026-01-06")
    _orders(merchant, "2026-01-07", "2026-01-08", status=OrderStatus.CANCELLED)
    _orders(other_merchant, "2026-01-05", "2026-02-05")
    run = InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, summary={"threshold": 0.6})
    for probability, clv in ((0.9, 100.0), (0.6, 50.0), (0.2, 30.0)):
        CustomerInsightFactory(merchant=merchant, churn_probability=probability, clv_12m=clv, churn_run=run)
    program = LoyaltyProgramFactory(merchant=merchant)
    rich, overdrawn = LoyaltyAccountFactory(program=program), LoyaltyAccountFactory(program=program)
    _entry(rich, 100, "a"), _entry(rich, -30, "b"), _entry(overdrawn, -20, "c")

    # when
    kpis = loyalty_kpis(merchant=merchant, runs=run_states(merchant=merchant))

    # then
    assert (kpis.customers_with_orders, kpis.repeat_customers, kpis.repeat_rate) == (2, 1, 0.5)
    assert (kpis.at_risk, kpis.risk_threshold) == (2, 0.6)
    # an overdrawn account owes nothing: it does not cancel another member's points
    assert (kpis.points_liability, kpis.members) == (70, 1)


def test_the_merchants_own_threshold_wins_and_a_bare_shop_has_no_figures(merchant, other_merchant):
    # given
    RetentionSettings.objects.create(merchant=merchant, churn_threshold=0.8)
    run = InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, summary={"threshold": 0.6})
    CustomerInsightFactory(merchant=merchant, churn_probability=0.7, churn_run=run)
    CustomerInsightFactory(merchant=merchant, churn_probability=0.85, churn_run=run)

    # when
    kpis = loyalty_kpis(merchant=merchant, runs=run_states(merchant=merchant))
    bare = loyalty_kpis(merchant=other_merchant, runs=run_states(merchant=other_merchant))

    # then
    assert (kpis.at_risk, kpis.risk_threshold) == (1, 0.8)
    assert bare.at_risk is None and bare.points_liability is None and bare.repeat_rate is None


def test_run_states_keep_the_failed_latest_beside_the_run_in_service(merchant, other_merchant):
    # given
    now = timezone.now()
    good = InsightRunFactory(merchant=merchant, kind=InsightKind.SEGMENTS, started_at=now - timedelta(days=1))
    failed = InsightRunFactory(merchant=merchant, kind=InsightKind.SEGMENTS, status=RunStatus.FAILED, started_at=now)
    InsightRunFactory(merchant=other_merchant, kind=InsightKind.CHURN)

    # when
    states = run_states(merchant=merchant)

    # then
    assert states[InsightKind.SEGMENTS].latest == failed and states[InsightKind.SEGMENTS].in_service == good
    assert states[InsightKind.SEGMENTS].status == "failed"
    assert states[InsightKind.CHURN].latest is None and states[InsightKind.CHURN].status == "never"


def test_clusters_read_the_segments_summary_and_survive_a_broken_one():
    # given
    summary = {
        "silhouette": {"3": 0.41, "2": 0.38, "4": "n/a"},
        "clusters": 3,
        "profiles": [
            {"cluster": 0, "customers": 10, "means": {"recency_days": 12.0, "orders": 4.5}, "label": "Regulars"},
            {"cluster": 1, "customers": 5, "means": {"orders": 1.0, "revenue": 40.0}},
            "garbage",
        ],
    }

    # when
    clusters = clusters_from(summary)

    # then
    assert clusters.chosen == 3 and clusters.silhouette == [(2, 0.38), (3, 0.41)]
    assert clusters.features == ["recency_days", "orders", "revenue"]
    assert [(p.label, p.customers, p.mean_list) for p in clusters.profiles] == [
        ("Regulars", 10, [12.0, 4.5, None]),
        ("Cluster 1", 5, [None, 1.0, 40.0]),
    ]
    assert clusters_from({}).profiles == [] and clusters_from({}).chosen is None


def test_the_risk_list_is_the_run_in_services_candidates_without_erased_customers(merchant):
    # given
    old = InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, started_at=timezone.now() - timedelta(days=7))
    run = InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN)

    def candidate(run, value, customer=None):
        return RetentionCandidate.objects.create(
            merchant=merchant, customer=customer or CustomerFactory(merchant=merchant), run=run,
            churn_probability=0.8, offer="percent_10", offer_cost=Decimal("5"), expected_value=value,
            reason="Quiet for 60 days", created_at=timezone.now(),
        )  # fmt: skip

    candidate(old, 99.0)
    low, high = candidate(run, 3.0), candidate(run, 12.0)
    gone = candidate(run, 50.0)
    gone.customer.erased_at = timezone.now()
    gone.customer.save()

    # when
    rows = risk_list(merchant=merchant, churn_run=run_states(merchant=merchant)[InsightKind.CHURN].in_service)

    # then
    assert rows == [high, low]


def _shop(merchant, customers: int) -> None:
    run = InsightRunFactory(merchant=merchant, kind=InsightKind.CHURN, summary={"threshold": 0.5})
    segments = InsightRunFactory(merchant=merchant, kind=InsightKind.SEGMENTS, summary={"silhouette": {"2": 0.3}})
    lifetime_value = InsightRunFactory(merchant=merchant, kind=InsightKind.LIFETIME_VALUE)
    program = LoyaltyProgramFactory(merchant=merchant)
    for index in range(customers):
        customer = _orders(merchant, "2026-01-05", "2026-02-05")
        CustomerInsightFactory(
            merchant=merchant, customer=customer, segment=Segment.LOYAL, clv_12m=float(index), p_alive=0.5,
            churn_probability=0.7, revenue=Decimal("160"), segments_run=segments, lifetime_value_run=lifetime_value,
            churn_run=run,
        )  # fmt: skip
        RetentionCandidate.objects.create(
            merchant=merchant, customer=customer, run=run, churn_probability=0.7, offer="free_shipping",
            offer_cost=Decimal("6.95"), expected_value=float(index), reason="r", created_at=timezone.now(),
        )  # fmt: skip
        _entry(LoyaltyAccountFactory(program=program, customer=customer), 10, f"k{index}")


def test_the_overview_costs_the_same_queries_for_3_and_30_customers(merchant, other_merchant):
    # given
    _shop(merchant, 3)
    _shop(other_merchant, 30)

    # when
    with CaptureQueriesContext(connection) as small:
        small_screen = loyalty_overview(merchant=merchant, now=NOW)
    with CaptureQueriesContext(connection) as large:
        large_screen = loyalty_overview(merchant=other_merchant, now=NOW)

    # then
    assert len(small.captured_queries) == len(large.captured_queries) <= 18
    assert small_screen.kpis.customers_with_orders == 3 and large_screen.kpis.customers_with_orders == 30
    assert len(large_screen.candidates) == 30 and large_screen.kpis.points_liability == 300
    assert large_screen.cohorts[0].customers == 30 and large_screen.clv.customers == 30
    assert [(row.segment, row.customers) for row in large_screen.segments] == [(Segment.LOYAL, 30)]
    assert large_screen.kpis.at_risk == 30
