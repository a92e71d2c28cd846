"""The demand history of a merchant's products as a `DemandPanel`: one row per product and day on sale.

Days are calendar days in the merchant's time zone. A product is on sale on a day when shoppers viewed it
or bought it. Five grouped queries (views, order lines, sessions, competitor prices, price changes) and
numpy joins on (product, day) keys, so the cost does not grow with a loop over products.

Conventions (the storefront's event properties):
- price: the mean `price` of the day's "Product Viewed" events, else the mean unit price paid on the
  day's order lines, else the price in force at the end of the day (PriceChange history, Product.price);
- promoted: a "Product Viewed" event that day carries `promoted: true`, or a `compare_at_price` above
  the price it shows (shown as on sale);
- stocked out: a "Product Viewed" event that day carries `in_stock: false` or `inventory` ≤ 0, or the
  day's units reached the largest `inventory` reported that day (the shelf was emptied);
- traffic: the shop's sessions started that day; a day without any session row takes the median of
  the days that have some (1 when none has), so that demand always has a positive exposure.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from datetime import time as day_time
from typing import Any

import numpy as np
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    Avg,
    Case,
    Count,
    F,
    FloatField,
    Func,
    IntegerField,
    Max,
    Min,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncDate
from django.db.models.sql.compiler import SQLCompiler

from catalog.models import CompetitorPriceObservation, Product
from events.models import Customer, Event, OrderLine, OrderStatus, Session
from pricing.demand import DemandPanel
from pricing.models import PriceChange
from revopt.db import queryset_matrix
from revopt.tenancy.models import Merchant

PRODUCT_VIEWED = "Product Viewed"
# The lowest competitor price counts for this many days after it was observed.
COMPETITOR_PRICE_DAYS = 7
# A plain decimal number: the only text cast to a number (a malformed property must not fail the query).
_NUMBER = r"^[0-9]+(\.[0-9]+)?$"
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Beyond this many products the queries read the merchant's rows and the numpy joins keep those asked about
# (a long IN list costs more than it saves, and SQLite limits the number of parameters).
NAMED_PRODUCTS_MAX = 500


def merchant_zone(merchant: Merchant) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(merchant.timezone or "UTC")


def day_bounds(*, merchant: Merchant, start: date, end: date) -> tuple[datetime, datetime]:
    """The instants from the start of `start` to the end of `end` (inclusive days) in the merchant's zone."""
    zone = merchant_zone(merchant)
    return (
        datetime.combine(start, day_time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), day_time.min, tzinfo=zone),
    )


class DayNumber(Func):
    """Days since 1970-01-01 of a date expression, as an integer: millions of rows reach Python as numbers,
    not date objects."""

    output_field = IntegerField()

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any) -> tuple[str, list]:
        return super().as_sql(compiler, connection, template="(%(expressions)s - DATE '1970-01-01')", **extra_context)

    def as_sqlite(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, list]:
        template = "CAST(julianday(%(expressions)s) - 2440587.5 AS INTEGER)"
        return super().as_sql(compiler, connection, template=template, **extra_context)


def _day_number(field: str, zone: zoneinfo.ZoneInfo) -> DayNumber:
    return DayNumber(TruncDate(field, tzinfo=zone))


def _erased_customers(merchant: Merchant) -> QuerySet:
    """Erased customers (GDPR/CCPA), as a subquery: their views and purchases never fit a demand model again."""
    return Customer.objects.for_merchant(merchant).filter(erased_at__isnull=False).values("pk")


def _views_by_day(*, merchant: Merchant, start: date, end: date, product_ids: Sequence[int] | None) -> np.ndarray:
    """Columns: product id, day number, mean price shown, promoted (0/1), out of stock (0/1), most inventory
    reported (NaN when none)."""
    zone = merchant_zone(merchant)
    since, until = day_bounds(merchant=merchant, start=start, end=end)
    views = (
        Event.objects.for_merchant(merchant)
        .filter(name=PRODUCT_VIEWED, timestamp__gte=since, timestamp__lt=until, product_id__isnull=False)
        .exclude(customer_id__in=_erased_customers(merchant))
    )
    if product_ids is not None:
        views = views.filter(product_id__in=list(product_ids))
    queryset = (
        views.annotate(
            day=_day_number("timestamp", zone),
            compare_at_text=KeyTextTransform("compare_at_price", "properties"),
            inventory_text=KeyTextTransform("inventory", "properties"),
        )
        .annotate(
            compare_at=Case(
                When(compare_at_text__regex=_NUMBER, then=Cast("compare_at_text", FloatField())),
                default=Value(None),
                output_field=FloatField(),
            ),
            inventory_seen=Case(
                When(inventory_text__regex=r"^-?[0-9]+$", then=Cast("inventory_text", IntegerField())),
                default=Value(None),
                output_field=IntegerField(),
            ),
        )
        .values_list("product_id", "day")
        .annotate(
            mean_price=Avg(Cast("price", FloatField())),
            promoted=Max(
                Case(
                    When(properties__promoted=True, then=Value(1)),
                    When(compare_at__gt=Cast("price", FloatField()), then=Value(1)),
                    default=Value(0),
                    output_field=IntegerField(),
                )
            ),
            out_of_stock=Max(
                Case(
                    When(properties__in_stock=False, then=Value(1)),
                    When(inventory_seen__lte=0, then=Value(1)),
                    default=Value(0),
                    output_field=IntegerField(),
                )
            ),
            inventory=Max("inventory_seen"),
        )
        .order_by()
    )
    return queryset_matrix(queryset, columns=6)


