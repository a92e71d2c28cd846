"""Each customer's purchase history summarised as BG/NBD needs it (`loyalty.rfm.CustomerSummary`).

Conventions, shared by the segments, lifetime value and churn runs and by the CDNOW evaluation:
- an order counts when it was placed before `as_of` (and at or after `since`, a cohort's calibration window)
  and is completed: cancelled orders never happened and refunded orders were given back, so neither is a
  purchase nor revenue;
- an order's value is its `total`, as the merchant dashboard counts revenue;
- purchases are counted per calendar day in the merchant's time zone, as Fader, Hardie & Lee (2005) count
  CDNOW's transactions: several orders on one day are one purchase, their values summed;
- frequency = purchase days − 1 (repeat purchases); recency = first → last purchase day; age T = first purchase
  day → the last day observed (the day of the last instant before `as_of`), so a history ending at midnight
  after 1997-09-30 gives CDNOW's T = 38.86 weeks for a first purchase on 1997-01-01; monetary = mean value of the
  repeat purchase days (0 without any); days_since_last = exact time from the last order to `as_of`;
- erased customers (`Customer.erased_at`) and customers merged into another (`merged_into`, whose orders moved to
  the survivor) are left out.

One grouped query (customer × day) and numpy: no per-customer query, so 100k customers take seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, F, FloatField, Func, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Cast, TruncDate
from django.db.models.sql.compiler import SQLCompiler

from events.models import Customer, Order, OrderLine, OrderStatus
from loyalty.rfm import CustomerSummary
from pricing.selectors.demand import DayNumber, merchant_zone
from revopt.db import queryset_matrix
from revopt.tenancy.models import Merchant

SECONDS_PER_DAY = 86_400.0
# Beyond this many customers the query reads all the merchant's orders and numpy keeps those asked about (a
# long IN list costs more than it saves, and SQLite limits the number of parameters).
NAMED_CUSTOMERS_MAX = 500
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class CustomerHistory:
    """A summary plus the first and last order instants (seconds since the epoch, row-aligned; to the millisecond,
    as SQLite's julian days carry them)."""

    summary: CustomerSummary
    first_order_epoch: np.ndarray
    last_order_epoch: np.ndarray

    def first_order_at(self, index: int) -> datetime:
        return datetime.fromtimestamp(round(float(self.first_order_epoch[index]), 3), tz=UTC)

    def last_order_at(self, index: int) -> datetime:
        return datetime.fromtimestamp(round(float(self.last_order_epoch[index]), 3), tz=UTC)


class EpochSeconds(Func):
    """Seconds since 1970-01-01 UTC of a datetime column, as a float (numbers reach numpy without conversion)."""

    output_field = FloatField()

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any) -> tuple[str, list]:
        template = "CAST(EXTRACT(EPOCH FROM %(expressions)s) AS DOUBLE PRECISION)"
        return super().as_sql(compiler, connection, template=template, **extra_context)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list]:
        template = "((julianday(%(expressions)s) - 2440587.5) * 86400.0)"
        return super().as_sql(compiler, connection, template=template, **extra_context)


def purchase_orders(*, merchant: Merchant, before: datetime, since: datetime | None = None) -> QuerySet[Order]:
    """The merchant's orders that count as purchases (see the module's conventions)."""
    # A subquery of the few customers left out rather than a join with every customer: PostgreSQL hashes it
    # whatever its statistics say (a join planned on stale statistics after a bulk import looped per customer).
    left_out = (
        Customer.objects.for_merchant(merchant)
        .filter(Q(erased_at__isnull=False) | Q(merged_into__isnull=False))
        .values("pk")
    )
    orders = (
        Order.objects.for_merchant(merchant)
        .filter(status=OrderStatus.COMPLETED, placed_at__lt=before)
        .exclude(customer_id__in=left_out)
    )
    if since is not None:
        orders = orders.filter(placed_at__gte=since)
    return orders


def customer_history(
    *,
    merchant: Merchant,
    as_of: datetime,
    since: datetime | None = None,
    time_unit_days: float = 7.0,
    customer_ids: Sequence[int] | None = None,
) -> CustomerHistory:
    """Every customer with a purchase in [since, as_of), ordered by customer id."""
    zone = merchant_zone(merchant)
    orders = purchase_orders(merchant=merchant, before=as_of, since=since)
    named = customer_ids is not None and len(customer_ids) <= NAMED_CUSTOMERS_MAX
    if named:
        orders = orders.filter(customer_id__in=list(customer_ids))
    days = (
        orders.annotate(day=DayNumber(TruncDate("placed_at", tzinfo=zone)))
        .order_by()
        .values_list("customer_id", "day")
        .annotate(
            value=Cast(Sum("total"), FloatField()),
            orders=Count("pk"),
            first_epoch=Min(EpochSeconds("placed_at")),
            last_epoch=Max(EpochSeconds("placed_at")),
        )
    )
    rows = queryset_matrix(days, columns=6)
    if customer_ids is not None and not named:
        rows = rows[np.isin(rows[:, 0], np.asarray(customer_ids, dtype=float))]
    return _history(rows, as_of=as_of, zone_day=_last_day_observed(merchant=merchant, as_of=as_of), unit=time_unit_days)


