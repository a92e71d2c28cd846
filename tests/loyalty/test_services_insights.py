from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from events.models import Customer, Order, OrderStatus
from loyalty import clv, rfm
from loyalty.models import CustomerInsight, InsightKind, InsightRun, RunStatus, Segment
from loyalty.selectors.insights import insight_run_in_service
from loyalty.services.insights import InsufficientHistory, lifetime_value_refresh, segments_refresh
from revopt.tenancy.models import AuditLogEntry
from tests.factories.events import CustomerFactory, OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
START = AS_OF - timedelta(weeks=52)


@pytest.fixture
def one_cluster(monkeypatch) -> None:
    """Everyone in cluster 0: for tests about what a run writes, not about k-means (which takes seconds)."""

    def clusters(features, **kwargs) -> rfm.Clustering:
        customers = len(next(iter(features.values())))
        return rfm.Clustering(labels=np.zeros(customers, dtype=np.int64), k=1, silhouette_by_k={}, profiles=())

    monkeypatch.setattr(rfm, "behaviour_clusters", clusters)


def small_shop(merchant, customers: int = 40) -> list[Customer]:
    """Customers with 1..5 orders spread over the last year, the busiest the most recent."""
    rng = np.random.default_rng(7)
    shoppers = []
    for index in range(customers):
        customer = CustomerFactory(merchant=merchant)
        shoppers.append(customer)
        for _ in range(index % 5 + 1):
            OrderFactory(
                merchant=merchant,
                customer=customer,
                placed_at=AS_OF - timedelta(days=float(rng.uniform(1, 360))),
                total=Decimal(str(round(float(rng.uniform(20, 200)), 2))),
            )
    return shoppers


def bgnbd_shop(merchant, *, customers: int, seed: int = 11) -> dict[int, int]:
    """Orders drawn from BG/NBD (r=0.5, α=4 weeks, a=0.8, b=2.5) with Gamma-Gamma spend (p=6, q=4, γ=15) over the
    year before AS_OF; answers the purchases each customer makes in the 90 days after it."""
    rng = np.random.default_rng(seed)
    people = Customer.objects.bulk_create(
        [Customer(merchant=merchant, external_id=f"bg-{i}", created_at=START) for i in range(customers)]
    )
    orders, future = [], {}
    for customer in people:
        rate = rng.gamma(0.5, 1 / 4.0)
        dropout = rng.beta(0.8, 2.5)
        spend_scale = rng.gamma(4.0, 1 / 15.0)
        first = week = rng.uniform(0, 12)
        future[customer.pk] = 0
        while week < 52 + 90 / 7:
            if week < 52:
                placed_at = START + timedelta(weeks=week)
                value = max(rng.gamma(6.0, 1 / spend_scale), 0.01)
                orders.append(
                    Order(
                        merchant=merchant,
                        customer=customer,
                        external_id=f"o-{len(orders)}",
                        message_id=f"m-{len(orders)}",
                        placed_at=placed_at,
                        subtotal=Decimal(f"{value:.2f}"),
                        total=Decimal(f"{value:.2f}"),
                    )
                )
            else:
                future[customer.pk] += 1
            # BG/NBD: a customer may drop out after each repeat purchase (never right after the first).
            if week > first and rng.random() < dropout:
                break
            week += rng.exponential(1 / rate)
    Order.objects.bulk_create(orders, batch_size=2000)
    return future


def test_segments_refresh_gives_every_customer_scores_a_segment_and_a_cluster(merchant):
    # given
    shoppers = small_shop(merchant)

    # when
    run = segments_refresh(merchant=merchant, as_of=AS_OF)

    # then
    insights = CustomerInsight.objects.for_merchant(merchant)
    assert run.status == RunStatus.SUCCEEDED
    assert run.customers == len(shoppers) == insights.count()
    assert set(insights.values_list("segments_run", flat=True)) == {run.pk}
    assert all(row.segment in Segment.values for row in insights)
    assert all(1 <= score <= 5 for row in insights for score in (row.r_score, row.f_score, row.m_score))
    assert not insights.filter(cluster__isnull=True).exists()
    busiest = insights.get(customer=shoppers[4])
    assert busiest.orders == 5
    assert busiest.first_order_at < busiest.last_order_at < AS_OF
    assert sum(run.summary["segments"].values()) == len(shoppers)
    assert str(run.summary["clusters"]) in run.summary["silhouette"]
    assert len(run.summary["profiles"]) == run.summary["clusters"]
    assert AuditLogEntry.objects.filter(merchant=merchant, action="loyalty.segments_refresh").count() == 1


