"""A tiny inline SVG of a proposal's profit curve for the approval queue: pure string building, no Django.

The curve is expected weekly profit against price; a grey tick marks the current price, a coloured dot the
proposed one (green when it earns more than the current price, red when less). Text is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

WIDTH = 120
HEIGHT = 28
_PAD = 3


def _profit_at(points: Sequence[tuple[float, float]], price: float) -> float:
    """Linear interpolation of the curve at `price` (clamped to its ends)."""
    if price <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x0 <= price <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (price - x0) / (x1 - x0)
    return points[-1][1]


def profit_sparkline(curve: Sequence[Mapping[str, float]], *, current_price: float, proposed_price: float) -> str:
    """The SVG, or an empty string when the curve has fewer than two usable points."""
    points = sorted(
        (float(point["price"]), float(point["profit"]))
        for point in curve
        if isinstance(point, Mapping)
        and "price" in point
        and "profit" in point
        and math.isfinite(float(point["price"]))
        and math.isfinite(float(point["profit"]))
    )
    if len(points) < 2:
        return ""
    x_low, x_high = min(points[0][0], current_price), max(points[-1][0], current_price)
    profits = [profit for _, profit in points]
    y_low, y_high = min(profits), max(profits)
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0

    def sx(price: float) -> float:
        return _PAD + (price - x_low) / x_span * (WIDTH - 2 * _PAD)

    def sy(profit: float) -> float:
        return HEIGHT - _PAD - (profit - y_low) / y_span * (HEIGHT - 2 * _PAD)

    path = " ".join(f"{'L' if i else 'M'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(points))
    current_profit, proposed_profit = _profit_at(points, current_price), _profit_at(points, proposed_price)
    colour = "#15803d" if proposed_profit >= current_profit else "#b91c1c"
    label = (
        f"Expected weekly profit by price: {proposed_profit:,.0f} at the proposed {proposed_price:,.2f} "
        f"against {current_profit:,.0f} at the current {current_price:,.2f}"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pricing-sparkline" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label, quote=True)}">'
        f"<title>{escape(label)}</title>"
        f'<path d="{path}" fill="none" stroke="#64748b" stroke-width="1.5" stroke-linejoin="round"/>'
        f'<line class="sparkline-current" x1="{sx(current_price):.1f}" x2="{sx(current_price):.1f}" y1="{_PAD}" '
        f'y2="{HEIGHT - _PAD}" stroke="#334155" stroke-width="1" stroke-dasharray="2 2"/>'
        f'<circle class="sparkline-proposed" cx="{sx(proposed_price):.1f}" cy="{sy(proposed_profit):.1f}" r="3" '
        f'fill="{colour}"/>'
        "</svg>"
    )
