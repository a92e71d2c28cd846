"""Reads behind the revenue page, the merchant's home: RPAU (the north star) and the KPIs around it over
time, each against the previous period, and the lift each revopt feature is measured to bring.

Definitions (all in the shop's time zone, over a period of 30, 90 or 180 days; by day for 30 days, by
7-day week counted back from the period's last day otherwise, so the first week may be shorter):
- active users: distinct customers with a session started, an order placed, or an event outside any
  session in the bucket (events inside a session are already counted through their session; reading
  only session-less events keeps the query off the event table's bulk);
- revenue: totals of completed orders (cancelled and refunded ones do not count);
- RPAU: revenue / active users; margin per active user: the completed orders' merchandise after discounts
  (subtotal − discount: tax and shipping are passed through), less what redeemed offers cost beyond their
  discount (`incentive_cost`: free shipping's carrier fee, bonus points' value) and the lines' cost of goods
  (quantity × unit cost), / active users — the experiments engine's margin — shown only when every line has
  its cost;
- conversion: buyers (distinct customers with a completed order) / active users; AOV: revenue / orders;
- cart abandonment: sessions started in the bucket with a "Product Added" event and no order / such sessions;
- repeat rate: share of the bucket's buyers whose first (not cancelled) order is older than the bucket;
- CLV: `clv_12m_mean` of each succeeded lifetime-value InsightRun, by the date it scored customers as of.

Every query is aggregated in the database, bucketed by a CASE over the buckets' boundaries (exact
across daylight-saving changes): the page costs a fixed number of queries however large the shop is.
Aggregates include erased customers' orders: they are the shop's revenue, and no person is shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.core.cache import cache
from django.db import connections
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    DecimalField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.urls import reverse
from django.utils import timezone

from events.models import Event, Order, OrderLine, OrderStatus, Session
from experiments.metrics import METRICS
from experiments.models import AnalysisSnapshot, Experiment, ExperimentStatus, Surface
from experiments.results import ExperimentAnalysis, MetricResult
from experiments.selectors.screens import analysis_from_snapshot
from loyalty.models import InsightKind, InsightRun, RunStatus
from revopt.tenancy.models import Merchant

from .selectors import _merchant_tz

REVENUE_PAGE_CACHE_SECONDS = 300

PERIOD_CHOICES: tuple[int, ...] = (30, 90, 180)
DEFAULT_PERIOD_DAYS = 90
# Up to this many days the buckets are days, beyond it weeks.
DAILY_UP_TO_DAYS = 31
CART_EVENT = "Product Added"
# The surfaces whose lift the page reports, in the order it shows them.
LIFT_SURFACES: tuple[tuple[str, str], ...] = (
    (Surface.RECOMMENDATIONS, "Recommendations"),
    (Surface.PRICING, "Pricing"),
    (Surface.OFFERS, "Offers and incentives"),
)
ANALYSED_STATUSES = (ExperimentStatus.RUNNING, ExperimentStatus.STOPPED, ExperimentStatus.ROLLED_OUT)
CLV_RUNS_SHOWN = 60

_MONEY = DecimalField(max_digits=16, decimal_places=2)


def period_days_from(value: str | None) -> int:
    """The period a `?period=` asks for; anything but 30, 90 or 180 falls back to the default, so a
    mistyped link still opens the home page."""
    try:
        days = int(value or "")
    except ValueError:
        return DEFAULT_PERIOD_DAYS
    return days if days in PERIOD_CHOICES else DEFAULT_PERIOD_DAYS


# --- shapes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    first_day: date
    last_day: date
    start: datetime  # midnight of first_day in the shop's time zone
    end: datetime  # midnight after last_day (exclusive)

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True)
class Totals:
    """What happened in one bucket or one period; the KPIs are ratios of these counts (None: 0/0)."""

    active_users: int = 0
    buyers: int = 0
    repeat_buyers: int = 0
    orders: int = 0
    revenue: Decimal = Decimal("0")
    # Sales after discounts − incentive costs − cost of goods; None when some line lacks its cost.
    margin: Decimal | None = Decimal("0")
    carts: int = 0
    abandoned_carts: int = 0

    @property
    def rpau(self) -> float | None:
        return float(self.revenue) / self.active_users if self.active_users else None

    @property
    def margin_per_active_user(self) -> float | None:
        if self.margin is None or not self.active_users:
            return None
        return float(self.margin) / self.active_users

    @property
    def conversion(self) -> float | None:
        return self.buyers / self.active_users if self.active_users else None

    @property
    def aov(self) -> float | None:
        return float(self.revenue) / self.orders if self.orders else None

    @property
    def abandonment(self) -> float | None:
        return self.abandoned_carts / self.carts if self.carts else None

    @property
    def repeat_rate(self) -> float | None:
        return self.repeat_buyers / self.buyers if self.buyers else None


@dataclass(frozen=True)
class ClvPoint:
    day: date
    clv_12m_mean: float
    customers: int


@dataclass(frozen=True)
class KpiCard:
    key: str  # "rpau", "conversion" ... (data-kpi on the page)
    label: str
    value_kind: str  # "money" | "rate"
    current: float | None
    previous: float | None
    series: tuple[tuple[str, float | None], ...]  # per bucket, oldest first
    higher_is_better: bool = True
    hint: str = ""

    @property
    def delta(self) -> float | None:
        """Money moves as a relative change, rates as percentage points (a 2% → 3% conversion is +1 pp,
        not +50%)."""
        if self.current is None or self.previous is None:
            return None
        if self.value_kind == "rate":
            return self.current - self.previous
        return (self.current - self.previous) / self.previous if self.previous else None

    @property
    def delta_text(self) -> str:
        delta = self.delta
        if delta is None:
            return "no previous data"
        if self.value_kind == "rate":
            return f"{delta * 100:+.1f} pp"
        return f"{delta * 100:+.1f}%"

    @property
    def tone(self) -> str:
        """ "good", "bad" or "flat" (under 0.05 pp or 0.5 %), for the delta's colour."""
        delta = self.delta
        if delta is None or abs(delta) < (0.0005 if self.value_kind == "rate" else 0.005):
            return "flat"
        return "good" if (delta > 0) == self.higher_is_better else "bad"

    @property
    def chart_series(self) -> tuple[tuple[str, float], ...]:
        """The points with a value (an empty bucket has no rate to draw)."""
        return tuple((label, value) for label, value in self.series if value is not None)


