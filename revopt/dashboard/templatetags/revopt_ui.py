"""Template helpers for merchant screens: inline SVG charts and number formatting."""

import math
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal

from django import template
from django.utils.safestring import SafeString, mark_safe

from revopt import charts

register = template.Library()

_CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$", "CHF": "CHF "}


def _money_text(value: float | Decimal | None, currency: str, *, decimals: int = 2) -> str:
    if value is None:
        return "—"
    symbol = _CURRENCY_SYMBOLS.get((currency or "").upper(), f"{currency} ")
    number = float(value)
    sign = "-" if number < 0 else ""
    return f"{sign}{symbol}{abs(number):,.{decimals}f}"


@register.filter
def money(value: float | Decimal | None, currency: str = "USD") -> str:
    return _money_text(value, currency)


@register.filter
def percent(value: float | None, decimals: int = 1) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.{decimals}f}%"


@register.filter
def count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _day_label(day: date) -> str:
    return f"{day.day} {day:%b}"


def _value_format(kind: str, currency: str) -> Callable[[float], str]:
    if kind == "money":
        # Axis ticks are round numbers: no cents on them.
        return lambda value: _money_text(value, currency, decimals=0 if float(value).is_integer() else 2)
    return lambda value: f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


@register.simple_tag
def daily_chart(
    points: Iterable[object],
    field: str,
    *,
    title: str,
    kind: str = "bar",
    value_kind: str = "count",
    currency: str = "USD",
    chart_id: str | None = None,
    height: int = 240,
    empty_message: str = "No data in these 30 days",
) -> SafeString:
    """A chart of one attribute of per-day points (objects with `day` and `field`), as wide as its box."""
    series = [(_day_label(point.day), getattr(point, field)) for point in points]
    if not any(value for _, value in series):
        # Thirty flat zeros read as "the chart is broken"; say plainly that nothing happened yet.
        series = []
    draw = charts.line_chart if kind == "line" else charts.bar_chart
    # charts.* escape every label and title themselves, so the markup is safe to place as is.
    return mark_safe(
        draw(
            series,
            title=title,
            height=height,
            value_format=_value_format(value_kind, currency),
            chart_id=chart_id,
            empty_message=empty_message,
        )
    )


@register.filter
def key_label(value: str) -> str:
    """`cart_abandonment_rate` -> `Cart abandonment rate`, for JSON keys shown as labels."""
    text = str(value).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


@register.filter
def stat(value: object) -> str:
    """A number from a JSON blob, rounded for reading; anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) < 1:
        return f"{value:.3f}".rstrip("0").rstrip(".") or "0"
    return f"{value:,.2f}"


# --- the revenue page -------------------------------------------------------------------------


def _kpi_format(value_kind: str, currency: str) -> Callable[[float], str]:
    if value_kind == "rate":
        return lambda value: f"{value * 100:.1f}%"
    return _value_format(value_kind, currency)


@register.filter
def kpi_value(value: float | None, arg: str) -> str:
    """A KPI as a merchant reads it: `{{ card.current|kpi_value:"money,USD" }}` or `"rate"`."""
    value_kind, _, currency = arg.partition(",")
    if value is None:
        return "—"
    if value_kind == "rate":
        return percent(value)
    return _money_text(value, currency or "USD")


@register.simple_tag
def kpi_chart(
    card: object,
    *,
    currency: str = "USD",
    kind: str = "line",
    chart_id: str | None = None,
    height: int = 160,
    title: str | None = None,
    empty_message: str = "Nothing to measure in this period yet",
) -> SafeString:
    """A KPI card's per-bucket series (a revenue.KpiCard) as a line or bar chart."""
    series = list(card.chart_series)
    draw = charts.bar_chart if kind == "bar" else charts.line_chart
    return mark_safe(
        draw(
            series,
            title=title or card.label,
            height=height,
            value_format=_kpi_format(card.value_kind, currency),
            chart_id=chart_id or f"kpi-{card.key}",
            empty_message=empty_message,
        )
    )


@register.simple_tag
def kpi_sparkline(card: object, *, currency: str = "USD") -> SafeString:
    return mark_safe(
        charts.sparkline(
            [value for _, value in card.series],
            title=f"{card.label} trend",
            value_format=_kpi_format(card.value_kind, currency),
            chart_id=f"spark-{card.key}",
        )
    )


@register.simple_tag
def lift_chart(lifts: Iterable[object], *, chart_id: str = "feature-lift") -> SafeString:
    """The measured features' relative lifts (revenue.FeatureLift) as a forest plot."""
    rows = [
        charts.IntervalRow(
            label=f"{lift.label} · {lift.metric_label}",
            estimate=lift.relative_lift,
            low=lift.low,
            high=lift.high,
            tone=lift.tone,
            key=lift.surface,
        )
        for lift in lifts
        if lift.measured
    ]
    return mark_safe(
        charts.interval_chart(
            rows,
            title="Measured lift of each revopt feature",
            chart_id=chart_id,
            empty_message="No feature measured yet: start an experiment",
        )
    )


@register.filter
def signed_percent(value: float | None) -> str:
    """A lift: "+4.2%", "−1.0%", "+∞" for an interval with too little data to close."""
    if value is None:
        return "—"
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    return f"{value * 100:+.1f}%"
