"""Reads of the insight runs and of the customer scores they wrote, for the screens and the support profile.

Scores in service are those written by the latest succeeded run of each kind; erased customers are never
listed, whatever rows remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Avg, Count, QuerySet, Sum

from events.models import Customer
from loyalty.models import CustomerInsight, InsightKind, InsightRun, RunStatus, Segment
from revopt.tenancy.models import Merchant

# The histogram's bins span 0 up to this quantile; the last bin also holds the few customers above it.
CLV_HISTOGRAM_QUANTILE = 0.99


@dataclass(frozen=True)
class SegmentRow:
    segment: str
    label: str
    customers: int
    share: float  # of the scored customers
    revenue: float
    revenue_share: float
    mean_clv: float | None  # over the segment's customers with a lifetime value (None: no lifetime value run)


@dataclass(frozen=True)
class ClvDistribution:
    """Histogram of clv_12m: counts[i] customers in [edges[i], edges[i + 1]), the last bin closed and holding
    everything above its lower edge (`clipped` customers lie beyond the drawn range)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    customers: int
    clipped: int
    mean: float
    median: float
    p90: float
    total: float
    top_decile_share: float  # of the total lifetime value held by the 10 % most valuable customers


def insight_run_in_service(*, merchant: Merchant, kind: str) -> InsightRun | None:
    """The latest succeeded run of that kind: its scores are the ones shown."""
    return (
        InsightRun.objects.for_merchant(merchant)
        .filter(kind=kind, status=RunStatus.SUCCEEDED)
        .order_by("-started_at", "-pk")
        .first()
    )


def insight_runs(*, merchant: Merchant, kind: str | None = None, limit: int = 20) -> list[InsightRun]:
    """The latest runs, newest first, failed ones included (the screens show why a run failed)."""
    runs = InsightRun.objects.for_merchant(merchant).defer("artifact").order_by("-started_at", "-pk")
    if kind is not None:
        runs = runs.filter(kind=kind)
    return list(runs[:limit])


def insight_for(*, merchant: Merchant, customer: Customer | int) -> CustomerInsight | None:
    customer_id = customer.pk if isinstance(customer, Customer) else int(customer)
    return _scored(merchant).filter(customer_id=customer_id).first()


def segment_summary(*, merchant: Merchant) -> list[SegmentRow]:
    """Every segment (in the order of `Segment`, empty ones included) of the segments run in service."""
    run = insight_run_in_service(merchant=merchant, kind=InsightKind.SEGMENTS)
    if run is None:
        return []
    grouped = (
        _scored(merchant)
        .filter(segments_run=run)
        .exclude(segment="")
        .values("segment")
        .annotate(customers=Count("pk"), revenue=Sum("revenue"), mean_clv=Avg("clv_12m"))
        .order_by()
    )
    by_segment = {row["segment"]: row for row in grouped}
    customers = sum(row["customers"] for row in by_segment.values())
    revenue = sum(float(row["revenue"] or 0) for row in by_segment.values())
    rows = []
    for segment in Segment:
        row = by_segment.get(segment.value, {})
        segment_customers = int(row.get("customers", 0))
        segment_revenue = float(row.get("revenue") or 0)
        mean_clv = row.get("mean_clv")
        rows.append(
            SegmentRow(
                segment=segment.value,
                label=str(segment.label),
                customers=segment_customers,
                share=segment_customers / customers if customers else 0.0,
                revenue=segment_revenue,
                revenue_share=segment_revenue / revenue if revenue else 0.0,
                mean_clv=float(mean_clv) if mean_clv is not None else None,
            )
        )
    return rows


def clv_distribution(*, merchant: Merchant, bins: int = 20) -> ClvDistribution | None:
    """The lifetime values of the run in service (None: no run, or no customer in it)."""
    if bins < 1:
        raise ValueError("bins must be >= 1")
    run = insight_run_in_service(merchant=merchant, kind=InsightKind.LIFETIME_VALUE)
    if run is None:
        return None
    values = np.array(
        list(
            _scored(merchant)
            .filter(lifetime_value_run=run, clv_12m__isnull=False)
            .values_list("clv_12m", flat=True)
            .order_by()
        ),
        dtype=float,
    )
    if values.size == 0:
        return None
    values = np.maximum(values, 0.0)
    top = float(np.quantile(values, CLV_HISTOGRAM_QUANTILE))
    if top <= 0:
        top = float(values.max()) or 1.0
    edges = np.linspace(0.0, top, bins + 1)
    counts, _ = np.histogram(np.minimum(values, top), bins=edges)
    total = float(values.sum())
    top_decile = np.sort(values)[::-1][: max(1, int(np.ceil(values.size / 10)))]
    return ClvDistribution(
        edges=tuple(float(edge) for edge in edges),
        counts=tuple(int(count) for count in counts),
        customers=int(values.size),
        clipped=int((values > top).sum()),
        mean=float(values.mean()),
        median=float(np.median(values)),
        p90=float(np.quantile(values, 0.9)),
        total=total,
        top_decile_share=float(top_decile.sum() / total) if total > 0 else 0.0,
    )


def _scored(merchant: Merchant) -> QuerySet[CustomerInsight]:
    return CustomerInsight.objects.for_merchant(merchant).filter(customer__erased_at__isnull=True)


# A run still RUNNING this long after it started lost its worker: it no longer blocks a new run of its kind.
RUNNING_STALE_AFTER = timedelta(hours=6)


def insight_run_running(*, merchant: Merchant, kind: str, now: datetime) -> InsightRun | None:
    """The merchant's run of `kind` under way now, if any (stalled ones excepted)."""
    return (
        InsightRun.objects.for_merchant(merchant)
        .filter(kind=kind, status=RunStatus.RUNNING, started_at__gte=now - RUNNING_STALE_AFTER)
        .order_by("-started_at", "-pk")
        .first()
    )