@dataclass(frozen=True)
class FeatureLift:
    surface: str
    label: str
    experiment_name: str | None = None
    experiment_key: str | None = None
    status: str | None = None  # the experiment's status display
    metric_label: str | None = None
    variant_name: str | None = None
    relative_lift: float | None = None
    low: float | None = None
    high: float | None = None
    interval_name: str = "95% interval"
    significant: bool = False
    verdict_reason: str = ""
    url: str | None = None

    @property
    def measured(self) -> bool:
        return self.relative_lift is not None

    @property
    def tone(self) -> str:
        if not self.significant or self.relative_lift is None:
            return "neutral"
        return "positive" if self.relative_lift > 0 else "negative"


@dataclass(frozen=True)
class RevenuePage:
    merchant: Merchant
    period_days: int
    granularity: str  # "day" | "week"
    current: Bucket
    previous: Bucket
    # True when the shop has no events in the period and it was moved back to end on the latest data.
    anchored_to_latest_data: bool
    buckets: tuple[Bucket, ...]
    by_bucket: tuple[Totals, ...]
    totals: Totals
    previous_totals: Totals
    clv: tuple[ClvPoint, ...]
    clv_current: float | None
    clv_previous: float | None
    kpis: tuple[KpiCard, ...]
    lifts: tuple[FeatureLift, ...]
    computed_at: datetime | None = None

    @property
    def hero(self) -> KpiCard:
        return self.kpis[0]

    @property
    def small_multiples(self) -> tuple[KpiCard, ...]:
        return tuple(card for card in self.kpis[1:] if card.key != "margin_per_active_user")

    def kpi(self, key: str) -> KpiCard:
        return next(card for card in self.kpis if card.key == key)


# --- periods and buckets ----------------------------------------------------------------------


def _bucket(first_day: date, last_day: date, tz) -> Bucket:
    return Bucket(
        first_day=first_day,
        last_day=last_day,
        start=datetime.combine(first_day, time.min, tzinfo=tz),
        end=datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=tz),
    )


def _buckets(period: Bucket, tz) -> tuple[Bucket, ...]:
    step = 1 if period.days <= DAILY_UP_TO_DAYS else 7
    buckets = []
    last = period.last_day
    while last >= period.first_day:
        first = max(period.first_day, last - timedelta(days=step - 1))
        buckets.append(_bucket(first, last, tz))
        last = first - timedelta(days=1)
    return tuple(reversed(buckets))


