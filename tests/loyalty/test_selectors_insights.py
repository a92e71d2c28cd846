from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import InsightKind, RunStatus, Segment
from loyalty.selectors.insights import (
    clv_distribution,
    insight_for,
    insight_run_in_service,
    insight_runs,
    segment_summary,
)
from tests.factories.events import CustomerFactory
from tests.factories.loyalty import CustomerInsightFactory, InsightRunFactory

pytestmark = pytest.mark.django_db


def hours_ago(hours: int):
    return timezone.now() - timedelta(hours=hours)


def test_the_run_in_service_is_the_latest_succeeded_one_of_that_kind_and_merchant(merchant, other_merchant):
    # given
    InsightRunFactory(merchant=merchant, started_at=hours_ago(30))
    in_service = InsightRunFactory(merchant=merchant, started_at=hours_ago(20))
    InsightRunFactory(merchant=merchant, started_at=hours_ago(10), status=RunStatus.FAILED)
    InsightRunFactory(merchant=merchant, started_at=hours_ago(1), status=RunStatus.RUNNING)
    InsightRunFactory(merchant=merchant, started_at=hours_ago(2), kind=InsightKind.CHURN)
    InsightRunFactory(merchant=other_merchant, started_at=hours_ago(1))

    # when / then
    assert insight_run_in_service(merchant=merchant, kind=InsightKind.SEGMENTS) == in_service
    assert insight_run_in_service(merchant=merchant, kind=InsightKind.LIFETIME_VALUE) is None
    assert [run.status for run in insight_runs(merchant=merchant, kind=InsightKind.SEGMENTS)] == [
        RunStatus.RUNNING,
        RunStatus.FAILED,
        RunStatus.SUCCEEDED,
        RunStatus.SUCCEEDED,
    ]


def test_insight_for_answers_only_the_merchants_customers_who_were_not_erased(merchant, other_merchant):
    # given
    insight = CustomerInsightFactory(merchant=merchant)
    erased = CustomerInsightFactory(merchant=merchant, customer__erased_at=timezone.now())
    elsewhere = CustomerInsightFactory(merchant=other_merchant)

    # when / then
    assert insight_for(merchant=merchant, customer=insight.customer) == insight
    assert insight_for(merchant=merchant, customer=insight.customer_id) == insight
    assert insight_for(merchant=merchant, customer=erased.customer) is None
    assert insight_for(merchant=merchant, customer=elsewhere.customer) is None
    assert insight_for(merchant=merchant, customer=CustomerFactory(merchant=merchant)) is None


def test_segment_summary_counts_customers_revenue_and_lifetime_value_of_the_run_in_service(merchant, other_merchant):
    # given: three champions and a lost customer in the run in service; rows of an older run, an erased
    # customer and another merchant's customer do not count
    run = InsightRunFactory(merchant=merchant)
    old = InsightRunFactory(merchant=merchant, started_at=hours_ago(48))
    for revenue, clv in [(100, 50.0), (200, 70.0), (300, None)]:
        CustomerInsightFactory(
            merchant=merchant, segments_run=run, segment=Segment.CHAMPIONS, revenue=Decimal(revenue), clv_12m=clv
        )
    CustomerInsightFactory(merchant=merchant, segments_run=run, segment=Segment.LOST, revenue=Decimal(400))
    CustomerInsightFactory(merchant=merchant, segments_run=old, segment=Segment.LOST, revenue=Decimal(999))
    CustomerInsightFactory(
        merchant=merchant,
        segments_run=run,
        segment=Segment.LOST,
        revenue=Decimal(999),
        customer__erased_at=timezone.now(),
    )
    other_run = InsightRunFactory(merchant=other_merchant)
    CustomerInsightFactory(merchant=other_merchant, segments_run=other_run, segment=Segment.LOST)

    # when
    rows = {row.segment: row for row in segment_summary(merchant=merchant)}

    # then
    assert list(rows) == list(Segment.values)
    champions, lost = rows[Segment.CHAMPIONS], rows[Segment.LOST]
    assert (champions.customers, champions.share, champions.revenue) == (3, 0.75, 600.0)
    assert champions.revenue_share == pytest.approx(0.6)
    assert champions.mean_clv == pytest.approx(60.0)
    assert champions.label == "Champions"
    assert (lost.customers, lost.revenue, lost.mean_clv) == (1, 400.0, None)
    assert rows[Segment.NEW].customers == 0


def test_segment_summary_is_empty_before_any_run(merchant):
    # given
    InsightRunFactory(merchant=merchant, status=RunStatus.FAILED)

    # when / then
    assert segment_summary(merchant=merchant) == []


def test_clv_distribution_bins_the_lifetime_values_of_the_run_in_service(merchant):
    # given: 99 customers worth 0..98 and one worth 10,000, far in the tail
    run = InsightRunFactory(merchant=merchant, kind=InsightKind.LIFETIME_VALUE)
    for value in [*range(99), 10_000]:
        CustomerInsightFactory(merchant=merchant, lifetime_value_run=run, clv_12m=float(value))
    CustomerInsightFactory(merchant=merchant, lifetime_value_run=None, clv_12m=5_000.0)

    # when
    histogram = clv_distribution(merchant=merchant, bins=10)

    # then
    assert histogram.customers == 100
    assert len(histogram.edges) == 11 and len(histogram.counts) == 10
    assert histogram.edges[0] == 0.0
    assert sum(histogram.counts) == 100
    assert histogram.clipped == 1
    assert histogram.counts[-1] >= 1
    assert histogram.total == pytest.approx(sum(range(99)) + 10_000)
    assert histogram.median == pytest.approx(49.5)
    assert histogram.top_decile_share == pytest.approx((10_000 + sum(range(90, 99))) / histogram.total)


def test_clv_distribution_is_none_without_a_lifetime_value_run(merchant):
    # when / then
    assert clv_distribution(merchant=merchant) is None
    with pytest.raises(ValueError):
        clv_distribution(merchant=merchant, bins=0)