def _sales_by_day(*, merchant: Merchant, start: date, end: date, product_ids: Sequence[int] | None) -> np.ndarray:
    """Columns: product id, day number, units, amount paid."""
    zone = merchant_zone(merchant)
    since, until = day_bounds(merchant=merchant, start=start, end=end)
    # Refunded orders keep their sale: the demand happened. Cancelled ones never shipped.
    lines = (
        OrderLine.objects.for_merchant(merchant)
        .filter(order__placed_at__gte=since, order__placed_at__lt=until, product_id__isnull=False)
        .exclude(order__status=OrderStatus.CANCELLED)
        .exclude(order__customer_id__in=_erased_customers(merchant))
    )
    if product_ids is not None:
        lines = lines.filter(product_id__in=list(product_ids))
    queryset = (
        lines.annotate(day=_day_number("order__placed_at", zone))
        .values_list("product_id", "day")
        .annotate(
            units=Sum("quantity"),
            paid=Sum(Cast("unit_price", FloatField()) * F("quantity"), output_field=FloatField()),
        )
        .order_by()
    )
    return queryset_matrix(queryset, columns=4)


def merchant_days(*, merchant: Merchant, start: date, end: date) -> dict[date, int]:
    """Sessions started per day (merchant's zone), only days that have any."""
    zone = merchant_zone(merchant)
    since, until = day_bounds(merchant=merchant, start=start, end=end)
    rows = (
        Session.objects.for_merchant(merchant)
        .filter(started_at__gte=since, started_at__lt=until)
        .annotate(day=_day_number("started_at", zone))
        .values_list("day")
        .annotate(sessions=Count("pk"))
        .order_by()
    )
    return {date.fromordinal(EPOCH_ORDINAL + day): sessions for day, sessions in rows}


def _lowest_competitor_by_day(*, merchant: Merchant, start: date, end: date, product_ids: np.ndarray) -> np.ndarray:
    """Columns: product id, day number, lowest competitor price."""
    zone = merchant_zone(merchant)
    since, until = day_bounds(merchant=merchant, start=start - timedelta(days=COMPETITOR_PRICE_DAYS), end=end)
    observations = CompetitorPriceObservation.objects.for_merchant(merchant).filter(
        observed_at__gte=since, observed_at__lt=until
    )
    if len(product_ids) <= NAMED_PRODUCTS_MAX:
        observations = observations.filter(product_id__in=product_ids.tolist())
    queryset = (
        observations.annotate(day=_day_number("observed_at", zone))
        .values_list("product_id", "day")
        .annotate(lowest=Min(Cast("price", FloatField())))
        .order_by()
    )
    return queryset_matrix(queryset, columns=3)


