"""Reads behind the merchant home page.

Every query is scoped with `Model.objects.for_merchant(merchant)` and aggregated in the database
(TruncDate + Count/Sum), so the page costs a fixed number of queries however large the shop is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Max, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from catalog.models import Product
from events.models import Customer, DataQualityReport, Event, Order, OrderLine, Session
from revopt.simulator.models import SimulationRun
from revopt.tenancy.models import Merchant, Role
from revopt.tenancy.selectors import grants_platform_admin, membership_for_user, merchants_visible_to

WINDOW_DAYS = 30
TOP_PRODUCTS = 5
PRODUCT_VIEWED = "Product Viewed"


# --- who sees which merchant ------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardAccess:
    """The merchant a user's home page shows, or why it shows none.

    `merchant` is None for a platform admin who has not picked one yet (`choices` lists them) and for
    a user with no membership (`allowed` is False).
    """

    allowed: bool
    is_platform_admin: bool
    merchant: Merchant | None
    role: str | None
    choices: tuple[Merchant, ...] = ()


def dashboard_access_for(*, user: AbstractBaseUser, requested_slug: str | None) -> DashboardAccess:
    """Resolve the merchant for `user`; raises Merchant.DoesNotExist for an unknown requested slug."""
    membership = membership_for_user(user=user)
    if grants_platform_admin(user=user, membership=membership):
        if requested_slug:
            merchant = Merchant.objects.get(slug=requested_slug)
            return DashboardAccess(allowed=True, is_platform_admin=True, merchant=merchant, role=Role.PLATFORM_ADMIN)
        return DashboardAccess(
            allowed=True,
            is_platform_admin=True,
            merchant=None,
            role=Role.PLATFORM_ADMIN,
            choices=tuple(merchants_visible_to(user=user).order_by("name")),
        )
    if membership is None or membership.merchant is None:
        return DashboardAccess(allowed=False, is_platform_admin=False, merchant=None, role=None)
    # A shop's staff always see their own merchant; a ?merchant= for another shop is ignored, not obeyed.
    return DashboardAccess(allowed=True, is_platform_admin=False, merchant=membership.merchant, role=membership.role)


# --- the overview -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The days the "last 30 days" figures cover, in the merchant's time zone."""

    days: tuple[date, ...]
    start: datetime
    end: datetime
    # True when the shop has no recent events and the window was moved back to its latest data,
    # so a demo or a paused shop still shows a chart (the page says so).
    anchored_to_latest_data: bool

    @property
    def first_day(self) -> date:
        return self.days[0]

    @property
    def last_day(self) -> date:
        return self.days[-1]


@dataclass(frozen=True)
class Kpis:
    products: int
    active_products: int
    out_of_stock: int
    customers: int
    identified_customers: int
    new_customers: int
    sessions: int
    sessions_in_period: int
    events: int
    events_in_period: int
    orders: int
    orders_in_period: int
    revenue: Decimal
    revenue_in_period: Decimal
    converted_sessions: int
    converted_sessions_in_period: int

    @property
    def conversion_rate(self) -> float | None:
        return self.converted_sessions / self.sessions if self.sessions else None

    @property
    def conversion_rate_in_period(self) -> float | None:
        return self.converted_sessions_in_period / self.sessions_in_period if self.sessions_in_period else None

    @property
    def average_order_value(self) -> Decimal | None:
        return self.revenue / self.orders if self.orders else None

    @property
    def average_order_value_in_period(self) -> Decimal | None:
        return self.revenue_in_period / self.orders_in_period if self.orders_in_period else None


@dataclass(frozen=True)
class DailyPoint:
    day: date
    events: int
    orders: int
    revenue: Decimal


@dataclass(frozen=True)
class EventCount:
    name: str
    count: int
    share: float


@dataclass(frozen=True)
class TopProduct:
    product_id: int
    sku: str
    title: str
    count: int
    units: int = 0
    revenue: Decimal = Decimal("0")


@dataclass(frozen=True)
class FailingCheck:
    name: str
    status: str
    value: object
    limit: object
    detail: str


