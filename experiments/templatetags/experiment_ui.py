"""Template helpers of the experiment screens: forest plots, lift over time, allocation shares, and
the formatting of lifts, p-values and metric values."""

import math
from collections.abc import Sequence
from datetime import date

from django import template
from django.utils.safestring import SafeString, mark_safe

from experiments.models import AllocationChange, Variant
from experiments.results import DailyPoint
from revopt import charts
from revopt.charts import IntervalRow
from revopt.dashboard.templatetags.revopt_ui import _money_text

register = template.Library()


@register.filter
def signed_percent(value: float | None, decimals: int = 1) -> str:
    """0.042 -> "+4.2%" (a lift); None -> "—"."""
    if value is None:
        return "—"
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    return f"{value * 100:+.{decimals}f}%"


@register.filter
def p_value(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 0.001:
        return "< 0.001"
    return f"{value:.3f}"


@register.simple_tag
def metric_value(value: float | None, unit: str, currency: str = "USD") -> str:
    """A metric's value in its unit: a share as a percent, money with the shop's currency."""
    if value is None:
        return "—"
    if unit == "share":
        return f"{value * 100:.2f}%"
    if unit == "currency":
        return _money_text(value, currency)
    return f"{value:,.2f}"


@register.simple_tag
def forest_plot(rows: Sequence[IntervalRow], *, title: str, chart_id: str, interval_name: str) -> SafeString:
    # charts.* escape every label and title themselves.
    return mark_safe(
        charts.interval_chart(
            rows,
            title=title,
            chart_id=chart_id,
            interval_name=interval_name,
            empty_message="No metric has been analysed yet",
        )
    )


def _day_label(iso_day: str) -> str:
    day = date.fromisoformat(iso_day[:10])
    return f"{day.day} {day:%b}"


@register.simple_tag
def lift_over_time(daily: Sequence[DailyPoint], variant: str, *, title: str, chart_id: str) -> SafeString:
    points = [
        (_day_label(point.day), point.relative_lift, point.low, point.high)
        for point in sorted(daily, key=lambda point: point.day)
        if point.variant == variant
    ]
    return mark_safe(
        charts.band_chart(
            points,
            title=title,
            chart_id=chart_id,
            height=220,
            empty_message="The daily analysis has not run yet",
        )
    )


@register.simple_tag
def allocation_chart(changes: Sequence[AllocationChange], variants: Sequence[Variant], *, chart_id: str) -> SafeString:
    names = {variant.key: variant.name for variant in variants}
    order = [variant.key for variant in variants]
    columns = [
        (
            f"{change.effective_at.day} {change.effective_at:%b %H:%M}",
            [(names.get(key, key), float(change.weights.get(key, 0.0))) for key in order],
        )
        for change in changes
    ]
    return mark_safe(
        charts.share_chart(
            columns, title="Traffic weights after each change", chart_id=chart_id, empty_message="No allocation yet"
        )
    )


@register.filter
def weight_of(weights: dict, key: str) -> float:
    return float((weights or {}).get(key, 0.0))


@register.filter
def confidence_level(alpha: float | None) -> str:
    """0.05 -> "95%"."""
    if alpha is None:
        return ""
    return f"{(1 - alpha) * 100:g}%"


@register.filter
def share_of(part: int, total: int) -> str:
    """Units as a share of all units, precise enough to show a 50.5/49.5 split."""
    if not total:
        return "—"
    return f"{part / total * 100:.2f}%"


@register.filter
def lookup(mapping: dict, key: str) -> object:
    return (mapping or {}).get(key, key)


@register.filter
def short_label(label: str) -> str:
    """ "A/B test (fixed weights)" -> "A/B test": a choice's name without its explanation."""
    return str(label).split(" (", 1)[0]
