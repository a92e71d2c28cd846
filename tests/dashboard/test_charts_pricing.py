"""The pricing charts of revopt/charts.py: curves over a price axis with markers, and up/down bars."""

import xml.etree.ElementTree as ET

import pytest

from revopt.charts import CurveMarker, curve_chart, updown_bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def _nodes(svg: str, css_class: str) -> list[ET.Element]:
    return [node for node in ET.fromstring(svg).iter() if css_class in (node.get("class") or "").split()]


def _percent(value: str) -> float:
    return float(value.rstrip("%"))


def test_a_curve_places_markers_and_the_shaded_range_by_their_x_value():
    # given: prices 10 to 20
    points = [(10, 8, 6, 10), (15, 5, 4, 6), (20, 2, 1, 3)]
    markers = [CurveMarker("Current", 12.5), CurveMarker("Rival <b>", 17.5, kind="competitor")]

    # when
    svg = curve_chart(points, title="Units by price", markers=markers, shade=(11, 19), chart_id="demand")

    # then
    root = ET.fromstring(svg)
    assert (root.get("data-x-min"), root.get("data-x-max")) == ("10", "20")
    assert "Marked: Current 12.50; Rival <b> 17.50." in root.find(f"{SVG}desc").text
    shade = _nodes(svg, "chart-shade")[0]
    assert (_percent(shade.get("x")), _percent(shade.get("width"))) == (10.0, 80.0)
    lines = {group.get("data-marker"): group.find(f"{SVG}line") for group in _nodes(svg, "chart-marker")}
    assert _percent(lines["current"].get("x1")) == 25.0 and _percent(lines["competitor"].get("x1")) == 75.0
    assert "Rival &lt;b&gt;" in svg  # labels are escaped
    assert len(_nodes(svg, "chart-band")) == 1 and len(_nodes(svg, "chart-line")) == 1


def test_close_marker_labels_go_on_separate_rows_and_a_what_if_marker_has_none():
    # given
    markers = [
        CurveMarker("Current", 15.0),
        CurveMarker("Proposed", 15.5, kind="proposed"),
        CurveMarker("What if", 15.2, kind="what-if"),
    ]

    # when
    svg = curve_chart([(10, 1, 1, 1), (20, 2, 2, 2)], title="t", markers=markers)

    # then
    labels = _nodes(svg, "chart-marker-label")
    assert [label.text for label in labels] == ["Current", "Proposed"]
    assert labels[0].get("y") != labels[1].get("y")


def test_an_empty_or_broken_curve():
    # then
    assert "No estimate" in curve_chart([], title="t", empty_message="No estimate")
    with pytest.raises(ValueError, match="finite"):
        curve_chart([(10, float("nan"), 0, 1)], title="t")


def test_up_and_down_bars_sit_either_side_of_zero():
    # when
    svg = updown_bar_chart([("1 Jan", 3, 0), ("2 Jan", 0, 2), ("3 Jan", 1, 1)], title="Changes", up_name="rises")

    # then
    ups, downs = _nodes(svg, "bar-up"), _nodes(svg, "bar-down")
    assert [bar.get("data-up") for bar in ups] == ["3", "1"]
    assert [bar.get("data-down") for bar in downs] == ["2", "1"]
    zero = float(_nodes(svg, "chart-baseline")[0].get("y1"))
    assert all(float(bar.get("y")) + float(bar.get("height")) == pytest.approx(zero, abs=0.11) for bar in ups)
    assert all(float(bar.get("y")) == pytest.approx(zero, abs=0.11) for bar in downs)
    assert "4 rises and 3 down in all" in ET.fromstring(svg).find(f"{SVG}desc").text


def test_no_changes_at_all_is_an_empty_chart_not_a_flat_one():
    # when
    svg = updown_bar_chart([("1 Jan", 0, 0)], title="Changes", empty_message="No price changes")

    # then
    assert "No price changes" in svg and not _nodes(svg, "bar-up")
