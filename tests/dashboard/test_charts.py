import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from revopt import charts
from revopt.charts import bar_chart, line_chart, nice_step

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _bars(svg: str) -> list[ET.Element]:
    return [rect for rect in _parse(svg).iter(f"{SVG}rect") if rect.get("class") == "bar"]


def test_bar_chart_draws_one_accessible_bar_per_point():
    # given
    series = [("1 Mar", 3), ("2 Mar", 0), ("3 Mar", 6)]

    # when
    svg = bar_chart(series, title="Events per day")

    # then
    root = _parse(svg)
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title").text == "Events per day"
    assert "3 bars from 1 Mar to 3 Mar" in root.find(f"{SVG}desc").text
    bars = _bars(svg)
    assert len(bars) == 3
    assert [bar.find(f"{SVG}title").text for bar in bars] == ["1 Mar: 3", "2 Mar: 0", "3 Mar: 6"]


def test_bar_heights_are_proportional_to_values_and_zero_is_flat():
    # given
    series = [("a", 5), ("b", 10), ("c", 0)]

    # when
    bars = _bars(bar_chart(series, title="t", height=240))

    # then
    heights = [float(bar.get("height")) for bar in bars]
    assert heights[2] == 0.0
    assert heights[1] == pytest.approx(2 * heights[0], rel=0.01)
    # All bars stand on the same baseline.
    bottoms = {round(float(bar.get("y")) + float(bar.get("height")), 1) for bar in bars}
    assert len(bottoms) == 1


def _y_labels(svg: str) -> list[str]:
    return [text.text for text in _parse(svg).iter(f"{SVG}text") if "chart-y-label" in text.get("class", "")]


def test_scale_tops_out_at_a_round_number_above_the_maximum():
    # when
    svg = bar_chart([("a", 7), ("b", 83)], title="t")

    # then
    assert _y_labels(svg) == ["0", "20", "40", "60", "80", "100"]


def test_small_counts_get_whole_number_gridlines():
    # when
    svg = bar_chart([("a", 1), ("b", 3)], title="t")

    # then
    assert _y_labels(svg) == ["0", "1", "2", "3"]


def test_money_scale_uses_the_value_format():
    # when
    svg = line_chart([("a", 430.5), ("b", 1210.0)], title="t", value_format=lambda value: f"${value:,.0f}")

    # then
    assert _y_labels(svg) == ["$0", "$250", "$500", "$750", "$1,000", "$1,250"]


@pytest.mark.parametrize(
    ("raw", "expected"), [(0, 1.0), (0.3, 0.5), (1, 1.0), (1.2, 2.0), (3, 5.0), (16.6, 20.0), (22, 25.0), (240, 250.0)]
)
def test_nice_step(raw, expected):
    assert nice_step(raw) == expected


def test_all_zero_series_still_renders_every_bar():
    # when
    svg = bar_chart([("a", 0), ("b", 0)], title="Quiet days")

    # then
    bars = _bars(svg)
    assert len(bars) == 2
    assert all(float(bar.get("height")) == 0 for bar in bars)


@pytest.mark.parametrize("draw", [bar_chart, line_chart])
def test_empty_series_says_there_is_no_data(draw):
    # when
    svg = draw([], title="Revenue", empty_message="Nothing yet")

    # then
    root = _parse(svg)
    assert root.get("role") == "img"
    assert "Nothing yet" in svg
    assert not _bars(svg)
    assert not list(root.iter(f"{SVG}circle"))


@pytest.mark.parametrize("draw", [bar_chart, line_chart])
def test_every_label_and_the_title_are_escaped(draw):
    # given
    hostile = '<script>alert("x")</script> & "quotes"'

    # when
    svg = draw([(hostile, 1), ("ok", 2)], title=f"Title {hostile}")

    # then
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    _parse(svg)  # still well-formed XML


def test_line_chart_has_a_point_with_tooltip_per_value():
    # given
    series = [("1 Mar", Decimal("10.50")), ("2 Mar", Decimal("0")), ("3 Mar", Decimal("21.00"))]

    # when
    svg = line_chart(series, title="Revenue", value_format=lambda value: f"${value:,.2f}")

    # then
    points = list(_parse(svg).iter(f"{SVG}circle"))
    assert [point.find(f"{SVG}title").text for point in points] == ["1 Mar: $10.50", "2 Mar: $0.00", "3 Mar: $21.00"]
    ys = [float(point.get("cy")) for point in points]
    assert ys[2] < ys[0] < ys[1]  # higher values sit higher on screen


def test_value_format_may_be_a_format_string():
    # when
    svg = bar_chart([("a", 1234.5)], title="t", value_format="{:,.1f} units")

    # then
    assert "a: 1,234.5 units" in svg


def test_long_series_labels_only_some_days_but_always_the_last():
    # given
    series = [(f"{day} Mar", day) for day in range(1, 31)]

    # when
    svg = bar_chart(series, title="t")

    # then
    x_labels = [text.text for text in _parse(svg).iter(f"{SVG}text") if "chart-x-label" in text.get("class", "")]
    assert 2 <= len(x_labels) <= 5
    assert x_labels[0] == "1 Mar"
    assert x_labels[-1] == "30 Mar"


def test_negative_values_hang_below_the_baseline():
    # when
    bars = _bars(bar_chart([("refunds", -5), ("sales", 10)], title="t"))

    # then
    refund, sale = bars
    assert float(refund.get("y")) == pytest.approx(float(sale.get("y")) + float(sale.get("height")), abs=0.2)


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="finite"):
        bar_chart([("a", float("nan"))], title="t")


def test_chart_ids_are_stable_and_safe():
    # when
    svg = bar_chart([("a", 1)], title="Events per day!", chart_id=None)

    # then
    assert re.search(r'id="chart-events-per-day"', svg)


def test_sparkline_draws_one_path_with_a_gap_for_missing_buckets():
    # when
    svg = charts.sparkline([1, 3, None, 2, 4], title="RPAU trend", chart_id="spark-rpau")

    # then: two runs (before and after the gap), the last value on the path, scaled to the box
    path = re.search(r'<path class="sparkline-line" d="([^"]+)"[^>]*data-last="([^"]+)"', svg)
    assert path and path.group(2) == "4"
    commands = path.group(1).split()
    assert [command[0] for command in commands] == ["M", "L", "M", "L"]
    assert commands[0] == "M0.000,33.0" and commands[-1] == "L100.000,3.0"
    assert 'id="spark-rpau"' in svg and 'role="img"' in svg
    assert "latest 4, lowest 1, highest 4" in svg


def test_sparkline_with_too_few_points_draws_no_line_and_escapes_its_title():
    # when
    svg = charts.sparkline([None, 5], title="<b>Conversion</b> trend")

    # then
    assert "sparkline-line" not in svg
    assert "&lt;b&gt;Conversion&lt;/b&gt; trend" in svg
    with pytest.raises(ValueError, match="finite"):
        charts.sparkline([1.0, float("nan")], title="bad")
