"""Template helpers for merchant screens: inline SVG charts and number formatting."""

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
