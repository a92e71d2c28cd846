"""Reads of abandoned-cart recovery: the messages (for the admin and the funnel screen) and what recovery
brought in over a period, by day in the shop's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from events.models import Order, OrderStatus
from revopt.tenancy.models import Merchant

from ..models import RecoveryMessage, RecoveryStatus
from .screens import merchant_tz

MAX_PERIOD_DAYS = 366


def recovery_messages(*, merchant: Merchant, status: str | None = None) -> QuerySet[RecoveryMessage]:
    """The merchant's messages, newest scheduled first, with their customer, offer and recovered order; those of
    erased customers are left out."""
    messages = (
        RecoveryMessage.objects.for_merchant(merchant)
        .filter(customer__erased_at__isnull=True)
        .select_related("customer", "offer", "recovered_order")
    )
    if status is not None:
        messages = messages.filter(status=status)
    return messages.order_by("-scheduled_at", "-pk")


@dataclass(frozen=True)
class RecoveryDay:
    day: date
    scheduled: int
    sent: int
    cancelled: int
    recovered_orders: int
    recovered_revenue: Decimal


@dataclass(frozen=True)
class RecoverySummary:
    start: date
    end: date
    scheduled: int  # messages created (scheduled) in the period
    sent: int  # messages sent in the period
    cancelled: int  # of the messages scheduled in the period
    failed: int  # of the messages scheduled in the period
    carts_messaged: int  # carts with a message sent in the period
    carts_recovered: int  # carts whose message led to an order placed in the period
    recovered_orders: int
    recovered_revenue: Decimal  # totals of those orders (cancelled and refunded ones left out), each order once
    by_day: tuple[RecoveryDay, ...]

    @property
    def recovery_rate(self) -> float | None:
        return self.carts_recovered / self.carts_messaged if self.carts_messaged else None


def _counts_by_day(queryset: QuerySet, field: str, tz) -> dict[date, int]:
    rows = queryset.annotate(day=TruncDate(field, tzinfo=tz)).values("day").annotate(n=Count("pk")).order_by()
    return {row["day"]: row["n"] for row in rows}


def recovery_summary(*, merchant: Merchant, start: date, end: date) -> RecoverySummary:
    """Messages scheduled, sent and cancelled from `start` to `end` (both included, the shop's days), the carts
    recovered and the revenue of the orders the messages led to (by the day the order was placed)."""
    if end < start:
        raise ValueError("the period ends before it starts")
    end = min(end, start + timedelta(days=MAX_PERIOD_DAYS - 1))
    tz = merchant_tz(merchant)
    since = datetime.combine(start, time.min, tzinfo=tz)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz)
    messages = RecoveryMessage.objects.for_merchant(merchant)

    created = messages.filter(created_at__gte=since, created_at__lt=until)
    totals = created.aggregate(
        scheduled=Count("pk"),
        cancelled=Count("pk", filter=Q(status=RecoveryStatus.CANCELLED)),
        failed=Count("pk", filter=Q(status=RecoveryStatus.FAILED)),
    )
    sent = messages.filter(sent_at__gte=since, sent_at__lt=until)
    sent_totals = sent.aggregate(sent=Count("pk"), carts=Count("cart_id", distinct=True))
    scheduled_by_day = _counts_by_day(created, "created_at", tz)
    cancelled_by_day = _counts_by_day(created.filter(status=RecoveryStatus.CANCELLED), "created_at", tz)
    sent_by_day = _counts_by_day(sent, "sent_at", tz)

    recovered = messages.filter(
        recovered_order__placed_at__gte=since,
        recovered_order__placed_at__lt=until,
    ).exclude(recovered_order__status__in=[OrderStatus.CANCELLED, OrderStatus.REFUNDED])
    carts_recovered = recovered.values("cart_id").distinct().count()
    orders = (
        Order.objects.for_merchant(merchant)
        .filter(pk__in=recovered.values("recovered_order_id"))
        .annotate(day=TruncDate("placed_at", tzinfo=tz))
        .values("day")
        .annotate(orders=Count("pk"), revenue=Sum("total"))
        .order_by()
    )
    orders_by_day = {row["day"]: (row["orders"], row["revenue"] or Decimal("0")) for row in orders}

    by_day = tuple(
        RecoveryDay(
            day=day,
            scheduled=scheduled_by_day.get(day, 0),
            sent=sent_by_day.get(day, 0),
            cancelled=cancelled_by_day.get(day, 0),
            recovered_orders=orders_by_day.get(day, (0, Decimal("0")))[0],
            recovered_revenue=orders_by_day.get(day, (0, Decimal("0")))[1],
        )
        for day in (start + timedelta(days=offset) for offset in range((end - start).days + 1))
    )
    return RecoverySummary(
        start=start,
        end=end,
        scheduled=totals["scheduled"],
        sent=sent_totals["sent"],
        cancelled=totals["cancelled"],
        failed=totals["failed"],
        carts_messaged=sent_totals["carts"],
        carts_recovered=carts_recovered,
        recovered_orders=sum(day.recovered_orders for day in by_day),
        recovered_revenue=sum((day.recovered_revenue for day in by_day), Decimal("0")),
        by_day=by_day,
    )
