"""The funnel charts of revopt/charts.py: the funnel with its drop-offs and lines of several series with gaps."""

import xml.etree.ElementTree as ET

import pytest

from revopt.charts import funnel_chart, multi_line_chart, reliability_chart


def _nodes(svg: str, css_class: str) -> list[ET.Element]:
    return [node for node in ET.fromstring(svg).iter() if css_class in (node.get("class") or "").split()]


def _percent(value: str) -> float:
    return float(value.rstrip("%"))


def test_a_funnel_draws_each_step_as_a_share_of_the_first_with_the_drop_off_below():
    # given
    steps = [("Sessions", 10), ("Viewed <a> product", 7), ("Added to cart", 5), ("Ordered", 2)]
    # when
    svg = funnel_chart(steps, title="Funnel", chart_id="funnel")
    # then
    groups = _nodes(svg, "funnel-step")
    assert [(group.get("data-step"), group.get("data-value")) for group in groups] == [
        ("Sessions", "10"), ("Viewed <a> product", "7"), ("Added to cart", "5"), ("Ordered", "2"),
    ]  # fmt: skip
    assert [_percent(bar.get("width")) for bar in _nodes(svg, "funnel-bar")] == pytest.approx([100, 70, 50, 20])
    assert [text.text for text in _nodes(svg, "funnel-drop")] == [
        "↓ 3 dropped (30%)", "↓ 2 dropped (29%)", "↓ 3 dropped (60%)",
    ]  # fmt: skip
    assert [text.text for text in _nodes(svg, "funnel-value")] == ["10", "7 · 70.0%", "5 · 50.0%", "2 · 20.0%"]
    assert "Viewed &lt;a&gt; product" in svg


def test_a_funnel_without_sessions_says_so_and_refuses_negative_counts():
    # then
    assert "No sessions" in funnel_chart([("Sessions", 0), ("Ordered", 0)], title="t", empty_message="No sessions")
    assert "No sessions" in funnel_chart([], title="t", empty_message="No sessions")
    with pytest.raises(ValueError):
        funnel_chart([("Sessions", 3), ("Ordered", -1)], title="t")


def test_multi_line_chart_breaks_a_line_where_a_value_is_missing():
    # given
    labels = ["1 Mar", "2 Mar", "3 Mar", "4 Mar"]
    series = [("View rate", [0.5, None, 0.4, 0.6]), ("Order rate", [0.1, 0.2, 0.1, None])]
    # when
    svg = multi_line_chart(labels, series, title="Rates", value_format="{:.0%}", chart_id="rates")
    # then
    paths = _nodes(svg, "series-line")
    assert [path.get("data-series") for path in paths] == ["View rate", "Order rate"]
    assert paths[0].get("d").count("M") == 2 and paths[0].get("d").count("L") == 1
    assert paths[1].get("d").count("M") == 1 and paths[1].get("d").count("L") == 2
    points = _nodes(svg, "series-point")
    assert [(point.get("data-series"), point.get("data-label")) for point in points][:3] == [
        ("View rate", "1 Mar"), ("View rate", "3 Mar"), ("View rate", "4 Mar"),
    ]  # fmt: skip
    assert len(points) == 6
    assert paths[0].get("stroke") != paths[1].get("stroke")


def test_multi_line_chart_without_values_is_empty_and_checks_lengths():
    # then
    assert "Nothing" in multi_line_chart(["a"], [("s", [None])], title="t", empty_message="Nothing")
    with pytest.raises(ValueError, match="2 values for 1 labels"):
        multi_line_chart(["a"], [("s", [1, 2])], title="t")


def test_reliability_chart_names_what_its_groups_count():
    # when
    svg = reliability_chart([(0.2, 0.25, 40)], title="Calibration", unit="carts")
    # then
    assert "(40 carts)" in svg