def _bucket_case(field: str, buckets: Sequence[Bucket]) -> Case:
    return Case(
        *(
            When(**{f"{field}__gte": bucket.start, f"{field}__lt": bucket.end}, then=Value(index))
            for index, bucket in enumerate(buckets)
        ),
        default=Value(-1),
        output_field=IntegerField(),
    )


def _bucket_start_case(field: str, buckets: Sequence[Bucket]) -> Case:
    return Case(
        *(
            When(**{f"{field}__gte": bucket.start, f"{field}__lt": bucket.end}, then=Value(bucket.start))
            for bucket in buckets
        ),
        output_field=DateTimeField(),
    )


# --- the aggregates ---------------------------------------------------------------------------


def _in_range(queryset: QuerySet, field: str, buckets: Sequence[Bucket]) -> QuerySet:
    return queryset.filter(**{f"{field}__gte": buckets[0].start, f"{field}__lt": buckets[-1].end})


def _active_users(*, merchant: Merchant, buckets: Sequence[Bucket]) -> dict[int, int]:
    """Distinct customers per bucket over sessions, orders and session-less events, in one query: the
    three sources are a UNION ALL the database counts distinct over (the ORM cannot aggregate a union)."""
    sources = (
        (Session.objects.for_merchant(merchant), "started_at"),
        (Order.objects.for_merchant(merchant), "placed_at"),
        (Event.objects.for_merchant(merchant).filter(session__isnull=True), "timestamp"),
    )
    parts, params = [], []
    for queryset, field in sources:
        rows = (
            _in_range(queryset, field, buckets)
            .annotate(bucket=_bucket_case(field, buckets))
            .values_list("bucket", "customer_id")
            .order_by()
        )
        sql, query_params = rows.query.sql_with_params()
        parts.append(sql)
        params.extend(query_params)
    statement = (
        f"SELECT activity.bucket, COUNT(DISTINCT activity.customer_id) FROM ({' UNION ALL '.join(parts)}) "
        f"AS activity GROUP BY activity.bucket"
    )
    with connections[Session.objects.db].cursor() as cursor:
        cursor.execute(statement, params)
        return {int(bucket): int(count) for bucket, count in cursor.fetchall()}


def _orders(*, merchant: Merchant, buckets: Sequence[Bucket]) -> dict[int, dict]:
    """Completed orders per bucket, with the buyers whose first (not cancelled) order is older than the
    bucket. The first orders are a grouped derived table joined on the customer: a correlated subquery per
    order costs an index probe each (a second at 100k orders), the join a single hash join."""
    orders = (
        _in_range(Order.objects.for_merchant(merchant).filter(status=OrderStatus.COMPLETED), "placed_at", buckets)
        .annotate(bucket=_bucket_case("placed_at", buckets), bucket_start=_bucket_start_case("placed_at", buckets))
        .annotate(net_sales=ExpressionWrapper(F("subtotal") - F("discount") - F("incentive_cost"), output_field=_MONEY))
        .values_list("bucket", "bucket_start", "customer_id", "total", "net_sales")
        .order_by()
    )
    first_orders = (
        Order.objects.for_merchant(merchant)
        .exclude(status=OrderStatus.CANCELLED)
        .filter(placed_at__lt=buckets[-1].end)
        .values("customer_id")
        .annotate(first_order_at=Min("placed_at"))
        .values_list("customer_id", "first_order_at")
        .order_by()
    )
    orders_sql, orders_params = orders.query.sql_with_params()
    first_sql, first_params = first_orders.query.sql_with_params()
    statement = (
        "SELECT o.bucket, COUNT(*), SUM(o.total), SUM(o.net_sales), COUNT(DISTINCT o.customer_id), "
        "COUNT(DISTINCT CASE WHEN f.first_order_at < o.bucket_start THEN o.customer_id END) "
        f"FROM ({orders_sql}) AS o INNER JOIN ({first_sql}) AS f ON f.customer_id = o.customer_id GROUP BY o.bucket"
    )
    with connections[Order.objects.db].cursor() as cursor:
        cursor.execute(statement, (*orders_params, *first_params))
        return {
            int(bucket): {
                "orders": int(count),
                "revenue": Decimal(str(revenue)).quantize(Decimal("0.01")) if revenue is not None else None,
                "net_sales": Decimal(str(net_sales)) if net_sales is not None else Decimal("0"),
                "buyers": int(buyers),
                "repeat_buyers": int(repeat_buyers),
            }
            for bucket, count, revenue, net_sales, buyers, repeat_buyers in cursor.fetchall()
        }


