"""The loyalty charts of revopt/charts.py: the cohort heatmap, the histogram with a marker, the reliability diagram."""

import xml.etree.ElementTree as ET

import pytest

from revopt.charts import heatmap_chart, histogram_chart, reliability_chart


def _nodes(svg: str, css_class: str) -> list[ET.Element]:
    return [node for node in ET.fromstring(svg).iter() if css_class in (node.get("class") or "").split()]


def _percent(value: str) -> float:
    return float(value.rstrip("%"))


def test_a_heatmap_draws_one_cell_per_observed_value_with_its_figure():
    # given: the second row's last month has not come yet
    rows = [("Jan <2026>", [0.2, 0.1, 0.05]), ("Feb 2026", [0.4, 0.2, None])]

    # when
    svg = heatmap_chart(rows, columns=["0", "1", "2"], title="Retention", chart_id="cohorts")

    # then
    cells = _nodes(svg, "heat-cell")
    assert [(cell.get("data-row"), cell.get("data-column"), cell.get("data-value")) for cell in cells] == [
        ("Jan <2026>", "0", "0.2"), ("Jan <2026>", "1", "0.1"), ("Jan <2026>", "2", "0.05"),
        ("Feb 2026", "0", "0.4"), ("Feb 2026", "1", "0.2"),
    ]  # fmt: skip
    assert [text.text for text in _nodes(svg, "heat-value")] == ["20%", "10%", "5%", "40%", "20%"]
    # the darkest cell is the largest value, in the accent colour; positions are shares of the plot
    assert cells[3].get("fill") == "#4f46e5" and cells[0].get("fill") != cells[3].get("fill")
    assert _percent(cells[1].get("x")) == pytest.approx(100 / 3 + 0.15, abs=0.001)
    assert "Jan &lt;2026&gt;" in svg


def test_an_empty_or_broken_heatmap():
    # then
    assert "No cohorts" in heatmap_chart([], columns=["0"], title="t", empty_message="No cohorts")
    with pytest.raises(ValueError, match="finite"):
        heatmap_chart([("a", [float("nan")])], columns=["0"], title="t")
    with pytest.raises(ValueError, match="more values"):
        heatmap_chart([("a", [0.1, 0.2])], columns=["0"], title="t")


def test_a_histogram_spans_its_bins_and_marks_the_median():
    # given
    bins = [(0, 10, 4), (10, 20, 6), (20, 30, 0), (30, 40, 2)]

    # when
    svg = histogram_chart(bins, title="CLV", marker=("Median", 15), open_ended=True)

    # then
    bars = _nodes(svg, "bar")
    assert [bar.get("data-value") for bar in bars] == ["4", "6", "0", "2"]
    assert _percent(bars[1].get("x")) == pytest.approx(25.15)
    marker = _nodes(svg, "chart-marker")[0]
    assert marker.get("data-x") == "15" and _percent(marker.find("{http://www.w3.org/2000/svg}line").get("x1")) == 37.5
    assert "30 and above: 2" in svg and "12 in 4 bins" in svg
    assert "No values" in histogram_chart([(0, 1, 0)], title="t", empty_message="No values")


def test_a_reliability_diagram_places_groups_by_predicted_and_observed_share():
    # when
    svg = reliability_chart([(0.1, 0.2, 10), (0.8, 0.6, 40)], title="Calibration", height=240)

    # then
    points = _nodes(svg, "reliability-point")
    assert [_percent(point.get("cx")) for point in points] == [10.0, 80.0]
    assert float(points[0].get("cy")) > float(points[1].get("cy"))  # observed 20% sits lower than 60%
    assert float(points[1].get("r")) > float(points[0].get("r"))  # a bigger group, a bigger point
    assert len(_nodes(svg, "chart-diagonal")) == 1 and "largest gap 20%" in svg
    with pytest.raises(ValueError, match="between 0 and 1"):
        reliability_chart([(1.2, 0.5, 3)], title="t")
