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