def _goods_costs(*, merchant: Merchant, buckets: Sequence[Bucket]) -> dict[int, dict]:
    """The completed orders' cost of goods per bucket, and how many of their lines have no cost."""
    line_cost = ExpressionWrapper(F("quantity") * F("unit_cost"), output_field=_MONEY)
    rows = (
        _in_range(
            OrderLine.objects.for_merchant(merchant).filter(order__status=OrderStatus.COMPLETED),
            "order__placed_at",
            buckets,
        )
        .annotate(bucket=_bucket_case("order__placed_at", buckets))
        .values("bucket")
        .annotate(
            cost=Sum(line_cost, filter=Q(unit_cost__isnull=False)),
            uncosted=Count("pk", filter=Q(unit_cost__isnull=True)),
        )
        .order_by()
    )
    return {row["bucket"]: row for row in rows}


def _carts(*, merchant: Merchant, buckets: Sequence[Bucket]) -> dict[int, dict]:
    """Sessions with a cart per bucket (of the session's start) and how many of them placed an order.

    Read from the cart events joined to their session and its orders, not per session with EXISTS: the
    events are bounded by the period's start (a session's events come after it starts), so the event
    index does the narrowing and each session costs no probe of its own."""
    rows = (
        _in_range(
            Event.objects.for_merchant(merchant).filter(name=CART_EVENT, timestamp__gte=buckets[0].start),
            "session__started_at",
            buckets,
        )
        .annotate(bucket=_bucket_case("session__started_at", buckets))
        .values("bucket")
        .annotate(
            carts=Count("session", distinct=True),
            checked_out=Count("session", distinct=True, filter=Q(session__orders__isnull=False)),
        )
        .order_by()
    )
    return {row["bucket"]: {"carts": row["carts"], "abandoned": row["carts"] - row["checked_out"]} for row in rows}


def _totals(*, merchant: Merchant, buckets: Sequence[Bucket]) -> tuple[Totals, ...]:
    """One Totals per bucket, in four queries."""
    active = _active_users(merchant=merchant, buckets=buckets)
    orders = _orders(merchant=merchant, buckets=buckets)
    costs = _goods_costs(merchant=merchant, buckets=buckets)
    carts = _carts(merchant=merchant, buckets=buckets)
    totals = []
    for index in range(len(buckets)):
        order_row = orders.get(index, {})
        cost_row = costs.get(index, {})
        cart_row = carts.get(index, {})
        has_orders = bool(order_row.get("orders"))
        # Margin is known when every line has its cost and the orders have lines at all.
        if not has_orders:
            margin = Decimal("0")
        elif cost_row.get("uncosted", 1) or cost_row.get("cost") is None:
            margin = None
        else:
            margin = (order_row["net_sales"] - Decimal(cost_row["cost"])).quantize(Decimal("0.01"))
        totals.append(
            Totals(
                active_users=active.get(index, 0),
                buyers=order_row.get("buyers", 0),
                repeat_buyers=order_row.get("repeat_buyers", 0),
                orders=order_row.get("orders", 0),
                revenue=Decimal(order_row.get("revenue") or 0).quantize(Decimal("0.01")),
                margin=margin,
                carts=cart_row.get("carts", 0),
                abandoned_carts=cart_row.get("abandoned", 0),
            )
        )
    return tuple(totals)


def _clv_points(*, merchant: Merchant, before: datetime) -> tuple[ClvPoint, ...]:
    runs = (
        InsightRun.objects.for_merchant(merchant)
        .filter(kind=InsightKind.LIFETIME_VALUE, status=RunStatus.SUCCEEDED, as_of__lt=before)
        .order_by("-as_of", "-pk")
        .values_list("as_of", "summary", "customers")[:CLV_RUNS_SHOWN]
    )
    tz = _merchant_tz(merchant)
    points = []
    for as_of, summary, customers in runs:
        mean = summary.get("clv_12m_mean") if isinstance(summary, dict) else None
        if isinstance(mean, int | float) and math.isfinite(mean):
            points.append(ClvPoint(day=as_of.astimezone(tz).date(), clv_12m_mean=float(mean), customers=customers))
    return tuple(reversed(points))