def customer_summaries(
    *,
    merchant: Merchant,
    as_of: datetime,
    since: datetime | None = None,
    time_unit_days: float = 7.0,
    customer_ids: Sequence[int] | None = None,
) -> CustomerSummary:
    """One row per customer with a purchase in [since, as_of), in `time_unit_days` units (7: weeks)."""
    return customer_history(
        merchant=merchant, as_of=as_of, since=since, time_unit_days=time_unit_days, customer_ids=customer_ids
    ).summary


def purchases_between(
    *, merchant: Merchant, customer_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, int]:
    """Purchase days in [start, end) of each customer asked about (0 for those without): a holdout's actuals."""
    zone = merchant_zone(merchant)
    orders = purchase_orders(merchant=merchant, before=end, since=start)
    wanted = {int(customer_id) for customer_id in customer_ids}
    if len(wanted) <= NAMED_CUSTOMERS_MAX:
        orders = orders.filter(customer_id__in=wanted)
    counts = (
        orders.annotate(day=DayNumber(TruncDate("placed_at", tzinfo=zone)))
        .order_by()
        .values_list("customer_id")
        .annotate(days=Count("day", distinct=True))
    )
    result = dict.fromkeys(wanted, 0)
    for customer_id, purchase_days in counts:
        if customer_id in result:
            result[customer_id] = purchase_days
    return result


def gross_margin(*, merchant: Merchant, as_of: datetime, since: datetime | None = None) -> float | None:
    """1 − cost / revenue over the purchased order lines whose unit cost was known at sale (None: no cost known).

    A shop-wide rate: lines without a cost say nothing about margin, so they are left out rather than counted
    as free."""
    totals = (
        OrderLine.objects.for_merchant(merchant)
        .filter(order__in=purchase_orders(merchant=merchant, before=as_of, since=since), unit_cost__isnull=False)
        .aggregate(
            revenue=Sum(Cast(F("quantity") * F("unit_price"), FloatField())),
            cost=Sum(Cast(F("quantity") * F("unit_cost"), FloatField())),
        )
    )
    revenue, cost = totals["revenue"], totals["cost"]
    if not revenue or revenue <= 0 or cost is None:
        return None
    return float(min(max(1.0 - cost / revenue, 0.0), 1.0))


def _last_day_observed(*, merchant: Merchant, as_of: datetime) -> int:
    """Day number (days since 1970-01-01) of the last instant before `as_of`, in the merchant's time zone."""
    last_instant = (as_of - timedelta(microseconds=1)).astimezone(merchant_zone(merchant))
    return last_instant.date().toordinal() - _EPOCH_ORDINAL


def _history(rows: np.ndarray, *, as_of: datetime, zone_day: int, unit: float) -> CustomerHistory:
    if len(rows) == 0:
        empty = np.zeros(0)
        summary = CustomerSummary(
            customer_id=np.zeros(0, dtype=np.int64),
            frequency=empty,
            recency=empty,
            age=empty,
            monetary=empty,
            orders=np.zeros(0, dtype=np.int64),
            revenue=empty,
            days_since_last=empty,
            time_unit_days=unit,
        )
        return CustomerHistory(summary=summary, first_order_epoch=empty, last_order_epoch=empty)
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    customer, day, value, orders, first_epoch, last_epoch = rows.T
    starts = np.flatnonzero(np.r_[True, customer[1:] != customer[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    purchase_days = ends - starts
    revenue = np.add.reduceat(value, starts)
    frequency = (purchase_days - 1).astype(float)
    repeat_value = revenue - value[starts]
    monetary = np.divide(repeat_value, frequency, out=np.zeros_like(repeat_value), where=frequency > 0)
    last_order_epoch = np.maximum.reduceat(last_epoch, starts)
    summary = CustomerSummary(
        customer_id=customer[starts].astype(np.int64),
        frequency=frequency,
        recency=(day[ends - 1] - day[starts]) / unit,
        age=(zone_day - day[starts]) / unit,
        monetary=monetary,
        orders=np.add.reduceat(orders, starts).astype(np.int64),
        revenue=revenue,
        days_since_last=np.maximum(as_of.timestamp() - last_order_epoch, 0.0) / SECONDS_PER_DAY,
        time_unit_days=unit,
    )
    return CustomerHistory(
        summary=summary,
        first_order_epoch=np.minimum.reduceat(first_epoch, starts),
        last_order_epoch=last_order_epoch,
    )
