"""Reads for churn: the feature tables the model trains and scores on, the retention settings and list.

Every feature of a table as of `as_of` comes from rows dated before `as_of` (orders by `placed_at`, refunds
by `refunded_at`, sessions by `started_at`, events by `timestamp`), so a training table never sees its own
future. Four grouped queries (orders, sessions, events, labels), one row per customer each, joined in numpy.

Conventions:
- an order is any order not cancelled (a cancellation carries no date, so a cancelled order is left out of
  every table); a refund counts from its `refunded_at` on, and until then the order's total is revenue;
- the customers are those of the merchant with an order before `as_of`, neither erased nor merged away;
- `marketing_consent` is the customer's current flag (consent changes carry no date).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Min, Q, Sum
from django.utils import timezone

from events.models import Customer, Event, Order, OrderStatus, Session
from loyalty.churn import COLUMN_INDEX, FEATURES, FeatureTable
from loyalty.models import InsightKind, InsightRun, RetentionCandidate, RetentionSettings, RunStatus
from revopt.tenancy.models import Merchant

PRODUCT_VIEWED = "Product Viewed"
PRODUCT_ADDED = "Product Added"
DAY_SECONDS = 86_400.0
COLUMN = COLUMN_INDEX


def retention_settings_for(*, merchant: Merchant) -> RetentionSettings:
    """The merchant's churn and retention settings, created with the defaults on first use."""
    found = RetentionSettings.objects.for_merchant(merchant).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return RetentionSettings.objects.create(merchant=merchant)
    except IntegrityError:  # another request created it meanwhile
        return RetentionSettings.objects.for_merchant(merchant).get()


def churn_feature_table(*, merchant: Merchant, as_of: datetime, horizon_days: int, labelled: bool) -> FeatureTable:
    """One row per customer with an order before `as_of`, the FEATURES as of then; when `labelled`,
    `churned` = 1 for a customer with no order in (as_of, as_of + horizon] (a horizon that must be over)."""
    if timezone.is_naive(as_of):
        raise ValueError("as_of must be timezone-aware")
    horizon_end = as_of + timedelta(days=horizon_days)
    if labelled and horizon_end > timezone.now():
        raise ValueError(f"the horizon after {as_of.isoformat()} is not over yet: it cannot be labelled")
    eligible = Customer.objects.for_merchant(merchant).filter(erased_at__isnull=True, merged_into__isnull=True)
    orders = Order.objects.for_merchant(merchant).exclude(status=OrderStatus.CANCELLED).filter(customer__in=eligible)
    order_rows = list(
        orders.filter(placed_at__lt=as_of)
        .values("customer_id", "customer__marketing_consent")
        .annotate(
            orders=Count("pk"),
            first_order_at=Min("placed_at"),
            last_order_at=Max("placed_at"),
            order_total=Sum("total"),
            refunded_total=Sum("total", filter=Q(refunded_at__lt=as_of)),
            refunds=Count("pk", filter=Q(refunded_at__lt=as_of)),
            discounted=Count("pk", filter=Q(discount__gt=0) | ~Q(coupon="")),
            orders_last_90d=Count("pk", filter=Q(placed_at__gte=as_of - timedelta(days=90))),
        )
        .order_by("customer_id")
    )
    customer_ids = np.array([row["customer_id"] for row in order_rows], dtype=np.int64)
    values = np.zeros((len(order_rows), len(FEATURES)))
    if not order_rows:
        return FeatureTable(
            customer_id=customer_ids,
            values=values,
            as_of=as_of.isoformat(),
            churned=np.zeros(0, dtype=np.int64) if labelled else None,
        )
    _order_features(values, order_rows, as_of=as_of)
    buyers = orders.filter(placed_at__lt=as_of).values("customer_id")
    _session_features(values, customer_ids, merchant=merchant, buyers=buyers, as_of=as_of)
    _event_features(values, customer_ids, merchant=merchant, buyers=buyers, as_of=as_of)
    churned = None
    if labelled:
        returned = orders.filter(placed_at__gt=as_of, placed_at__lte=horizon_end, customer_id__in=buyers)
        returned_ids = np.array(sorted(set(returned.values_list("customer_id", flat=True))), dtype=np.int64)
        churned = (~np.isin(customer_ids, returned_ids)).astype(np.int64)
    return FeatureTable(customer_id=customer_ids, values=values, as_of=as_of.isoformat(), churned=churned)


