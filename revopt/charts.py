"""Server-side charts as inline SVG: no JavaScript, no network, readable by screen readers.

Pure string building with no Django imports, so it is tested on its own. Every label and title is
escaped here; callers may pass untrusted text (product titles, event names). Colours come from CSS
classes (app.css) with presentation-attribute fallbacks so a chart also renders standalone.

Layout: horizontal positions are percentages of the plot and vertical ones are pixels, with no
viewBox on the chart itself. The plot stretches to any width while text stays at its CSS size, so one
chart reads well on a phone and on a wide screen (a viewBox would shrink or blow up the labels).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

Number = int | float | Decimal
Series = Sequence[tuple[str, Number]]
ValueFormat = Callable[[float], str] | str

# Room for tick labels above and below the plot, in pixels.
_MARGIN_TOP = 12
_MARGIN_BOTTOM = 28
# Y-axis labels end this far left of the plot; they hang outside the SVG's box (overflow="visible"),
# into the margin app.css gives `.chart`, so every percentage inside the SVG is a share of the plot.
_Y_LABEL_GAP = 10
# About this many gridline intervals; the step is rounded, so the count varies from 3 to 6.
_TICK_COUNT = 5
# At most this many x-axis labels, so dates never overlap, even on a phone.
_MAX_X_LABELS = 5


def _attr(text: object) -> str:
    return escape(str(text), quote=True)


def _format(value: float, value_format: ValueFormat) -> str:
    if callable(value_format):
        return value_format(value)
    return value_format.format(value)


def _default_format(value: float) -> str:
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _chart_id(title: str, chart_id: str | None) -> str:
    if chart_id:
        return re.sub(r"[^a-zA-Z0-9_-]", "-", chart_id)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"chart-{slug or 'untitled'}"


def nice_step(raw_step: float) -> float:
    """The smallest 'round' gridline step (1, 2, 2.5, 5 × 10^k) at or above `raw_step`.

    2.5 is only used from 25 upwards, so counts never get fractional gridlines (no "37.5 events").
    """
    if raw_step <= 0:
        return 1.0
    exponent = math.floor(math.log10(raw_step))
    steps = (1, 2, 2.5, 5, 10) if exponent >= 1 else (1, 2, 5, 10)
    for step in steps:
        candidate = step * 10**exponent
        if candidate >= raw_step - 1e-12:
            return float(candidate)
    return float(10 ** (exponent + 1))


@dataclass(frozen=True)
class _Scale:
    """Maps a value to a y coordinate; the domain always includes zero so bars have a baseline."""

    low: float
    high: float
    step: float
    top: float
    bottom: float

    def y(self, value: float) -> float:
        span = self.high - self.low
        return self.bottom - (value - self.low) / span * (self.bottom - self.top)

    def ticks(self) -> list[float]:
        count = round((self.high - self.low) / self.step)
        return [self.low + self.step * index for index in range(count + 1)]


def _scale(values: list[float], top: float, bottom: float) -> _Scale:
    highest, lowest = max([0.0, *values]), min([0.0, *values])
    # Integer data (counts) keeps integer steps even when the largest value is small.
    step = nice_step((highest - lowest) / _TICK_COUNT)
    if all(float(value).is_integer() for value in values):
        step = max(step, 1.0)
    high = step * math.ceil(highest / step - 1e-9) if highest > 0 else 0.0
    low = -step * math.ceil(-lowest / step - 1e-9) if lowest < 0 else 0.0
    if high == low:
        high = step
    return _Scale(low=low, high=high, step=step, top=top, bottom=bottom)


def _label_every(count: int) -> int:
    return max(1, math.ceil(count / _MAX_X_LABELS))


def _open_svg(*, kind: str, title: str, description: str, width: int | str, height: int, chart_id: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-kind-{kind}" id="{_attr(chart_id)}" '
        f'width="{_attr(width)}" height="{height}" overflow="visible" role="img" '
        f'aria-labelledby="{_attr(chart_id)}-title {_attr(chart_id)}-desc">',
        f'<title id="{_attr(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{_attr(chart_id)}-desc">{escape(description)}</desc>',
    ]


def _empty_chart(*, kind: str, title: str, width: int | str, height: int, chart_id: str, message: str) -> str:
    parts = _open_svg(kind=kind, title=title, description=message, width=width, height=height, chart_id=chart_id)
    parts.append(
        f'<text class="chart-empty" x="50%" y="{height / 2:.1f}" text-anchor="middle" '
        f'dominant-baseline="middle" fill="#64748b">{escape(message)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _y_labels(scale: _Scale, value_format: ValueFormat) -> list[str]:
    parts = ['<g class="chart-y-axis">']
    for tick in scale.ticks():
        parts.append(
            f'<text class="chart-axis-label chart-y-label" x="{-_Y_LABEL_GAP}" y="{scale.y(tick):.1f}" '
            f'text-anchor="end" dominant-baseline="middle" fill="#64748b">{escape(_format(tick, value_format))}</text>'
        )
    parts.append("</g>")
    return parts


def _gridlines(scale: _Scale) -> list[str]:
    parts = ['<g class="chart-grid">']
    for tick in scale.ticks():
        y = scale.y(tick)
        parts.append(
            f'<line class="chart-gridline" x1="0" x2="100%" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#e2e8f0" stroke-width="1"/>'
        )
    parts.append("</g>")
    return parts


def _x_tick_labels(xscale: _LinearScale, *, y: float, x_format: ValueFormat) -> list[str]:
    """The labelled ticks of a continuous x axis; the edge labels lean inwards so they are not clipped."""
    parts = ['<g class="chart-x-axis">']
    for tick in xscale.ticks():
        x = xscale.x(tick)
        anchor = "start" if x < 3 else "end" if x > 97 else "middle"
        parts.append(
            f'<text class="chart-axis-label chart-x-label" x="{x:.3f}%" y="{y}" '
            f'text-anchor="{anchor}" fill="#64748b">{escape(_format(tick, x_format))}</text>'
        )
    parts.append("</g>")
    return parts


def _x_labels(labels: list[str], centres: list[float], *, y: float) -> list[str]:
    every = _label_every(len(labels))
    last = len(labels) - 1
    parts = ['<g class="chart-x-axis">']
    for index, (label, x) in enumerate(zip(labels, centres, strict=True)):
        # Always label the last point ("today" is the one a merchant looks for) and keep its neighbours clear.
        if index != last and (index % every or last - index < every):
            continue
        anchor = "end" if index == last and len(labels) > 1 else "middle"
        parts.append(
            f'<text class="chart-axis-label chart-x-label" x="{x:.2f}%" y="{y:.1f}" text-anchor="{anchor}" '
            f'fill="#64748b">{escape(label)}</text>'
        )
    parts.append("</g>")
    return parts


def _summary(series: list[tuple[str, float]], value_format: ValueFormat, noun: str) -> str:
    values = [value for _, value in series]
    peak_label, peak_value = max(series, key=lambda point: point[1])
    return (
        f"{len(series)} {noun} from {series[0][0]} to {series[-1][0]}; "
        f"total {_format(sum(values), value_format)}; highest {_format(peak_value, value_format)} on {peak_label}."
    )


def _clean(series: Series) -> list[tuple[str, float]]:
    cleaned = []
    for label, value in series:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"chart values must be finite, got {value!r} for {label!r}")
        cleaned.append((str(label), number))
    return cleaned


def _slot_centres(count: int) -> tuple[float, list[float]]:
    """Equal slots across the plot, in percent; bars and line points share them so charts of the same days align."""
    slot = 100 / count
    return slot, [slot * (index + 0.5) for index in range(count)]


def _frame(
    kind: str,
    series: Series,
    title: str,
    width: int | str,
    height: int,
    value_format: ValueFormat,
    chart_id: str | None,
    empty_message: str,
    *,
    noun: str,
):
    """The empty-state SVG, or (points, scale, opening parts with y labels and gridlines) to draw on."""
    points = _clean(series)
    chart_id = _chart_id(title, chart_id)
    if not points:
        return _empty_chart(
            kind=kind, title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    scale = _scale([value for _, value in points], top=_MARGIN_TOP, bottom=height - _MARGIN_BOTTOM)
    parts = _open_svg(
        kind=kind,
        title=title,
        description=_summary(points, value_format, noun),
        width=width,
        height=height,
        chart_id=chart_id,
    )
    parts += _y_labels(scale, value_format)
    parts += _gridlines(scale)
    return points, scale, parts


def bar_chart(
    series: Series,
    *,
    title: str,
    width: int | str = "100%",
    height: int = 240,
    value_format: ValueFormat = _default_format,
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """One bar per (label, value); a zero still gets its (flat) bar so bars map one-to-one to labels.

    `width` is the SVG's width attribute (pixels or a percentage); the plot stretches to it.
    """
    frame = _frame("bar", series, title, width, height, value_format, chart_id, empty_message, noun="bars")
    if isinstance(frame, str):
        return frame
    points, scale, parts = frame
    slot, centres = _slot_centres(len(points))
    bar_width = slot * 0.72
    zero_y = scale.y(0.0)
    parts.append('<g class="chart-bars">')
    for (label, value), centre in zip(points, centres, strict=True):
        y = scale.y(value)
        top, bar_height = min(y, zero_y), abs(zero_y - y)
        parts.append(
            f'<rect class="bar" x="{centre - bar_width / 2:.3f}%" y="{top:.1f}" width="{bar_width:.3f}%" '
            f'height="{bar_height:.1f}" rx="2" fill="#4f46e5" data-label="{_attr(label)}" data-value="{value:g}">'
            f"<title>{escape(label)}: {escape(_format(value, value_format))}</title></rect>"
        )
    parts.append("</g>")
    parts.append(
        f'<line class="chart-baseline" x1="0" x2="100%" y1="{zero_y:.1f}" y2="{zero_y:.1f}" '
        f'stroke="#94a3b8" stroke-width="1"/>'
    )
    parts += _x_labels([label for label, _ in points], centres, y=height - _MARGIN_BOTTOM + 18)
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    series: Series,
    *,
    title: str,
    width: int | str = "100%",
    height: int = 240,
    value_format: ValueFormat = _default_format,
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """A line through (label, value) points with a soft area under it and a hover target per point."""
    frame = _frame("line", series, title, width, height, value_format, chart_id, empty_message, noun="points")
    if isinstance(frame, str):
        return frame
    points, scale, parts = frame
    _, xs = _slot_centres(len(points))
    ys = [scale.y(value) for _, value in points]
    zero_y = scale.y(0.0)
    # Paths cannot use percentages: draw them in a 0-100 wide box stretched over the plot, with a stroke
    # that does not stretch along with it.
    path = " ".join(f"{'L' if index else 'M'}{x:.3f},{y:.1f}" for index, (x, y) in enumerate(zip(xs, ys, strict=True)))
    area = f"{path} L{xs[-1]:.3f},{zero_y:.1f} L{xs[0]:.3f},{zero_y:.1f} Z"
    parts.append(f'<svg viewBox="0 0 100 {height}" preserveAspectRatio="none" width="100%" height="{height}">')
    parts.append(f'<path class="chart-area" d="{area}" fill="#4f46e5" fill-opacity="0.08" stroke="none"/>')
    parts.append(
        f'<path class="chart-line" d="{path}" fill="none" stroke="#4f46e5" stroke-width="2" '
        f'stroke-linejoin="round" stroke-linecap="round" vector-effect="non-scaling-stroke"/>'
    )
    parts.append("</svg>")
    parts.append('<g class="chart-points">')
    for (label, value), x, y in zip(points, xs, ys, strict=True):
        parts.append(
            f'<circle class="point" cx="{x:.3f}%" cy="{y:.1f}" r="3" fill="#ffffff" stroke="#4f46e5" '
            f'stroke-width="2" data-label="{_attr(label)}" data-value="{value:g}">'
            f"<title>{escape(label)}: {escape(_format(value, value_format))}</title></circle>"
        )
    parts.append("</g>")
    parts += _x_labels([label for label, _ in points], xs, y=height - _MARGIN_BOTTOM + 18)
    parts.append("</svg>")
    return "".join(parts)


# --- experiment charts ------------------------------------------------------------------------
# Forest plots, lift-over-time bands and allocation shares. The value axis of a forest plot runs
# horizontally (percent of the plot) and its rows stack downwards (pixels), so one plot reads on a
# phone and on a wide screen like the charts above.

# A forest plot row: the label line, then the interval line below it.
_ROW_LABEL_Y = 14
_ROW_LINE_Y = 30
_ROW_HEIGHT = 46
# Series colours of multi-series charts (allocation shares); app.css colours .chart-series-N the same.
_SERIES_COLOURS = ("#64748b", "#4f46e5", "#0d9488", "#d97706", "#db2777", "#0284c7")
_TONE_COLOURS = {"positive": "#15803d", "negative": "#b91c1c", "neutral": "#64748b"}


def _signed_percent(value: float) -> str:
    if math.isinf(value):
        return "+∞" if value > 0 else "−∞"
    return f"{value * 100:+.1f}%"


def _signed_percent_tick(value: float) -> str:
    """Axis ticks are round: "+5%", "0%", "-2.5%"."""
    percent = round(value * 100, 6)
    if percent == 0:
        return "0%"
    return f"{percent:+g}%"


@dataclass(frozen=True)
class IntervalRow:
    """One line of a forest plot: an estimate and its interval, e.g. a variant's relative lift.

    `tone` colours the row ("positive", "negative" or "neutral": a significant win, a significant loss,
    nothing yet). `threshold` draws a dashed tick at that value inside the row (a guardrail's limit).
    """

    label: str
    estimate: float
    low: float
    high: float
    tone: str = "neutral"
    threshold: float | None = None
    key: str = ""  # a stable id for the row (data-row), e.g. "revenue_per_user:variant-1"


@dataclass(frozen=True)
class _HorizontalScale:
    low: float
    high: float
    step: float

    def x(self, value: float) -> float:
        """Percent of the plot width, clamped so an open-ended interval stops at the plot's edge."""
        position = (value - self.low) / (self.high - self.low) * 100
        return min(100.0, max(0.0, position))

    def ticks(self) -> list[float]:
        count = round((self.high - self.low) / self.step)
        return [self.low + self.step * index for index in range(count + 1)]


def _horizontal_scale(values: list[float]) -> _HorizontalScale:
    finite = [value for value in values if math.isfinite(value)]
    highest, lowest = max([0.0, *finite]), min([0.0, *finite])
    step = nice_step((highest - lowest) / _TICK_COUNT) if highest > lowest else nice_step(0.01)
    high = step * math.ceil(highest / step - 1e-9) if highest > 0 else 0.0
    low = -step * math.ceil(-lowest / step - 1e-9) if lowest < 0 else 0.0
    if high == low:
        high = step
    return _HorizontalScale(low=low, high=high, step=step)


def _interval_text(row: IntervalRow, value_format: ValueFormat) -> str:
    return (
        f"{_format(row.estimate, value_format)} ({_format(row.low, value_format)} to {_format(row.high, value_format)})"
    )


def interval_chart(
    rows: Sequence[IntervalRow],
    *,
    title: str,
    width: int | str = "100%",
    value_format: ValueFormat = _signed_percent,
    tick_format: ValueFormat = _signed_percent_tick,
    interval_name: str = "95% interval",
    chart_id: str | None = None,
    empty_message: str = "No results yet",
) -> str:
    """A forest plot: per row a point estimate with its interval, a line at zero, thresholds dashed.

    Row labels and the figures sit above each interval inside the plot (no side margin to run out
    of on a phone). An interval that reaches past the axis (infinite or huge) stops at the edge and
    says so with `data-open`.
    """
    chart_id = _chart_id(title, chart_id)
    for row in rows:
        if not math.isfinite(row.estimate):
            raise ValueError(f"the estimate of {row.label!r} must be finite, got {row.estimate!r}")
    height = _MARGIN_TOP + _ROW_HEIGHT * max(len(rows), 1) + _MARGIN_BOTTOM
    if not rows:
        return _empty_chart(
            kind="interval", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    values = [value for row in rows for value in (row.estimate, row.low, row.high)]
    values += [row.threshold for row in rows if row.threshold is not None]
    scale = _horizontal_scale(values)
    plot_bottom = height - _MARGIN_BOTTOM
    described = "; ".join(f"{row.label}: {_interval_text(row, value_format)}" for row in rows)
    parts = _open_svg(
        kind="interval",
        title=title,
        description=f"Estimates with their {interval_name}. {described}.",
        width=width,
        height=height,
        chart_id=chart_id,
    )
    parts.append('<g class="chart-grid">')
    for tick in scale.ticks():
        x = scale.x(tick)
        parts.append(
            f'<line class="chart-gridline" x1="{x:.3f}%" x2="{x:.3f}%" y1="{_MARGIN_TOP}" y2="{plot_bottom}" '
            f'stroke="#e2e8f0" stroke-width="1"/>'
        )
    parts.append("</g>")
    zero_x = scale.x(0.0)
    parts.append(
        f'<line class="chart-zero" x1="{zero_x:.3f}%" x2="{zero_x:.3f}%" y1="{_MARGIN_TOP - 4}" '
        f'y2="{plot_bottom}" stroke="#475569" stroke-width="1.5"/>'
    )
    parts.append('<g class="chart-intervals">')
    for index, row in enumerate(rows):
        tone = row.tone if row.tone in _TONE_COLOURS else "neutral"
        colour = _TONE_COLOURS[tone]
        top = _MARGIN_TOP + _ROW_HEIGHT * index
        line_y = top + _ROW_LINE_Y
        low_x, high_x, point_x = scale.x(row.low), scale.x(row.high), scale.x(row.estimate)
        open_ended = not (scale.low <= row.low and row.high <= scale.high)
        open_attr = ' data-open="true"' if open_ended else ""
        text = _interval_text(row, value_format)
        parts.append(
            f'<g class="interval interval-{tone}" data-row="{_attr(row.key or row.label)}" '
            f'data-estimate="{row.estimate:g}" data-low="{row.low:g}" data-high="{row.high:g}" data-tone="{tone}"'
            f"{open_attr}>"
        )
        parts.append(f"<title>{escape(row.label)}: {escape(text)}</title>")
        parts.append(
            f'<text class="interval-label" x="0" y="{top + _ROW_LABEL_Y}" fill="#334155">{escape(row.label)}</text>'
        )
        # The full figures, and the estimate alone for narrow screens (app.css shows one of them).
        parts.append(
            f'<text class="interval-value" x="100%" y="{top + _ROW_LABEL_Y}" text-anchor="end" '
            f'fill="{colour}">{escape(text)}</text>'
        )
        parts.append(
            f'<text class="interval-value-short" x="100%" y="{top + _ROW_LABEL_Y}" text-anchor="end" '
            f'fill="{colour}" display="none">{escape(_format(row.estimate, value_format))}</text>'
        )
        if row.threshold is not None:
            threshold_x = scale.x(row.threshold)
            parts.append(
                f'<line class="chart-threshold" x1="{threshold_x:.3f}%" x2="{threshold_x:.3f}%" '
                f'y1="{line_y - 9}" y2="{line_y + 9}" stroke="#b45309" stroke-width="2" stroke-dasharray="3 2" '
                f'data-threshold="{row.threshold:g}"><title>Limit {escape(_format(row.threshold, value_format))}'
                f"</title></line>"
            )
        parts.append(
            f'<line class="interval-line" x1="{low_x:.3f}%" x2="{high_x:.3f}%" y1="{line_y}" y2="{line_y}" '
            f'stroke="{colour}" stroke-width="3" stroke-linecap="round"/>'
        )
        parts.append(
            f'<circle class="interval-point" cx="{point_x:.3f}%" cy="{line_y}" r="5" fill="{colour}" '
            f'stroke="#ffffff" stroke-width="1.5"/>'
        )
        parts.append("</g>")
    parts.append("</g>")
    parts.append('<g class="chart-x-axis">')
    for tick in scale.ticks():
        anchor = "start" if tick == scale.low else "end" if tick == scale.high else "middle"
        parts.append(
            f'<text class="chart-axis-label chart-x-label" x="{scale.x(tick):.3f}%" y="{plot_bottom + 18}" '
            f'text-anchor="{anchor}" fill="#64748b">{escape(_format(tick, tick_format))}</text>'
        )
    parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def band_chart(
    points: Sequence[tuple[str, Number, Number, Number]],
    *,
    title: str,
    width: int | str = "100%",
    height: int = 240,
    value_format: ValueFormat = _signed_percent,
    tick_format: ValueFormat = _signed_percent_tick,
    interval_name: str = "95% interval",
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """A line through (label, value, low, high) points inside a shaded band, with a zero baseline:
    e.g. the cumulative lift of a variant per day with its interval.

    A bound may be infinite (an interval with too little data to close): the band then runs to the
    plot's edge on that day, and the axis is set by the finite values."""
    chart_id = _chart_id(title, chart_id)
    cleaned = []
    for label, value, low, high in points:
        numbers = (float(value), float(low), float(high))
        if any(math.isnan(number) for number in numbers) or not math.isfinite(numbers[0]):
            raise ValueError(f"chart values must be numbers with a finite value, got {numbers!r} for {label!r}")
        cleaned.append((str(label), *numbers))
    if not cleaned:
        return _empty_chart(
            kind="band", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    values = [number for _, value, low, high in cleaned for number in (value, low, high) if math.isfinite(number)]
    scale = _scale(values, top=_MARGIN_TOP, bottom=height - _MARGIN_BOTTOM)
    # Drawn positions: an infinite bound stops at the plot's edge (the text keeps saying ∞).
    edge = {math.inf: scale.high, -math.inf: scale.low}
    drawn = [(value, edge.get(low, low), edge.get(high, high)) for _, value, low, high in cleaned]
    first, last = cleaned[0], cleaned[-1]
    description = (
        f"{len(cleaned)} points from {first[0]} to {last[0]}, with their {interval_name}; "
        f"latest {_format(last[1], value_format)} ({_format(last[2], value_format)} to "
        f"{_format(last[3], value_format)})."
    )
    parts = _open_svg(kind="band", title=title, description=description, width=width, height=height, chart_id=chart_id)
    parts += _y_labels(scale, tick_format)
    parts += _gridlines(scale)
    _, xs = _slot_centres(len(cleaned))
    line = " ".join(
        f"{'L' if index else 'M'}{x:.3f},{scale.y(value):.1f}"
        for index, (x, (value, _, _)) in enumerate(zip(xs, drawn, strict=True))
    )
    upper = [f"{x:.3f},{scale.y(high):.1f}" for x, (_, _, high) in zip(xs, drawn, strict=True)]
    lower = [f"{x:.3f},{scale.y(low):.1f}" for x, (_, low, _) in zip(xs, drawn, strict=True)]
    band = "M" + " L".join(upper + lower[::-1]) + " Z"
    zero_y = scale.y(0.0)
    parts.append(f'<svg viewBox="0 0 100 {height}" preserveAspectRatio="none" width="100%" height="{height}">')
    parts.append(f'<path class="chart-band" d="{band}" fill="#4f46e5" fill-opacity="0.14" stroke="none"/>')
    parts.append(
        f'<path class="chart-line" d="{line}" fill="none" stroke="#4f46e5" stroke-width="2" '
        f'stroke-linejoin="round" stroke-linecap="round" vector-effect="non-scaling-stroke"/>'
    )
    parts.append("</svg>")
    parts.append(
        f'<line class="chart-zero" x1="0" x2="100%" y1="{zero_y:.1f}" y2="{zero_y:.1f}" '
        f'stroke="#475569" stroke-width="1.5"/>'
    )
    parts.append('<g class="chart-points">')
    for (label, value, low, high), x in zip(cleaned, xs, strict=True):
        parts.append(
            f'<circle class="point" cx="{x:.3f}%" cy="{scale.y(value):.1f}" r="3" fill="#ffffff" stroke="#4f46e5" '
            f'stroke-width="2" data-label="{_attr(label)}" data-value="{value:g}" data-low="{low:g}" '
            f'data-high="{high:g}"><title>{escape(label)}: {escape(_format(value, value_format))} '
            f"({escape(_format(low, value_format))} to {escape(_format(high, value_format))})</title></circle>"
        )
    parts.append("</g>")
    parts += _x_labels([label for label, *_ in cleaned], xs, y=height - _MARGIN_BOTTOM + 18)
    parts.append("</svg>")
    return "".join(parts)


def share_chart(
    columns: Sequence[tuple[str, Sequence[tuple[str, Number]]]],
    *,
    title: str,
    width: int | str = "100%",
    height: int = 220,
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """One stacked 100% bar per column of (series, share) pairs, e.g. the variant weights after each
    reallocation. Series keep their colour across columns (by order of first appearance)."""
    chart_id = _chart_id(title, chart_id)
    cleaned: list[tuple[str, list[tuple[str, float]]]] = []
    for label, shares in columns:
        numbers = [(str(name), float(share)) for name, share in shares]
        if any(not math.isfinite(share) or share < 0 for _, share in numbers):
            raise ValueError(f"shares must be finite and non-negative, got {numbers!r} for {label!r}")
        cleaned.append((str(label), numbers))
    if not cleaned:
        return _empty_chart(
            kind="share", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    names = list(dict.fromkeys(name for _, shares in cleaned for name, _ in shares))
    colour_of = {name: index % len(_SERIES_COLOURS) for index, name in enumerate(names)}
    last_label, last_shares = cleaned[-1]
    last_total = sum(share for _, share in last_shares) or 1.0
    description = (
        f"{len(cleaned)} columns from {cleaned[0][0]} to {last_label}; latest: "
        + ", ".join(f"{name} {share / last_total:.0%}" for name, share in last_shares)
        + "."
    )
    parts = _open_svg(kind="share", title=title, description=description, width=width, height=height, chart_id=chart_id)
    scale = _Scale(low=0.0, high=1.0, step=0.25, top=_MARGIN_TOP, bottom=height - _MARGIN_BOTTOM)
    parts += _y_labels(scale, "{:.0%}")
    parts += _gridlines(scale)
    slot, centres = _slot_centres(len(cleaned))
    bar_width = slot * 0.72
    parts.append('<g class="chart-bars">')
    for (label, shares), centre in zip(cleaned, centres, strict=True):
        total = sum(share for _, share in shares) or 1.0
        running = 0.0
        for name, share in shares:
            part = share / total
            top, bottom = scale.y(running + part), scale.y(running)
            running += part
            series = colour_of[name]
            parts.append(
                f'<rect class="share chart-series-{series}" x="{centre - bar_width / 2:.3f}%" y="{top:.1f}" '
                f'width="{bar_width:.3f}%" height="{bottom - top:.1f}" fill="{_SERIES_COLOURS[series]}" '
                f'data-label="{_attr(label)}" data-series="{_attr(name)}" data-value="{part:g}">'
                f"<title>{escape(label)}: {escape(name)} {part:.1%}</title></rect>"
            )
    parts.append("</g>")
    parts += _x_labels([label for label, _ in cleaned], centres, y=height - _MARGIN_BOTTOM + 18)
    parts.append("</svg>")
    return "".join(parts)


# --- pricing charts ---------------------------------------------------------------------------
# Curves over a numeric x axis (a price), and bars that go up and down from zero (price rises and cuts).

_MARKER_COLOURS = {"current": "#334155", "proposed": "#4f46e5", "competitor": "#d97706", "what-if": "#0d9488"}
# Marker labels: up to three rows above the plot; a label starts a new row when it is closer than this (percent).
_MARKER_ROWS = 3
_MARKER_ROW_HEIGHT = 13
_MARKER_LABEL_GAP = 13


@dataclass(frozen=True)
class CurveMarker:
    """A vertical line at one x value, labelled: the current price, the proposed one, a competitor's."""

    label: str
    x: float
    kind: str = "current"  # current | proposed | competitor | what-if (colours and data-marker)


@dataclass(frozen=True)
class _LinearScale:
    low: float
    high: float

    def x(self, value: float) -> float:
        """Percent of the plot width, clamped to the plot."""
        if self.high <= self.low:
            return 50.0
        return min(100.0, max(0.0, (value - self.low) / (self.high - self.low) * 100))

    def ticks(self) -> list[float]:
        if self.high <= self.low:
            return [self.low]
        step = nice_step((self.high - self.low) / _TICK_COUNT)
        first = math.ceil(self.low / step - 1e-9) * step
        ticks, tick = [], first
        while tick <= self.high + 1e-9:
            ticks.append(round(tick, 10))
            tick += step
        return ticks


def curve_chart(
    points: Sequence[tuple[Number, Number, Number, Number]],
    *,
    title: str,
    markers: Sequence[CurveMarker] = (),
    shade: tuple[Number, Number] | None = None,
    shade_label: str = "allowed range",
    width: int | str = "100%",
    height: int = 240,
    x_format: ValueFormat = _default_format,
    value_format: ValueFormat = _default_format,
    interval_name: str = "90% interval",
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """A line through (x, value, low, high) points over a numeric x axis, inside its shaded interval band,
    with labelled vertical markers and an optional shaded x range (e.g. the prices the guardrails allow).

    The SVG carries `data-x-min`/`data-x-max`, so a script can move a marker to a new x without redrawing."""
    chart_id = _chart_id(title, chart_id)
    cleaned = []
    for x, value, low, high in points:
        numbers = (float(x), float(value), float(low), float(high))
        if not all(math.isfinite(number) for number in numbers):
            raise ValueError(f"curve points must be finite numbers, got {numbers!r}")
        cleaned.append(numbers)
    cleaned.sort()
    if not cleaned:
        return _empty_chart(
            kind="curve", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    xscale = _LinearScale(low=cleaned[0][0], high=cleaned[-1][0])
    scale = _scale(
        [number for _, value, low, high in cleaned for number in (value, low, high)],
        top=_MARGIN_TOP + 16 + _MARKER_ROW_HEIGHT * (_MARKER_ROWS - 1),  # room for the marker labels
        bottom=height - _MARGIN_BOTTOM,
    )
    peak = max(cleaned, key=lambda point: point[1])
    description = (
        f"{len(cleaned)} points from {_format(cleaned[0][0], x_format)} to {_format(cleaned[-1][0], x_format)}, "
        f"with their {interval_name}; highest {_format(peak[1], value_format)} at {_format(peak[0], x_format)}."
    )
    if markers:
        description += " Marked: " + "; ".join(f"{m.label} {_format(m.x, x_format)}" for m in markers) + "."
    parts = _open_svg(kind="curve", title=title, description=description, width=width, height=height, chart_id=chart_id)
    parts[0] = parts[0].replace(
        ' role="img"', f' role="img" data-x-min="{xscale.low:g}" data-x-max="{xscale.high:g}"', 1
    )
    plot_top, plot_bottom = _MARGIN_TOP + 16 + _MARKER_ROW_HEIGHT * (_MARKER_ROWS - 1), height - _MARGIN_BOTTOM
    if shade is not None:
        shade_low, shade_high = xscale.x(float(shade[0])), xscale.x(float(shade[1]))
        shade_width = max(shade_high - shade_low, 0.4)
        shade_text = f"{_format(float(shade[0]), x_format)} to {_format(float(shade[1]), x_format)}"
        parts.append(
            f'<rect class="chart-shade" x="{shade_low:.3f}%" y="{plot_top}" width="{shade_width:.3f}%" '
            f'height="{plot_bottom - plot_top}" fill="#15803d" fill-opacity="0.07" data-low="{float(shade[0]):g}" '
            f'data-high="{float(shade[1]):g}"><title>{escape(shade_label)}: {escape(shade_text)}</title></rect>'
        )
    parts += _y_labels(scale, value_format)
    parts += _gridlines(scale)
    xs = [xscale.x(x) for x, *_ in cleaned]
    line = " ".join(
        f"{'L' if index else 'M'}{x:.3f},{scale.y(value):.1f}"
        for index, (x, (_, value, _, _)) in enumerate(zip(xs, cleaned, strict=True))
    )
    upper = [f"{x:.3f},{scale.y(high):.1f}" for x, (*_, high) in zip(xs, cleaned, strict=True)]
    lower = [f"{x:.3f},{scale.y(low):.1f}" for x, (_, _, low, _) in zip(xs, cleaned, strict=True)]
    parts.append(f'<svg viewBox="0 0 100 {height}" preserveAspectRatio="none" width="100%" height="{height}">')
    parts.append(
        f'<path class="chart-band" d="M{" L".join(upper + lower[::-1])} Z" fill="#4f46e5" fill-opacity="0.14" '
        f'stroke="none"/>'
    )
    parts.append(
        f'<path class="chart-line" d="{line}" fill="none" stroke="#4f46e5" stroke-width="2" '
        f'stroke-linejoin="round" stroke-linecap="round" vector-effect="non-scaling-stroke"/>'
    )
    parts.append("</svg>")
    zero_y = scale.y(0.0)
    parts.append(
        f'<line class="chart-baseline" x1="0" x2="100%" y1="{zero_y:.1f}" y2="{zero_y:.1f}" '
        f'stroke="#94a3b8" stroke-width="1"/>'
    )
    parts.append('<g class="chart-markers">')
    # Labels of markers close together go on a second row rather than over each other; a what-if marker
    # (moved by a script) carries no label, only its title.
    row_ends: list[float] = []
    for marker in sorted(markers, key=lambda marker: float(marker.x)):
        colour = _MARKER_COLOURS.get(marker.kind, "#334155")
        x = xscale.x(float(marker.x))
        label = ""
        if marker.kind != "what-if":
            row = next((index for index, end in enumerate(row_ends) if x - end >= _MARKER_LABEL_GAP), None)
            if row is None:
                row = min(len(row_ends), _MARKER_ROWS - 1)
                if row == len(row_ends):
                    row_ends.append(x)
            row_ends[row] = x
            anchor = "start" if x < 15 else "end" if x > 85 else "middle"
            label = (
                f'<text class="chart-marker-label" x="{x:.3f}%" y="{plot_top - 6 - _MARKER_ROW_HEIGHT * row}" '
                f'text-anchor="{anchor}" fill="{colour}">{escape(marker.label)}</text>'
            )
        dash = "none" if marker.kind in ("current", "what-if") else "4 3"
        parts.append(
            f'<g class="chart-marker chart-marker-{_attr(marker.kind)}" data-marker="{_attr(marker.kind)}" '
            f'data-x="{float(marker.x):g}"><title>{escape(marker.label)}: {escape(_format(marker.x, x_format))}</title>'
            f'<line x1="{x:.3f}%" x2="{x:.3f}%" y1="{plot_top - 2}" y2="{plot_bottom}" stroke="{colour}" '
            f'stroke-width="{2 if marker.kind == "what-if" else 1.5}" stroke-dasharray="{dash}"/>{label}</g>'
        )
    parts.append("</g>")
    parts += _x_tick_labels(xscale, y=plot_bottom + 18, x_format=x_format)
    parts.append("</svg>")
    return "".join(parts)


def updown_bar_chart(
    series: Sequence[tuple[str, int, int]],
    *,
    title: str,
    width: int | str = "100%",
    height: int = 220,
    up_name: str = "up",
    down_name: str = "down",
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """Per (label, up, down): a bar of `up` above zero and one of `down` below it, e.g. price rises and
    cuts per day. The axis reads both ways in plain counts."""
    chart_id = _chart_id(title, chart_id)
    cleaned = [(str(label), int(up), int(down)) for label, up, down in series]
    if any(up < 0 or down < 0 for _, up, down in cleaned):
        raise ValueError("up and down counts must be non-negative")
    if not cleaned or not any(up or down for _, up, down in cleaned):
        return _empty_chart(
            kind="updown", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    scale = _scale(
        [float(up) for _, up, _ in cleaned] + [-float(down) for _, _, down in cleaned],
        top=_MARGIN_TOP,
        bottom=height - _MARGIN_BOTTOM,
    )
    total_up, total_down = sum(up for _, up, _ in cleaned), sum(down for _, _, down in cleaned)
    description = (
        f"{len(cleaned)} bars from {cleaned[0][0]} to {cleaned[-1][0]}; {total_up:,} {up_name} and "
        f"{total_down:,} {down_name} in all."
    )
    parts = _open_svg(
        kind="updown", title=title, description=description, width=width, height=height, chart_id=chart_id
    )
    parts += _y_labels(scale, lambda value: f"{abs(value):,.0f}")
    parts += _gridlines(scale)
    slot, centres = _slot_centres(len(cleaned))
    bar_width = slot * 0.72
    zero_y = scale.y(0.0)
    parts.append('<g class="chart-bars">')
    for (label, up, down), centre in zip(cleaned, centres, strict=True):
        for count, direction, colour, name in ((up, "up", "#15803d", up_name), (down, "down", "#b91c1c", down_name)):
            if not count:
                continue
            end = scale.y(count if direction == "up" else -count)
            top, bar_height = min(end, zero_y), abs(zero_y - end)
            parts.append(
                f'<rect class="bar bar-{direction}" x="{centre - bar_width / 2:.3f}%" y="{top:.1f}" '
                f'width="{bar_width:.3f}%" height="{bar_height:.1f}" rx="2" fill="{colour}" '
                f'data-label="{_attr(label)}" data-{direction}="{count}"><title>{escape(label)}: {count:,} '
                f"{escape(name)}</title></rect>"
            )
    parts.append("</g>")
    parts.append(
        f'<line class="chart-baseline" x1="0" x2="100%" y1="{zero_y:.1f}" y2="{zero_y:.1f}" '
        f'stroke="#94a3b8" stroke-width="1"/>'
    )
    parts += _x_labels([label for label, *_ in cleaned], centres, y=height - _MARGIN_BOTTOM + 18)
    parts.append("</svg>")
    return "".join(parts)


# --- loyalty charts ---------------------------------------------------------------------------
# A cohort heatmap (rows of shares coloured by value, the figure in each cell), a histogram with a marked
# value (the median), and a reliability diagram (predicted against observed shares, the diagonal dashed).

_HEAT_ROW_HEIGHT = 26
_HEAT_HEADER = 22


def _heat_colour(intensity: float) -> str:
    """A faint grey (#f1f5f9, so an empty cell still shows) to the accent colour (#4f46e5) as intensity goes
    from 0 to 1."""
    intensity = min(1.0, max(0.0, intensity))
    red, green, blue = (
        round(start + (end - start) * intensity) for start, end in ((0xF1, 0x4F), (0xF5, 0x46), (0xF9, 0xE5))
    )
    return f"#{red:02x}{green:02x}{blue:02x}"


def heatmap_chart(
    rows: Sequence[tuple[str, Sequence[float | None]]],
    *,
    columns: Sequence[str],
    title: str,
    width: int | str = "100%",
    chart_id: str | None = None,
    value_format: ValueFormat = "{:.0%}",
    empty_message: str = "No data yet",
) -> str:
    """One row of cells per (label, values); a value of None (not observed yet) leaves its cell empty.

    A cell's colour is its value against the largest value of the chart (so low retention shares still
    show their differences), and each cell carries its figure."""
    chart_id = _chart_id(title, chart_id)
    cleaned: list[tuple[str, list[float | None]]] = []
    for label, values in rows:
        numbers = [None if value is None else float(value) for value in values]
        if any(value is not None and not math.isfinite(value) for value in numbers):
            raise ValueError(f"heatmap values must be finite, got {numbers!r} for {label!r}")
        if len(numbers) > len(columns):
            raise ValueError(f"row {label!r} has more values than there are columns")
        cleaned.append((str(label), numbers))
    height = _HEAT_HEADER + _HEAT_ROW_HEIGHT * max(len(cleaned), 1) + 4
    if not cleaned:
        return _empty_chart(
            kind="heatmap", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    observed = [value for _, values in cleaned for value in values if value is not None]
    peak = max(observed, default=0.0) or 1.0
    description = (
        f"{len(cleaned)} rows from {cleaned[0][0]} to {cleaned[-1][0]} over {len(columns)} columns; "
        f"{len(observed)} cells; highest {_format(max(observed, default=0.0), value_format)}."
    )
    parts = _open_svg(
        kind="heatmap", title=title, description=description, width=width, height=height, chart_id=chart_id
    )
    cell = 100 / len(columns)
    parts.append('<g class="chart-x-axis">')
    for index, name in enumerate(columns):
        parts.append(
            f'<text class="chart-axis-label heat-column" x="{cell * (index + 0.5):.3f}%" y="{_HEAT_HEADER - 8}" '
            f'text-anchor="middle" fill="#64748b">{escape(str(name))}</text>'
        )
    parts.append("</g>")
    parts.append('<g class="heat-rows">')
    for row_index, (label, values) in enumerate(cleaned):
        top = _HEAT_HEADER + _HEAT_ROW_HEIGHT * row_index
        parts.append(f'<g class="heat-row" data-row="{_attr(label)}">')
        parts.append(
            f'<text class="chart-axis-label chart-y-label" x="{-_Y_LABEL_GAP}" y="{top + _HEAT_ROW_HEIGHT / 2:.1f}" '
            f'text-anchor="end" dominant-baseline="middle" fill="#64748b">{escape(label)}</text>'
        )
        for index, value in enumerate(values):
            if value is None:
                continue
            intensity = value / peak
            text = _format(value, value_format)
            parts.append(
                f'<rect class="heat-cell" x="{cell * index + 0.15:.3f}%" y="{top + 1}" width="{cell - 0.3:.3f}%" '
                f'height="{_HEAT_ROW_HEIGHT - 2}" rx="2" fill="{_heat_colour(intensity)}" '
                f'data-row="{_attr(label)}" data-column="{_attr(columns[index])}" data-value="{value:g}">'
                f"<title>{escape(label)}, {escape(str(columns[index]))}: {escape(text)}</title></rect>"
            )
            dark = intensity > 0.55
            parts.append(
                f'<text class="heat-value{" heat-value-dark" if dark else ""}" x="{cell * (index + 0.5):.3f}%" '
                f'y="{top + _HEAT_ROW_HEIGHT / 2:.1f}" text-anchor="middle" dominant-baseline="middle" '
                f'fill="{"#ffffff" if dark else "#1e293b"}">{escape(text)}</text>'
            )
        parts.append("</g>")
    parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def histogram_chart(
    bins: Sequence[tuple[Number, Number, int]],
    *,
    title: str,
    marker: tuple[str, Number] | None = None,
    width: int | str = "100%",
    height: int = 220,
    x_format: ValueFormat = _default_format,
    open_ended: bool = False,
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """Adjacent bars of (low, high, count) over a numeric axis, with an optional labelled vertical marker
    (e.g. the median). `open_ended`: the last bin also holds everything above its upper edge."""
    chart_id = _chart_id(title, chart_id)
    cleaned = sorted((float(low), float(high), int(count)) for low, high, count in bins)
    if any(not (math.isfinite(low) and math.isfinite(high)) or count < 0 for low, high, count in cleaned):
        raise ValueError("histogram bins need finite edges and non-negative counts")
    if not cleaned or not any(count for *_, count in cleaned):
        return _empty_chart(
            kind="histogram", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    top = _MARGIN_TOP + (16 if marker else 0)
    scale = _scale([float(count) for *_, count in cleaned], top=top, bottom=height - _MARGIN_BOTTOM)
    xscale = _LinearScale(low=cleaned[0][0], high=cleaned[-1][1])
    total = sum(count for *_, count in cleaned)
    description = (
        f"{total:,} in {len(cleaned)} bins from {_format(cleaned[0][0], x_format)} to "
        f"{_format(cleaned[-1][1], x_format)}{' and above' if open_ended else ''}."
    )
    if marker:
        description += f" {marker[0]}: {_format(float(marker[1]), x_format)}."
    parts = _open_svg(
        kind="histogram", title=title, description=description, width=width, height=height, chart_id=chart_id
    )
    parts += _y_labels(scale, lambda value: f"{value:,.0f}")
    parts += _gridlines(scale)
    zero_y = scale.y(0.0)
    parts.append('<g class="chart-bars">')
    for index, (low, high, count) in enumerate(cleaned):
        left, right = xscale.x(low), xscale.x(high)
        y = scale.y(count)
        last = open_ended and index == len(cleaned) - 1
        span = f"{_format(low, x_format)} " + ("and above" if last else f"to {_format(high, x_format)}")
        parts.append(
            f'<rect class="bar" x="{left + 0.15:.3f}%" y="{y:.1f}" width="{max(right - left - 0.3, 0.1):.3f}%" '
            f'height="{zero_y - y:.1f}" fill="#4f46e5" data-low="{low:g}" data-high="{high:g}" data-value="{count}">'
            f"<title>{escape(span)}: {count:,}</title></rect>"
        )
    parts.append("</g>")
    parts.append(
        f'<line class="chart-baseline" x1="0" x2="100%" y1="{zero_y:.1f}" y2="{zero_y:.1f}" '
        f'stroke="#94a3b8" stroke-width="1"/>'
    )
    if marker:
        label, value = marker[0], float(marker[1])
        x = xscale.x(value)
        anchor = "start" if x < 15 else "end" if x > 85 else "middle"
        parts.append(
            f'<g class="chart-marker chart-marker-median" data-marker="{_attr(label)}" data-x="{value:g}">'
            f"<title>{escape(label)}: {escape(_format(value, x_format))}</title>"
            f'<line x1="{x:.3f}%" x2="{x:.3f}%" y1="{top - 2}" y2="{zero_y:.1f}" stroke="#d97706" stroke-width="2" '
            f'stroke-dasharray="4 3"/><text class="chart-marker-label" x="{x:.3f}%" y="{top - 6}" '
            f'text-anchor="{anchor}" fill="#b45309">{escape(label)} {escape(_format(value, x_format))}</text></g>'
        )
    parts += _x_tick_labels(xscale, y=height - _MARGIN_BOTTOM + 18, x_format=x_format)
    parts.append("</svg>")
    return "".join(parts)


def reliability_chart(
    points: Sequence[tuple[Number, Number, int]],
    *,
    title: str,
    width: int | str = "100%",
    height: int = 240,
    chart_id: str | None = None,
    empty_message: str = "No data yet",
    unit: str = "customers",
) -> str:
    """A reliability diagram: per (predicted, observed, n) group a point, both axes 0 to 1, with the
    diagonal of perfect calibration dashed. A point's radius grows with its group's size."""
    chart_id = _chart_id(title, chart_id)
    cleaned = [(float(predicted), float(observed), int(n)) for predicted, observed, n in points]
    if any(not (0 <= p <= 1 and 0 <= o <= 1) or n < 0 for p, o, n in cleaned):
        raise ValueError("reliability points need shares between 0 and 1 and non-negative sizes")
    if not cleaned:
        return _empty_chart(
            kind="reliability", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    gap = max(abs(p - o) for p, o, _ in cleaned)
    description = f"{len(cleaned)} groups of predicted against observed shares; largest gap {gap:.0%}."
    parts = _open_svg(
        kind="reliability", title=title, description=description, width=width, height=height, chart_id=chart_id
    )
    scale = _Scale(low=0.0, high=1.0, step=0.25, top=_MARGIN_TOP, bottom=height - _MARGIN_BOTTOM)
    parts += _y_labels(scale, "{:.0%}")
    parts += _gridlines(scale)
    parts.append(
        f'<line class="chart-diagonal" x1="0" x2="100%" y1="{scale.y(0):.1f}" y2="{scale.y(1):.1f}" '
        f'stroke="#94a3b8" stroke-width="1.5" stroke-dasharray="5 4"/>'
    )
    largest = max((n for *_, n in cleaned), default=1) or 1
    parts.append('<g class="chart-points">')
    for predicted, observed, n in cleaned:
        radius = 3 + 4 * math.sqrt(n / largest)
        parts.append(
            f'<circle class="point reliability-point" cx="{predicted * 100:.3f}%" cy="{scale.y(observed):.1f}" '
            f'r="{radius:.1f}" fill="#4f46e5" fill-opacity="0.75" stroke="#ffffff" data-predicted="{predicted:g}" '
            f'data-observed="{observed:g}" data-n="{n}"><title>predicted {predicted:.0%}, observed {observed:.0%} '
            f"({n:,} {escape(unit)})</title></circle>"
        )
    parts.append("</g>")
    parts.append('<g class="chart-x-axis">')
    for tick in scale.ticks():
        anchor = "start" if tick == 0 else "end" if tick == 1 else "middle"
        parts.append(
            f'<text class="chart-axis-label chart-x-label" x="{tick * 100:.3f}%" y="{height - _MARGIN_BOTTOM + 18}" '
            f'text-anchor="{anchor}" fill="#64748b">{tick:.0%}</text>'
        )
    parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


# --- sparklines -------------------------------------------------------------------------------


def sparkline(
    values: Sequence[Number | None],
    *,
    title: str,
    height: int = 36,
    value_format: ValueFormat = _default_format,
    chart_id: str | None = None,
) -> str:
    """A tiny trend line for a KPI card, without axes; it stretches to its box. A None (a bucket with nothing
    to measure) leaves a gap; fewer than two values draw nothing but the accessible title."""
    chart_id = _chart_id(title, chart_id)
    numbers = [None if value is None else float(value) for value in values]
    for number in numbers:
        if number is not None and not math.isfinite(number):
            raise ValueError(f"sparkline values must be finite, got {number!r}")
    present = [number for number in numbers if number is not None]
    description = (
        f"{len(present)} points; latest {_format(present[-1], value_format)}, "
        f"lowest {_format(min(present), value_format)}, highest {_format(max(present), value_format)}."
        if present
        else "No data yet."
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-sparkline" id="{_attr(chart_id)}" '
        f'width="100%" height="{height}" viewBox="0 0 100 {height}" preserveAspectRatio="none" role="img" '
        f'aria-labelledby="{_attr(chart_id)}-title {_attr(chart_id)}-desc">',
        f'<title id="{_attr(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{_attr(chart_id)}-desc">{escape(description)}</desc>',
    ]
    if len(present) >= 2:
        low, high = min(present), max(present)
        spread = high - low or 1.0
        pad = 3.0
        step = 100 / (len(numbers) - 1)

        def y(number: float) -> float:
            return height - pad - (number - low) / spread * (height - 2 * pad)

        path, pen_down = [], False
        for index, number in enumerate(numbers):
            if number is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{index * step:.3f},{y(number):.1f}")
            pen_down = True
        parts.append(
            f'<path class="sparkline-line" d="{" ".join(path)}" fill="none" stroke="#4f46e5" stroke-width="1.75" '
            f'stroke-linejoin="round" stroke-linecap="round" vector-effect="non-scaling-stroke" '
            f'data-last="{present[-1]:g}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


# --- funnel charts ----------------------------------------------------------------------------
# A funnel of steps (rows stacked downwards, bars as a share of the first step, the drop-off between
# steps spelled out) and lines of several series over the same days, with gaps where a day has no value.

_FUNNEL_ROW = 66
_FUNNEL_LABEL_Y = 14
_FUNNEL_BAR_Y = 22
_FUNNEL_BAR_HEIGHT = 24
_FUNNEL_DROP_Y = 60


def funnel_chart(
    steps: Series,
    *,
    title: str,
    width: int | str = "100%",
    value_format: ValueFormat = _default_format,
    base_noun: str = "sessions",
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """One bar per (step, count), as wide as its share of the first step, with the count and share above it and
    the number lost before the next step ("↓ 3 dropped, 30%") below it."""
    chart_id = _chart_id(title, chart_id)
    points = _clean(steps)
    if any(value < 0 for _, value in points):
        raise ValueError("funnel counts must be non-negative")
    height = 4 + _FUNNEL_ROW * max(len(points) - 1, 0) + _FUNNEL_BAR_Y + _FUNNEL_BAR_HEIGHT + 4
    if not points or points[0][1] <= 0:
        return _empty_chart(
            kind="funnel", title=title, width=width, height=max(height, 120), chart_id=chart_id, message=empty_message
        )
    first = points[0][1]
    description = "; ".join(
        f"{label}: {_format(value, value_format)} ({value / first:.0%} of {base_noun})" for label, value in points
    )
    parts = _open_svg(
        kind="funnel", title=title, description=description + ".", width=width, height=height, chart_id=chart_id
    )
    parts.append('<g class="funnel-steps">')
    for index, (label, value) in enumerate(points):
        top = 4 + _FUNNEL_ROW * index
        share = value / first
        figure = _format(value, value_format) if index == 0 else f"{_format(value, value_format)} · {share:.1%}"
        parts.append(
            f'<g class="funnel-step" data-step="{_attr(label)}" data-value="{value:g}" data-share="{share:.6g}">'
        )
        parts.append(
            f'<text class="funnel-label" x="0" y="{top + _FUNNEL_LABEL_Y}" fill="#334155">{escape(label)}</text>'
        )
        parts.append(
            f'<text class="funnel-value" x="100%" y="{top + _FUNNEL_LABEL_Y}" text-anchor="end" '
            f'fill="#0f172a">{escape(figure)}</text>'
        )
        parts.append(
            f'<rect class="funnel-track" x="0" y="{top + _FUNNEL_BAR_Y}" width="100%" height="{_FUNNEL_BAR_HEIGHT}" '
            f'rx="4" fill="#f1f5f9"/>'
        )
        parts.append(
            f'<rect class="bar funnel-bar" x="0" y="{top + _FUNNEL_BAR_Y}" width="{max(share * 100, 0.4):.3f}%" '
            f'height="{_FUNNEL_BAR_HEIGHT}" rx="4" fill="#4f46e5" fill-opacity="{1 - 0.12 * min(index, 5):.2f}">'
            f"<title>{escape(label)}: {escape(_format(value, value_format))} ({share:.1%} of {escape(base_noun)})"
            f"</title></rect>"
        )
        if index + 1 < len(points):
            lost = value - points[index + 1][1]
            lost_share = lost / value if value else 0.0
            parts.append(
                f'<text class="funnel-drop" x="8" y="{top + _FUNNEL_DROP_Y}" fill="#b91c1c" data-drop="{lost:g}">'
                f"↓ {escape(_format(lost, value_format))} dropped ({lost_share:.0%})</text>"
            )
        parts.append("</g>")
    parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def multi_line_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Number | None]]],
    *,
    title: str,
    width: int | str = "100%",
    height: int = 240,
    value_format: ValueFormat = _default_format,
    chart_id: str | None = None,
    empty_message: str = "No data yet",
) -> str:
    """Several lines over the same x labels (e.g. each step's conversion per day); None leaves a gap. Series are
    coloured like share_chart's (.chart-series-N), so a legend in HTML can match them."""
    chart_id = _chart_id(title, chart_id)
    labels = [str(label) for label in labels]
    cleaned: list[tuple[str, list[float | None]]] = []
    for name, values in series:
        if len(values) != len(labels):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(labels)} labels")
        numbers = [None if value is None else float(value) for value in values]
        if any(number is not None and not math.isfinite(number) for number in numbers):
            raise ValueError(f"chart values must be finite, got {values!r} for {name!r}")
        cleaned.append((str(name), numbers))
    present = [number for _, numbers in cleaned for number in numbers if number is not None]
    if not labels or not present:
        return _empty_chart(
            kind="multi-line", title=title, width=width, height=height, chart_id=chart_id, message=empty_message
        )
    scale = _scale(present, top=_MARGIN_TOP, bottom=height - _MARGIN_BOTTOM)
    latest = "; ".join(
        f"{name} {_format(next(n for n in reversed(numbers) if n is not None), value_format)}"
        for name, numbers in cleaned
        if any(n is not None for n in numbers)
    )
    description = f"{len(cleaned)} series over {len(labels)} points from {labels[0]} to {labels[-1]}; latest: {latest}."
    parts = _open_svg(
        kind="multi-line", title=title, description=description, width=width, height=height, chart_id=chart_id
    )
    parts += _y_labels(scale, value_format)
    parts += _gridlines(scale)
    _, xs = _slot_centres(len(labels))
    parts.append(f'<svg viewBox="0 0 100 {height}" preserveAspectRatio="none" width="100%" height="{height}">')
    for index, (name, numbers) in enumerate(cleaned):
        colour = _SERIES_COLOURS[(index + 1) % len(_SERIES_COLOURS)]
        commands, pen_down = [], False
        for x, number in zip(xs, numbers, strict=True):
            if number is None:
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{x:.3f},{scale.y(number):.1f}")
            pen_down = True
        parts.append(
            f'<path class="series-line series-line-{(index + 1) % len(_SERIES_COLOURS)}" '
            f'd="{" ".join(commands)}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round" '
            f'stroke-linecap="round" vector-effect="non-scaling-stroke" data-series="{_attr(name)}"/>'
        )
    parts.append("</svg>")
    parts.append('<g class="chart-points">')
    for index, (name, numbers) in enumerate(cleaned):
        colour = _SERIES_COLOURS[(index + 1) % len(_SERIES_COLOURS)]
        for label, x, number in zip(labels, xs, numbers, strict=True):
            if number is None:
                continue
            parts.append(
                f'<circle class="series-point" cx="{x:.3f}%" cy="{scale.y(number):.1f}" r="2.5" fill="#ffffff" '
                f'stroke="{colour}" stroke-width="2" data-series="{_attr(name)}" data-label="{_attr(label)}" '
                f'data-value="{number:g}"><title>{escape(label)} · {escape(name)}: '
                f"{escape(_format(number, value_format))}</title></circle>"
            )
    parts.append("</g>")
    parts += _x_labels(labels, xs, y=height - _MARGIN_BOTTOM + 18)
    parts.append("</svg>")
    return "".join(parts)
