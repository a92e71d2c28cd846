"""The experiment charts of revopt/charts.py: forest plot, lift band, allocation shares."""

import math
import xml.etree.ElementTree as ET

import pytest

from revopt.charts import IntervalRow, band_chart, interval_chart, share_chart

SVG = "{http://www.w3.org/2000/svg}"


def _groups(svg: str, css_class: str) -> list[ET.Element]:
    return [node for node in ET.fromstring(svg).iter() if css_class in (node.get("class") or "").split()]


def _percent(value: str) -> float:
    return float(value.rstrip("%"))


def test_a_forest_plot_draws_each_interval_around_zero_with_an_accessible_summary():
    # given
    rows = [
        IntervalRow(label="Revenue per user", estimate=0.04, low=0.01, high=0.07, tone="positive", key="rpu"),
        IntervalRow(label="Conversion", estimate=-0.01, low=-0.05, high=0.03, key="conversion"),
    ]

    # when
    svg = interval_chart(rows, title="Lift per metric", chart_id="forest")

    # then
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("id") == "forest"
    assert root.find(f"{SVG}title").text == "Lift per metric"
    description = root.find(f"{SVG}desc").text
    assert "Revenue per user: +4.0% (+1.0% to +7.0%)" in description
    assert "Conversion: -1.0% (-5.0% to +3.0%)" in description
    intervals = _groups(svg, "interval")
    assert [group.get("data-row") for group in intervals] == ["rpu", "conversion"]
    assert [group.get("data-tone") for group in intervals] == ["positive", "neutral"]


def test_forest_plot_positions_are_proportional_and_zero_sits_between_the_intervals():
    # given: an axis from -10% to +10% (nice steps)
    rows = [
        IntervalRow(label="a", estimate=0.05, low=0.0, high=0.1),
        IntervalRow(label="b", estimate=-0.05, low=-0.1, high=0.0),
    ]

    # when
    svg = interval_chart(rows, title="t")

    # then
    zero = _groups(svg, "chart-zero")[0]
    assert _percent(zero.get("x1")) == pytest.approx(50.0)
    lines = _groups(svg, "interval-line")
    points = _groups(svg, "interval-point")
    assert [(_percent(line.get("x1")), _percent(line.get("x2"))) for line in lines] == [(50.0, 100.0), (0.0, 50.0)]
    assert [_percent(point.get("cx")) for point in points] == [75.0, 25.0]


def test_a_guardrail_threshold_is_drawn_in_its_row_and_widens_the_axis():
    # given
    rows = [IntervalRow(label="Refund rate", estimate=0.01, low=-0.02, high=0.04, threshold=0.1)]

    # when
    svg = interval_chart(rows, title="Guardrails")

    # then
    threshold = _groups(svg, "chart-threshold")
    assert len(threshold) == 1 and threshold[0].get("data-threshold") == "0.1"
    assert _percent(threshold[0].get("x1")) <= 100.0
    labels = [node.text for node in _groups(svg, "chart-x-label")]
    assert labels[-1] == "+10%" and "0%" in labels


def test_an_unbounded_interval_stops_at_the_edge_and_says_so():
    # given
    rows = [
        IntervalRow(label="open", estimate=0.02, low=-0.01, high=math.inf),
        IntervalRow(label="closed", estimate=0.02, low=-0.01, high=0.05),
    ]

    # when
    svg = interval_chart(rows, title="t")

    # then
    open_row, closed_row = _groups(svg, "interval")
    assert open_row.get("data-open") == "true" and closed_row.get("data-open") is None
    assert _percent(_groups(svg, "interval-line")[0].get("x2")) == 100.0


def test_labels_are_escaped_and_an_empty_forest_plot_says_why():
    # given
    rows = [IntervalRow(label="<script>x</script>", estimate=0.0, low=-0.1, high=0.1)]

    # when
    svg = interval_chart(rows, title="t")
    empty = interval_chart([], title="t", empty_message="Nothing analysed")

    # then
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert "Nothing analysed" in ET.fromstring(empty).find(f"{SVG}desc").text


def test_a_non_finite_estimate_is_refused():
    with pytest.raises(ValueError):
        interval_chart([IntervalRow(label="x", estimate=math.nan, low=0, high=1)], title="t")


def test_a_band_chart_draws_the_line_inside_its_band_with_a_point_per_day():
    # given
    points = [("1 Mar", 0.08, -0.10, 0.26), ("2 Mar", 0.05, -0.03, 0.13), ("3 Mar", 0.04, 0.01, 0.07)]

    # when
    svg = band_chart(points, title="Lift over time", chart_id="lift")

    # then
    root = ET.fromstring(svg)
    assert "latest +4.0% (+1.0% to +7.0%)" in root.find(f"{SVG}desc").text
    circles = _groups(svg, "point")
    assert [circle.get("data-label") for circle in circles] == ["1 Mar", "2 Mar", "3 Mar"]
    band = _groups(svg, "chart-band")[0].get("d")
    assert band.startswith("M") and band.endswith("Z") and band.count("L") == 5  # 3 upper + 3 lower points
    zero_y = float(_groups(svg, "chart-zero")[0].get("y1"))
    # the first day's band spans zero: its point lies below the zero line's y (above zero in value)
    assert float(circles[0].get("cy")) < zero_y


def test_share_chart_stacks_each_column_to_the_full_height_in_series_order():
    # given
    columns = [("start", [("A", 0.5), ("B", 0.5)]), ("day 2", [("A", 0.2), ("B", 0.8)])]

    # when
    svg = share_chart(columns, title="Weights", height=220)

    # then
    rects = _groups(svg, "share")
    assert [(rect.get("data-series"), rect.get("data-value")) for rect in rects] == [
        ("A", "0.5"),
        ("B", "0.5"),
        ("A", "0.2"),
        ("B", "0.8"),
    ]
    heights = [float(rect.get("height")) for rect in rects]
    plot = 220 - 12 - 28
    assert heights[0] + heights[1] == pytest.approx(plot, abs=0.2)
    assert heights[3] == pytest.approx(4 * heights[2], abs=0.3)
    assert rects[0].get("class").endswith("chart-series-0") and rects[1].get("class").endswith("chart-series-1")
    assert "latest: A 20%, B 80%" in ET.fromstring(svg).find(f"{SVG}desc").text


def test_a_band_with_an_unbounded_day_runs_to_the_edge_and_says_infinity():
    # given: the first day's interval is still open
    points = [("1 Mar", 0.0, -float("inf"), float("inf")), ("2 Mar", 0.05, 0.01, 0.09)]

    # when
    svg = band_chart(points, title="Lift over time")

    # then
    first = _groups(svg, "point")[0]
    assert (first.get("data-low"), first.get("data-high")) == ("-inf", "inf")
    assert "(−∞ to +∞)" in first.find(f"{SVG}title").text
    band = _groups(svg, "chart-band")[0].get("d")
    ys = [float(point.split(",")[1]) for point in band.strip("MZ ").replace("L", "").split()]
    assert min(ys) == pytest.approx(12.0) and max(ys) == pytest.approx(240 - 28)