def test_a_failed_segments_run_keeps_the_previous_scores_in_service(merchant, monkeypatch, one_cluster):
    # given: a succeeded run, then new orders and a clustering that breaks
    small_shop(merchant)
    first = segments_refresh(merchant=merchant, as_of=AS_OF)
    before = list(CustomerInsight.objects.for_merchant(merchant).order_by("pk").values())
    customer = CustomerFactory(merchant=merchant)
    OrderFactory(merchant=merchant, customer=customer, placed_at=AS_OF)

    def broken(*args, **kwargs):
        raise RuntimeError("k-means exploded")

    monkeypatch.setattr(rfm, "behaviour_clusters", broken)

    # when
    with pytest.raises(RuntimeError):
        segments_refresh(merchant=merchant, as_of=AS_OF + timedelta(days=1))

    # then
    failed = InsightRun.objects.for_merchant(merchant).exclude(pk=first.pk).get()
    assert (failed.status, failed.error) == (RunStatus.FAILED, "RuntimeError: k-means exploded")
    assert insight_run_in_service(merchant=merchant, kind=InsightKind.SEGMENTS) == first
    assert list(CustomerInsight.objects.for_merchant(merchant).order_by("pk").values()) == before


def test_a_failure_while_writing_rolls_the_scores_back(merchant, monkeypatch, one_cluster):
    # given: the audit row written with the SUCCEEDED flip fails after the scores were upserted
    small_shop(merchant, customers=12)

    def broken_audit(**kwargs):
        if kwargs["detail"]["status"] == RunStatus.SUCCEEDED:
            raise RuntimeError("audit log down")

    monkeypatch.setattr("loyalty.services.insights.audit_log_write", broken_audit)

    # when
    with pytest.raises(RuntimeError):
        segments_refresh(merchant=merchant, as_of=AS_OF)

    # then
    assert not CustomerInsight.objects.for_merchant(merchant).exists()
    assert InsightRun.objects.for_merchant(merchant).get().status == RunStatus.FAILED


def test_a_shop_without_orders_fails_its_segments_run_with_a_clear_error(merchant):
    # when
    with pytest.raises(InsufficientHistory):
        segments_refresh(merchant=merchant, as_of=AS_OF)

    # then
    run = InsightRun.objects.for_merchant(merchant).get()
    assert run.status == RunStatus.FAILED
    assert "no customer has a completed order" in run.error


def test_a_customer_whose_orders_were_refunded_or_who_was_erased_loses_the_old_scores(merchant, one_cluster):
    # given: scored once
    shoppers = small_shop(merchant, customers=15)
    segments_refresh(merchant=merchant, as_of=AS_OF)
    refunded, erased = shoppers[0], shoppers[1]
    Order.objects.filter(customer=refunded).update(status=OrderStatus.REFUNDED)
    Customer.objects.filter(pk=erased.pk).update(erased_at=timezone.now())

    # when
    run = segments_refresh(merchant=merchant, as_of=AS_OF)

    # then
    assert run.customers == 13
    assert run.summary["cleared_customers"] == 2
    cleared = CustomerInsight.objects.get(customer=refunded)
    assert (cleared.segment, cleared.r_score, cleared.orders, cleared.segments_run) == ("", None, 0, None)


def test_segments_refresh_reads_with_the_same_queries_for_more_customers(merchant, other_merchant, one_cluster):
    # given
    small_shop(merchant, customers=12)
    small_shop(other_merchant, customers=60)

    # when
    with CaptureQueriesContext(connection) as few:
        segments_refresh(merchant=merchant, as_of=AS_OF)
    with CaptureQueriesContext(connection) as many:
        segments_refresh(merchant=other_merchant, as_of=AS_OF)

    # then: only the bulk upsert grows, by SQLite's parameter-limited batches, never one statement per customer
    def split(queries) -> tuple[list[str], list[str]]:
        upserts = [q["sql"] for q in queries if q["sql"].startswith('INSERT INTO "loyalty_customerinsight"')]
        return upserts, [q["sql"] for q in queries if q["sql"] not in upserts]

    few_upserts, few_others = split(few.captured_queries)
    many_upserts, many_others = split(many.captured_queries)
    assert len(many_others) == len(few_others)
    assert len(few_upserts) == 1
    assert len(many_upserts) <= 60 / 20