def _latest_clv(points: Sequence[ClvPoint], *, on_or_before: date) -> float | None:
    eligible = [point for point in points if point.day <= on_or_before]
    return eligible[-1].clv_12m_mean if eligible else None


# --- feature lift -----------------------------------------------------------------------------


def _headline_metric(analysis: ExperimentAnalysis, experiment: Experiment) -> MetricResult | None:
    """The primary metric of the variant that matters: the winner, else the rolled-out one, else the
    first treatment."""
    primaries = [row for row in analysis.metrics if row.role == "primary" and math.isfinite(row.relative_lift)]
    if not primaries:
        return None
    rolled_out = experiment.rolled_out_variant.key if experiment.rolled_out_variant_id else None
    for key in (analysis.winner, rolled_out):
        chosen = next((row for row in primaries if row.variant == key), None)
        if key and chosen is not None:
            return chosen
    return primaries[0]


def feature_lifts(*, merchant: Merchant, merchant_query: str = "") -> tuple[FeatureLift, ...]:
    """Per surface, the latest analysed experiment (running or concluded) and its primary metric's
    relative lift with its interval; a surface without one is "not measured yet". Two queries."""
    latest = AnalysisSnapshot.objects.filter(experiment=OuterRef("pk")).order_by("-computed_at", "-pk")
    experiments = list(
        Experiment.objects.for_merchant(merchant)
        .filter(surface__in=[surface for surface, _ in LIFT_SURFACES], status__in=ANALYSED_STATUSES)
        .annotate(snapshot_id=Subquery(latest.values("pk")[:1]), snapshot_at=Subquery(latest.values("computed_at")[:1]))
        .filter(snapshot_id__isnull=False)
        .select_related("rolled_out_variant")
        .order_by("-snapshot_at", "-pk")
    )
    chosen: dict[str, Experiment] = {}
    for experiment in experiments:
        chosen.setdefault(experiment.surface, experiment)
    snapshots = {
        snapshot.pk: snapshot
        for snapshot in AnalysisSnapshot.objects.for_merchant(merchant).filter(
            pk__in=[experiment.snapshot_id for experiment in chosen.values()]
        )
    }
    lifts = []
    for surface, label in LIFT_SURFACES:
        experiment = chosen.get(surface)
        analysis = analysis_from_snapshot(snapshots.get(experiment.snapshot_id)) if experiment else None
        metric = _headline_metric(analysis, experiment) if analysis is not None else None
        if experiment is None or analysis is None or metric is None:
            lifts.append(FeatureLift(surface=surface, label=label))
            continue
        variant_names = {variant.key: variant.name for variant in analysis.variants}
        definition = METRICS.get(metric.metric)
        lifts.append(
            FeatureLift(
                surface=surface,
                label=label,
                experiment_name=experiment.name,
                experiment_key=experiment.key,
                status=experiment.get_status_display(),
                metric_label=definition.label if definition else metric.label,
                variant_name=variant_names.get(metric.variant, metric.variant),
                relative_lift=metric.relative_lift,
                low=metric.relative_low,
                high=metric.relative_high,
                interval_name=f"{1 - analysis.alpha:.0%} interval",
                significant=metric.significant,
                verdict_reason=analysis.verdict_reason,
                url=reverse("experiments:results", args=[experiment.key]) + merchant_query,
            )
        )
    return tuple(lifts)


# --- the page ---------------------------------------------------------------------------------


def _bucket_label(bucket: Bucket) -> str:
    return f"{bucket.first_day.day} {bucket.first_day:%b}"