def _days_before(as_of: datetime, moment: datetime) -> float:
    return (as_of - moment).total_seconds() / DAY_SECONDS


def _order_features(values: np.ndarray, rows: list[dict], *, as_of: datetime) -> None:
    for index, row in enumerate(rows):
        orders = row["orders"]
        revenue = float(row["order_total"] or 0) - float(row["refunded_total"] or 0)
        values[index, COLUMN["days_since_last_order"]] = _days_before(as_of, row["last_order_at"])
        values[index, COLUMN["days_since_first_order"]] = _days_before(as_of, row["first_order_at"])
        values[index, COLUMN["orders"]] = orders
        values[index, COLUMN["revenue"]] = revenue
        values[index, COLUMN["mean_order_value"]] = float(row["order_total"] or 0) / orders
        values[index, COLUMN["orders_last_90d"]] = row["orders_last_90d"]
        values[index, COLUMN["refunds"]] = row["refunds"]
        values[index, COLUMN["discount_share"]] = row["discounted"] / orders
        values[index, COLUMN["marketing_consent"]] = float(bool(row["customer__marketing_consent"]))


def _session_features(
    values: np.ndarray, customer_ids: np.ndarray, *, merchant: Merchant, buyers: object, as_of: datetime
) -> None:
    rows = (
        Session.objects.for_merchant(merchant)
        .filter(customer_id__in=buyers, started_at__lt=as_of)
        .values("customer_id")
        .annotate(
            last_30d=Count("pk", filter=Q(started_at__gte=as_of - timedelta(days=30))),
            last_90d=Count("pk", filter=Q(started_at__gte=as_of - timedelta(days=90))),
            last_session_at=Max("started_at"),
        )
        .values_list("customer_id", "last_30d", "last_90d", "last_session_at")
    )
    # A buyer without any recorded session (orders sent from a back office) counts as last seen at the first order.
    values[:, COLUMN["days_since_last_session"]] = values[:, COLUMN["days_since_first_order"]]
    position = {int(customer_id): index for index, customer_id in enumerate(customer_ids)}
    for customer_id, last_30d, last_90d, last_session_at in rows:
        index = position.get(customer_id)
        if index is None:
            continue
        values[index, COLUMN["sessions_last_30d"]] = last_30d
        values[index, COLUMN["sessions_last_90d"]] = last_90d
        values[index, COLUMN["days_since_last_session"]] = _days_before(as_of, last_session_at)


def _event_features(
    values: np.ndarray, customer_ids: np.ndarray, *, merchant: Merchant, buyers: object, as_of: datetime
) -> None:
    rows = (
        Event.objects.for_merchant(merchant)
        .filter(
            customer_id__in=buyers,
            name__in=[PRODUCT_VIEWED, PRODUCT_ADDED],
            timestamp__gte=as_of - timedelta(days=30),
            timestamp__lt=as_of,
        )
        .values("customer_id")
        .annotate(
            views=Count("pk", filter=Q(name=PRODUCT_VIEWED)),
            cart_adds=Count("pk", filter=Q(name=PRODUCT_ADDED)),
        )
        .values_list("customer_id", "views", "cart_adds")
    )
    position = {int(customer_id): index for index, customer_id in enumerate(customer_ids)}
    for customer_id, views, cart_adds in rows:
        index = position.get(customer_id)
        if index is None:
            continue
        values[index, COLUMN["product_views_last_30d"]] = views
        values[index, COLUMN["cart_adds_last_30d"]] = cart_adds


def latest_churn_run(*, merchant: Merchant) -> InsightRun | None:
    """The churn run in service: the latest that succeeded."""
    return (
        InsightRun.objects.for_merchant(merchant)
        .filter(kind=InsightKind.CHURN, status=RunStatus.SUCCEEDED)
        .order_by("-started_at", "-pk")
        .first()
    )


def retention_list(*, merchant: Merchant, limit: int = 100) -> list[RetentionCandidate]:
    """The latest succeeded churn run's candidates, offers first by expected value, then by churn risk;
    customers erased since that run are left out."""
    run = latest_churn_run(merchant=merchant)
    if run is None:
        return []
    return list(
        RetentionCandidate.objects.for_merchant(merchant)
        .filter(run=run, customer__erased_at__isnull=True)
        .select_related("customer")
        .order_by(F("expected_value").desc(), F("churn_probability").desc(), "pk")[: max(int(limit), 0)]
    )