def test_lifetime_value_refresh_recovers_the_simulated_shop_and_forecasts_its_next_90_days(merchant):
    # given: 1,500 customers drawn from known BG/NBD and Gamma-Gamma parameters
    future = bgnbd_shop(merchant, customers=1500)

    # when
    run = lifetime_value_refresh(merchant=merchant, as_of=AS_OF)

    # then
    assert run.status == RunStatus.SUCCEEDED
    bgnbd = run.summary["bgnbd"]
    assert bgnbd["r"] == pytest.approx(0.5, rel=0.2)
    assert bgnbd["r"] / bgnbd["alpha"] == pytest.approx(0.5 / 4.0, rel=0.15)
    gamma_gamma = run.summary["gamma_gamma"]
    mean_spend = gamma_gamma["p"] * gamma_gamma["gamma"] / (gamma_gamma["q"] - 1)
    assert mean_spend == pytest.approx(6.0 * 15.0 / 3.0, rel=0.15)
    insights = CustomerInsight.objects.for_merchant(merchant)
    assert insights.count() == run.customers == Customer.objects.filter(orders__isnull=False).distinct().count()
    predicted = sum(insights.values_list("expected_purchases_90d", flat=True))
    assert predicted == pytest.approx(sum(future.values()), rel=0.15)
    assert all(0.0 <= p <= 1.0 for p in insights.values_list("p_alive", flat=True))
    assert not insights.filter(clv_12m__lt=0).exists()
    assert run.summary["margin"] == 1.0
    assert run.summary["margin_from_costs"] is False
    assert set(insights.values_list("lifetime_value_run", flat=True)) == {run.pk}


def test_lifetime_value_uses_the_margin_the_order_lines_costs_give(merchant):
    # given: the same shop, with one order line showing a 40 % margin
    bgnbd_shop(merchant, customers=600, seed=3)
    order = Order.objects.for_merchant(merchant).first()
    OrderLineFactory(order=order, quantity=1, unit_price=Decimal("100.00"), unit_cost=Decimal("60.00"))

    # when
    run = lifetime_value_refresh(merchant=merchant, as_of=AS_OF)

    # then
    assert run.summary["margin"] == pytest.approx(0.4)
    assert run.summary["margin_from_costs"] is True


def test_lifetime_value_refuses_a_shop_with_too_few_repeat_buyers(merchant):
    # given: 40 customers, at most 4 repeat purchases each, so only 32 repeat buyers
    small_shop(merchant)

    # when
    with pytest.raises(InsufficientHistory):
        lifetime_value_refresh(merchant=merchant, as_of=AS_OF)

    # then
    run = InsightRun.objects.for_merchant(merchant).get()
    assert run.status == RunStatus.FAILED
    assert "lifetime value needs at least 50 repeat buyers" in run.error
    assert not CustomerInsight.objects.for_merchant(merchant).exists()


def test_a_fit_that_runs_to_its_search_bound_fails_the_run_instead_of_storing_noise(merchant, monkeypatch):
    # given: enough repeat buyers, but a BG/NBD fit the data do not identify
    bgnbd_shop(merchant, customers=300, seed=5)
    unidentified = clv.BgNbdParams(r=0.5, alpha=4.0, a=4e8, b=4e8, log_likelihood=-1.0, customers=300, at_bound=True)
    monkeypatch.setattr(clv, "bgnbd_fit", lambda *args: unidentified)

    # when
    with pytest.raises(InsufficientHistory, match="does not identify the BG/NBD model"):
        lifetime_value_refresh(merchant=merchant, as_of=AS_OF)

    # then
    assert InsightRun.objects.for_merchant(merchant).get().status == RunStatus.FAILED
    assert not CustomerInsight.objects.for_merchant(merchant).exists()


def test_a_second_run_of_a_kind_is_refused_while_one_is_under_way(merchant):
    # given a segments run under way
    from loyalty.models import InsightKind, InsightRun, RunStatus
    from loyalty.services.insights import InsightRunRunning, insight_run_start

    first = insight_run_start(merchant=merchant, kind=InsightKind.SEGMENTS, as_of=None)

    # when / then another segments run is refused, a churn run is not
    with pytest.raises(InsightRunRunning):
        insight_run_start(merchant=merchant, kind=InsightKind.SEGMENTS, as_of=None)
    other_kind = insight_run_start(merchant=merchant, kind=InsightKind.CHURN, as_of=None)
    assert other_kind.status == RunStatus.RUNNING

    # and once the first has finished, a new one starts
    InsightRun.objects.filter(pk=first.pk).update(status=RunStatus.SUCCEEDED)
    assert insight_run_start(merchant=merchant, kind=InsightKind.SEGMENTS, as_of=None).pk != first.pk