def _cards(
    *,
    buckets: Sequence[Bucket],
    by_bucket: Sequence[Totals],
    totals: Totals,
    previous: Totals,
    clv: Sequence[ClvPoint],
    clv_current: float | None,
    clv_previous: float | None,
) -> tuple[KpiCard, ...]:
    labels = [_bucket_label(bucket) for bucket in buckets]

    def card(key: str, label: str, kind: str, read: Callable[[Totals], float | None], **extra: object) -> KpiCard:
        return KpiCard(
            key=key,
            label=label,
            value_kind=kind,
            current=read(totals),
            previous=read(previous),
            series=tuple((label_, read(bucket)) for label_, bucket in zip(labels, by_bucket, strict=True)),
            **extra,
        )

    cards = [
        card(
            "rpau", "Revenue per active user", "money", lambda t: t.rpau, hint="Completed-order revenue ÷ active users"
        ),
        card("conversion", "Conversion", "rate", lambda t: t.conversion, hint="Buyers ÷ active users"),
        card("aov", "Average order value", "money", lambda t: t.aov, hint="Revenue ÷ completed orders"),
        card(
            "abandonment",
            "Cart abandonment",
            "rate",
            lambda t: t.abandonment,
            higher_is_better=False,
            hint="Carts without an order ÷ carts",
        ),
        card("repeat_rate", "Repeat rate", "rate", lambda t: t.repeat_rate, hint="Buyers who had ordered before"),
        KpiCard(
            key="clv",
            label="Customer lifetime value",
            value_kind="money",
            current=clv_current,
            previous=clv_previous,
            series=tuple((f"{point.day.day} {point.day:%b}", point.clv_12m_mean) for point in clv),
            hint="Mean 12-month CLV of each lifetime-value run",
        ),
    ]
    if totals.margin is not None and totals.orders:
        cards.insert(
            1,
            card(
                "margin_per_active_user",
                "Margin per active user",
                "money",
                lambda t: t.margin_per_active_user,
                hint="Sales after discounts and offer costs, less cost of goods, ÷ active users",
            ),
        )
    return tuple(cards)


def revenue_page(
    *, merchant: Merchant, period_days: int = DEFAULT_PERIOD_DAYS, now: datetime | None = None, merchant_query: str = ""
) -> RevenuePage:
    """The revenue page for the `period_days` up to today (or up to the latest data, for a shop that has
    been quiet longer than the period), in 13 queries."""
    if period_days not in PERIOD_CHOICES:
        raise ValueError(f"period_days must be one of {PERIOD_CHOICES}, got {period_days!r}")
    tz = _merchant_tz(merchant)
    now = now or timezone.now()
    last_day = now.astimezone(tz).date()
    anchored = False
    latest = Event.objects.for_merchant(merchant).aggregate(latest=Max("timestamp"))["latest"]
    if latest is not None and latest.astimezone(tz).date() <= last_day - timedelta(days=period_days):
        last_day, anchored = latest.astimezone(tz).date(), True
    first_day = last_day - timedelta(days=period_days - 1)
    current = _bucket(first_day, last_day, tz)
    previous = _bucket(first_day - timedelta(days=period_days), first_day - timedelta(days=1), tz)
    buckets = _buckets(current, tz)

    by_bucket = _totals(merchant=merchant, buckets=buckets)
    previous_totals, totals = _totals(merchant=merchant, buckets=(previous, current))
    clv = _clv_points(merchant=merchant, before=current.end)
    clv_current = _latest_clv(clv, on_or_before=current.last_day)
    clv_previous = _latest_clv(clv, on_or_before=previous.last_day)
    shown_clv = tuple(point for point in clv if point.day >= previous.first_day) or clv[-1:]
    return RevenuePage(
        merchant=merchant,
        period_days=period_days,
        granularity="day" if buckets[0].days == 1 and buckets[-1].days == 1 else "week",
        current=current,
        previous=previous,
        anchored_to_latest_data=anchored,
        buckets=buckets,
        by_bucket=by_bucket,
        totals=totals,
        previous_totals=previous_totals,
        clv=shown_clv,
        clv_current=clv_current,
        clv_previous=clv_previous,
        kpis=_cards(
            buckets=buckets,
            by_bucket=by_bucket,
            totals=totals,
            previous=previous_totals,
            clv=shown_clv,
            clv_current=clv_current,
            clv_previous=clv_previous,
        ),
        lifts=feature_lifts(merchant=merchant, merchant_query=merchant_query),
        computed_at=now,
    )


def revenue_page_cached(*, merchant: Merchant, period_days: int, merchant_query: str = "") -> RevenuePage:
    """The revenue page as computed at most REVENUE_PAGE_CACHE_SECONDS ago: at 100k orders it takes 1–3 s on
    PostgreSQL, and it is the page every merchant opens first (the page says when it was computed)."""
    key = f"revopt:revenue-page:{merchant.pk}:{period_days}:{merchant_query}"
    page = cache.get(key)
    if page is None:
        page = revenue_page(merchant=merchant, period_days=period_days, merchant_query=merchant_query)
        cache.set(key, page, REVENUE_PAGE_CACHE_SECONDS)
    return page