@dataclass(frozen=True)
class MerchantOverview:
    merchant: Merchant
    period: Period
    kpis: Kpis
    daily: tuple[DailyPoint, ...]
    event_mix: tuple[EventCount, ...]
    top_viewed: tuple[TopProduct, ...]
    top_ordered: tuple[TopProduct, ...]
    data_quality: DataQualityReport | None
    data_quality_problems: tuple[FailingCheck, ...]
    simulation: SimulationRun | None
    # The run's scalar counters (sessions, orders, conversion ...) in the order the simulator wrote them.
    simulation_stats: tuple[tuple[str, object], ...]


def _merchant_tz(merchant: Merchant) -> tzinfo:
    try:
        return ZoneInfo(merchant.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _period(*, merchant: Merchant, now: datetime, latest_event_at: datetime | None) -> Period:
    tz = _merchant_tz(merchant)
    last_day = now.astimezone(tz).date()
    anchored = False
    if latest_event_at is not None:
        latest_day = latest_event_at.astimezone(tz).date()
        if latest_day <= last_day - timedelta(days=WINDOW_DAYS):
            last_day, anchored = latest_day, True
    days = tuple(last_day - timedelta(days=offset) for offset in range(WINDOW_DAYS - 1, -1, -1))
    start = datetime.combine(days[0], time.min, tzinfo=tz)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=tz)
    return Period(days=days, start=start, end=end, anchored_to_latest_data=anchored)


def merchant_overview(*, merchant: Merchant, now: datetime | None = None) -> MerchantOverview:
    now = now or timezone.now()
    tz = _merchant_tz(merchant)

    event_totals = Event.objects.for_merchant(merchant).aggregate(total=Count("pk"), latest=Max("timestamp"))
    period = _period(merchant=merchant, now=now, latest_event_at=event_totals["latest"])
    events_by_day = dict(
        Event.objects.for_merchant(merchant)
        .filter(timestamp__gte=period.start, timestamp__lt=period.end)
        .annotate(day=TruncDate("timestamp", tzinfo=tz))
        .values("day")
        .annotate(count=Count("pk"))
        .values_list("day", "count")
    )
    orders_by_day = {
        row["day"]: row
        for row in Order.objects.for_merchant(merchant)
        .filter(placed_at__gte=period.start, placed_at__lt=period.end)
        .annotate(day=TruncDate("placed_at", tzinfo=tz))
        .values("day")
        .annotate(count=Count("pk"), revenue=Sum("total"))
        .order_by()
    }
    daily = tuple(
        DailyPoint(
            day=day,
            events=events_by_day.get(day, 0),
            orders=orders_by_day.get(day, {}).get("count", 0),
            revenue=orders_by_day.get(day, {}).get("revenue") or Decimal("0"),
        )
        for day in period.days
    )

    kpis = _kpis(merchant=merchant, period=period, events_total=event_totals["total"], daily=daily)
    data_quality = DataQualityReport.objects.for_merchant(merchant).order_by("-created_at").first()
    # Ground truth holds every simulated shopper's latent tastes: far too big to load for a status card.
    simulation = (
        SimulationRun.objects.for_merchant(merchant).defer("ground_truth", "config").order_by("-started_at").first()
    )
    return MerchantOverview(
        merchant=merchant,
        period=period,
        kpis=kpis,
        daily=daily,
        event_mix=_event_mix(merchant=merchant, period=period),
        top_viewed=_top_viewed(merchant=merchant, period=period),
        top_ordered=_top_ordered(merchant=merchant, period=period),
        data_quality=data_quality,
        data_quality_problems=_problems(data_quality),
        simulation=simulation,
        simulation_stats=_simulation_stats(simulation),
    )


