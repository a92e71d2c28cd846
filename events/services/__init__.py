"""Writes of the events app: event ingestion, identity stitching and the data-quality gate."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import median

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from catalog.models import Product
from revopt.tenancy.models import Merchant

from ..ingest import BatchResult, BatchTooLarge, EventResult, ingest_batch
from ..models import DataQualityReport, Event, OrderLine
from ..validation import PRODUCT_EVENTS

__all__ = [
    "BatchResult",
    "BatchTooLarge",
    "EventResult",
    "data_quality_report_create",
    "event_batch_ingest",
]

PASS, WARN, FAIL = "pass", "warn", "fail"
# Below this many events a day, a day-to-day drop says more about chance than about a broken tracker.
_VOLUME_DROP_MIN_DAILY_EVENTS = 50
_ORPHAN_SHARE_LIMIT = 0.01
_REPEATED_EVENT_SHARE_LIMIT = 0.01


def event_batch_ingest(
    *, merchant: Merchant, events: Sequence[object], received_at: datetime | None = None
) -> BatchResult:
    """Store a batch of Segment-style events; answer each one accepted, duplicate or rejected.

    Idempotent per merchant on messageId: re-sending a batch stores nothing twice. Order Completed
    materialises Order and OrderLine rows; userId + anonymousId stitches identities.
    """
    return ingest_batch(merchant=merchant, events=events, received_at=received_at)


def _check(name: str, label: str, status: str, value: float, limit: float, detail: str) -> dict:
    return {"name": name, "label": label, "status": status, "value": value, "limit": limit, "detail": detail}


def _share_check(name: str, label: str, offending: int, total: int, limit: float, noun: str) -> dict:
    share = offending / total if total else 0.0
    status = FAIL if share > limit else (WARN if offending else PASS)
    return _check(name, label, status, round(share, 6), limit, f"{offending} of {total} {noun}")


@transaction.atomic
def data_quality_report_create(*, merchant: Merchant, now: datetime | None = None) -> DataQualityReport:
    """Run the data-quality checks over the recent window and store the verdict.

    A failing report closes the training gate (`selectors.data_quality_gate_is_open`).
    """
    now = now or timezone.now()
    window_start = now - timedelta(days=settings.REVOPT["DATA_QUALITY_WINDOW_DAYS"])
    skew = settings.REVOPT["EVENT_FUTURE_SKEW"]
    events = Event.objects.for_merchant(merchant).filter(timestamp__gte=window_start)
    lines = OrderLine.objects.for_merchant(merchant).filter(order__placed_at__gte=window_start)

    totals = events.aggregate(
        total=Count("id"),
        without_identity=Count("id", filter=Q(anonymous_id="", customer__external_id__isnull=True)),
        non_positive_price=Count("id", filter=Q(price__lte=0)),
        in_future=Count("id", filter=Q(timestamp__gt=now + skew)),
        product_events=Count("id", filter=Q(name__in=PRODUCT_EVENTS)),
        orphan_product_events=Count("id", filter=Q(name__in=PRODUCT_EVENTS, product__isnull=True)),
    )
    line_totals = lines.aggregate(
        total=Count("id"),
        non_positive_price=Count("id", filter=Q(unit_price__lte=0)),
        orphans=Count("id", filter=Q(product__isnull=True)),
    )
    repeated = (
        events.values("customer_id", "name", "product_id", "timestamp")
        .annotate(copies=Count("id"))
        .filter(copies__gt=1)
        .aggregate(rows=Sum("copies"))
    )["rows"] or 0
    non_positive_products = Product.objects.for_merchant(merchant).filter(is_active=True, price__lte=0).count()

    total = totals["total"]
    checks = [
        _check(
            "has_events",
            "Events received in the window",
            PASS if total else FAIL,
            total,
            1,
            f"{total} events since {window_start:%Y-%m-%d}",
        ),
        _share_check("null_ids", "Events without a customer id", totals["without_identity"], total, 0.0, "events"),
        _share_check(
            "repeated_events",
            "Events repeated with new message ids",
            repeated,
            total,
            _REPEATED_EVENT_SHARE_LIMIT,
            "events share customer, type, product and timestamp with another",
        ),
        _share_check(
            "non_positive_prices",
            "Prices ≤ 0 (events, order lines, active products)",
            totals["non_positive_price"] + line_totals["non_positive_price"] + non_positive_products,
            total + line_totals["total"],
            0.0,
            "priced rows",
        ),
        _share_check("future_timestamps", "Events dated in the future", totals["in_future"], total, 0.0, "events"),
        _share_check(
            "orphan_products",
            "Product events and order lines without a catalog product",
            totals["orphan_product_events"] + line_totals["orphans"],
            totals["product_events"] + line_totals["total"],
            _ORPHAN_SHARE_LIMIT,
            "product rows",
        ),
        _volume_drop_check(events=events, now=now),
    ]
    return DataQualityReport.objects.create(
        merchant=merchant,
        window_start=window_start,
        window_end=now,
        passed=all(check["status"] != FAIL for check in checks),
        checks=checks,
    )


def _volume_drop_check(*, events, now: datetime) -> dict:
    """Yesterday's event count against the median of the seven days before it."""
    today = now.date()
    since = today - timedelta(days=8)
    per_day = dict(
        events.filter(timestamp__date__gte=since, timestamp__date__lt=today)
        .annotate(day=TruncDate("timestamp"))
        .values_list("day")
        .annotate(count=Count("id"))
        .values_list("day", "count")
    )
    yesterday = today - timedelta(days=1)
    baseline = median(per_day.get(today - timedelta(days=offset), 0) for offset in range(2, 9))
    latest = per_day.get(yesterday, 0)
    limit = settings.REVOPT["DATA_QUALITY_VOLUME_DROP"]
    if baseline < _VOLUME_DROP_MIN_DAILY_EVENTS:
        return _check(
            "volume_drop",
            "Sudden drop in daily events",
            PASS,
            0.0,
            limit,
            f"too little history to judge (median {baseline:.0f} events/day)",
        )
    drop = max(0.0, 1 - latest / baseline)
    return _check(
        "volume_drop",
        "Sudden drop in daily events",
        FAIL if drop > limit else PASS,
        round(drop, 4),
        limit,
        f"{latest} events on {yesterday:%Y-%m-%d} vs a 7-day median of {baseline:.0f}",
    )