def _keys(products: np.ndarray, days: np.ndarray) -> np.ndarray:
    # Days are ordinals (< 2**20); products are ids. One int64 per (product, day), ordered by product then day.
    return products.astype(np.int64) * (1 << 22) + np.asarray(days).astype(np.int64)


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values of an already sorted array (np.unique sorts again)."""
    if not len(values):
        return values
    return values[np.r_[True, values[1:] != values[:-1]]]


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `keys` in `sorted_keys` and whether each was found."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    positions = np.searchsorted(sorted_keys, keys)
    clipped = np.minimum(positions, len(sorted_keys) - 1)
    return clipped, sorted_keys[clipped] == keys


def demand_panel(
    *, merchant: Merchant, start: date, end: date, product_ids: Sequence[int] | None = None
) -> DemandPanel:
    """The merchant's daily demand from `start` to `end` (inclusive, merchant's zone); see the module notes."""
    if product_ids is not None and not len(product_ids):
        return DemandPanel.empty()
    views = _views_by_day(merchant=merchant, start=start, end=end, product_ids=product_ids)
    sales = _sales_by_day(merchant=merchant, start=start, end=end, product_ids=product_ids)
    if not len(views) and not len(sales):
        return DemandPanel.empty()

    view_keys = _keys(views[:, 0], views[:, 1] + EPOCH_ORDINAL)
    sale_keys = _keys(sales[:, 0], sales[:, 1] + EPOCH_ORDINAL)
    keys = np.concatenate([view_keys, sale_keys])
    keys.sort()
    keys = _distinct_sorted(keys)
    product_of = keys >> 22
    day_of = keys & ((1 << 22) - 1)
    n = len(keys)

    # Every product in the panel belongs to the merchant (the queries are tenant-scoped); read its facts.
    panel_products = _distinct_sorted(product_of)
    products = Product.objects.for_merchant(merchant).values_list("pk", "category_id", "price").order_by("pk")
    if len(panel_products) <= NAMED_PRODUCTS_MAX:
        products = products.filter(pk__in=panel_products.tolist())
    product_rows = queryset_matrix(products, columns=3)
    known_products = product_rows[:, 0].astype(np.int64)
    category_by_product = np.nan_to_num(product_rows[:, 1], nan=-1).astype(np.int64)
    list_price_by_product = product_rows[:, 2]
    product_position, _ = _lookup(known_products, product_of)

    units = np.zeros(n)
    price = np.full(n, np.nan)
    promoted = np.zeros(n, dtype=bool)
    stocked_out = np.zeros(n, dtype=bool)
    inventory_seen = np.full(n, np.nan)

    # Each query groups by (product, day), so its keys are unique and all in `keys`.
    if len(views):
        at = np.searchsorted(keys, view_keys)
        price[at] = views[:, 2]
        promoted[at] = views[:, 3] > 0
        stocked_out[at] = views[:, 4] > 0
        inventory_seen[at] = views[:, 5]
    if len(sales):
        at = np.searchsorted(keys, sale_keys)
        sold, paid = sales[:, 2], sales[:, 3]
        units[at] = sold
        no_view_price = np.isnan(price[at])
        price[at[no_view_price]] = (paid / sold)[no_view_price]
    with np.errstate(invalid="ignore"):
        stocked_out |= units >= inventory_seen  # NaN (nothing reported) compares False

    missing = np.isnan(price)
    if missing.any():
        price[missing] = _price_in_force(
            merchant=merchant,
            products=product_of[missing],
            days=day_of[missing],
            list_price=list_price_by_product[product_position[missing]],
        )

    traffic = _traffic(merchant=merchant, start=start, end=end, days=day_of)
    competitor_ratio = price / _lowest_competitor_price(
        merchant=merchant, start=start, end=end, products=product_of, days=day_of
    )

    return DemandPanel(
        product_id=product_of.astype(np.int64),
        category_id=category_by_product[product_position],
        day=day_of.astype(np.int64),
        price=price,
        units=units,
        traffic=traffic,
        competitor_ratio=competitor_ratio,
        promoted=promoted,
        stocked_out=stocked_out,
    )


def _traffic(*, merchant: Merchant, start: date, end: date, days: np.ndarray) -> np.ndarray:
    sessions = merchant_days(merchant=merchant, start=start, end=end)
    fallback = float(np.median(list(sessions.values()))) if sessions else 1.0
    by_ordinal = {day.toordinal(): float(count) for day, count in sessions.items()}
    first = start.toordinal()
    per_day = np.array([by_ordinal.get(first + offset, fallback) for offset in range((end - start).days + 1)])
    return per_day[days - first]


def _lowest_competitor_price(
    *, merchant: Merchant, start: date, end: date, products: np.ndarray, days: np.ndarray
) -> np.ndarray:
    """Per row, the lowest competitor price observed that day or in the previous seven; NaN when none."""
    observed = _lowest_competitor_by_day(
        merchant=merchant, start=start, end=end, product_ids=_distinct_sorted(products)
    )
    lowest = np.full(len(products), np.inf)
    if len(observed):
        observed_keys = _keys(observed[:, 0], observed[:, 1] + EPOCH_ORDINAL)
        order = np.argsort(observed_keys)
        observed_keys, observed_lowest = observed_keys[order], observed[order, 2]
        row_keys = _keys(products, days)
        for back in range(COMPETITOR_PRICE_DAYS + 1):
            position, found = _lookup(observed_keys, row_keys - back)
            lowest = np.where(found, np.minimum(lowest, observed_lowest[position]), lowest)
    lowest[np.isinf(lowest)] = np.nan
    return lowest


def _price_in_force(
    *, merchant: Merchant, products: np.ndarray, days: np.ndarray, list_price: np.ndarray
) -> np.ndarray:
    """The live price at the end of each (product, day): the last PriceChange up to that day, the first
    change's from_price before any change, else the catalog price."""
    zone = merchant_zone(merchant)
    changes = PriceChange.objects.for_merchant(merchant)
    wanted = _distinct_sorted(products)
    if len(wanted) <= NAMED_PRODUCTS_MAX:
        changes = changes.filter(product_id__in=wanted.tolist())
    changes = queryset_matrix(
        changes.annotate(day=_day_number("created_at", zone))
        .values_list("product_id", "day", "from_price", "to_price")
        .order_by("product_id", "created_at", "pk"),
        columns=4,
    )
    result = list_price.astype(float).copy()
    if not len(changes):
        return result
    change_products = changes[:, 0].astype(np.int64)
    change_keys = _keys(change_products, changes[:, 1] + EPOCH_ORDINAL)
    from_price, to_price = changes[:, 2], changes[:, 3]
    row_keys = _keys(products, days)
    last = np.searchsorted(change_keys, row_keys, side="right") - 1
    has_change = (last >= 0) & (change_products[np.maximum(last, 0)] == products)
    result[has_change] = to_price[last[has_change]]
    first = np.searchsorted(change_products, products, side="left")
    before_first = ~has_change & (first < len(change_products))
    before_first &= change_products[np.minimum(first, len(change_products) - 1)] == products
    result[before_first] = from_price[first[before_first]]
    return result