def _kpis(*, merchant: Merchant, period: Period, events_total: int, daily: tuple[DailyPoint, ...]) -> Kpis:
    products = Product.objects.for_merchant(merchant).aggregate(
        total=Count("pk"),
        active=Count("pk", filter=Q(is_active=True)),
        out_of_stock=Count("pk", filter=Q(is_active=True, inventory__lte=0)),
    )
    # A customer merged into another by identity stitching is the same person: count them once.
    customers = (
        Customer.objects.for_merchant(merchant)
        .filter(merged_into__isnull=True)
        .aggregate(
            total=Count("pk"),
            identified=Count("pk", filter=Q(external_id__isnull=False)),
            new=Count("pk", filter=Q(created_at__gte=period.start, created_at__lt=period.end)),
        )
    )
    sessions = Session.objects.for_merchant(merchant).aggregate(
        total=Count("pk"),
        in_period=Count("pk", filter=Q(started_at__gte=period.start, started_at__lt=period.end)),
    )
    # Orders count as placed: a later refund does not undo the visit's conversion.
    orders = Order.objects.for_merchant(merchant).aggregate(
        placed=Count("pk"),
        revenue=Sum("total"),
        converted_sessions=Count("session", distinct=True),
        converted_sessions_in_period=Count(
            "session",
            distinct=True,
            filter=Q(session__started_at__gte=period.start, session__started_at__lt=period.end),
        ),
    )
    return Kpis(
        products=products["total"],
        active_products=products["active"],
        out_of_stock=products["out_of_stock"],
        customers=customers["total"],
        identified_customers=customers["identified"],
        new_customers=customers["new"],
        sessions=sessions["total"],
        sessions_in_period=sessions["in_period"],
        events=events_total,
        events_in_period=sum(point.events for point in daily),
        orders=orders["placed"],
        orders_in_period=sum(point.orders for point in daily),
        revenue=orders["revenue"] or Decimal("0"),
        revenue_in_period=sum((point.revenue for point in daily), Decimal("0")),
        converted_sessions=orders["converted_sessions"],
        converted_sessions_in_period=orders["converted_sessions_in_period"],
    )


def _event_mix(*, merchant: Merchant, period: Period) -> tuple[EventCount, ...]:
    rows = list(
        Event.objects.for_merchant(merchant)
        .filter(timestamp__gte=period.start, timestamp__lt=period.end)
        .values("name")
        .annotate(count=Count("pk"))
        .order_by("-count", "name")
    )
    top = rows[0]["count"] if rows else 0
    return tuple(EventCount(name=row["name"], count=row["count"], share=row["count"] / top) for row in rows)


def _top_viewed(*, merchant: Merchant, period: Period) -> tuple[TopProduct, ...]:
    rows = (
        Event.objects.for_merchant(merchant)
        .filter(name=PRODUCT_VIEWED, product__isnull=False, timestamp__gte=period.start, timestamp__lt=period.end)
        .values("product_id", "product__sku", "product__title")
        .annotate(views=Count("pk"))
        .order_by("-views", "product__title")[:TOP_PRODUCTS]
    )
    return tuple(
        TopProduct(
            product_id=row["product_id"], sku=row["product__sku"], title=row["product__title"], count=row["views"]
        )
        for row in rows
    )


def _top_ordered(*, merchant: Merchant, period: Period) -> tuple[TopProduct, ...]:
    line_revenue = ExpressionWrapper(
        F("unit_price") * F("quantity"), output_field=DecimalField(max_digits=14, decimal_places=2)
    )
    rows = (
        OrderLine.objects.for_merchant(merchant)
        .filter(product__isnull=False, order__placed_at__gte=period.start, order__placed_at__lt=period.end)
        .values("product_id", "product__sku", "product__title")
        .annotate(orders=Count("order", distinct=True), units=Sum("quantity"), revenue=Sum(line_revenue))
        .order_by("-orders", "-units", "product__title")[:TOP_PRODUCTS]
    )
    return tuple(
        TopProduct(
            product_id=row["product_id"],
            sku=row["product__sku"],
            title=row["product__title"],
            count=row["orders"],
            units=row["units"] or 0,
            revenue=Decimal(row["revenue"] or 0).quantize(Decimal("0.01")),
        )
        for row in rows
    )


def _problems(report: DataQualityReport | None) -> tuple[FailingCheck, ...]:
    if report is None:
        return ()
    problems = []
    for check in report.checks or []:
        if not isinstance(check, dict) or check.get("status") not in {"fail", "warn"}:
            continue
        problems.append(
            FailingCheck(
                name=str(check.get("name", "check")),
                status=str(check["status"]),
                value=check.get("value"),
                limit=check.get("limit"),
                detail=str(check.get("detail") or ""),
            )
        )
    # Failures first: they close the training gate, warnings do not.
    return tuple(sorted(problems, key=lambda problem: problem.status != "fail"))


def _simulation_stats(run: SimulationRun | None, limit: int = 6) -> tuple[tuple[str, object], ...]:
    if run is None or not isinstance(run.stats, dict):
        return ()
    scalars = [(key, value) for key, value in run.stats.items() if isinstance(value, int | float | str)]
    return tuple(scalars[:limit])
