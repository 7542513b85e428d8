"""SVG line charts drawn by the library (aigc.plots) and the study's figures (aigc.study.figures): the
legend inside the plot, even decades on a log axis, error bars, escaping, byte-identical output, and
the shipped figures regenerated from the shipped study.json byte for byte."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from aigc.hub import STUDY_DIR
from aigc.plots import Series, line_chart, nice_step

NS = "{http://www.w3.org/2000/svg}"


def _attrs(svg: str, cls: str) -> list[dict]:
    root = ET.fromstring(svg)
    return [e.attrib for e in root.iter() if e.get("class") == cls]


def _box(a: dict) -> tuple[float, float, float, float]:
    return float(a["x"]), float(a["y"]), float(a["x"]) + float(a["width"]), float(a["y"]) + float(a["height"])


def _two_lines(**kw) -> str:
    s = [Series("rising", [1, 2, 3, 4], [1, 2, 3, 4]), Series("flat", [1, 2, 3, 4], [2, 2, 2, 2], dashed=True)]
    return line_chart(s, title="t", x_title="x", y_title="y", **kw)


def test_legend_box_lies_inside_the_plot_area_away_from_the_data():
    svg = _two_lines()
    px0, py0, px1, py1 = _box(_attrs(svg, "plot-area")[0])
    lx0, ly0, lx1, ly1 = _box(_attrs(svg, "legend-box")[0])
    assert px0 <= lx0 < lx1 <= px1 and py0 <= ly0 < ly1 <= py1
    # the rising line fills the bottom-left and top-right corners: the legend takes the top-left
    assert lx0 < (px0 + px1) / 2 and ly0 < (py0 + py1) / 2
    assert 'fill-opacity="0.85"' in svg and "stroke-dasharray" in svg          # semi-opaque box; dashed line


def test_log_scale_maps_decades_evenly_and_ticks_are_round():
    svg = line_chart([Series("a", [0.01, 0.1, 1, 10], [1, 10, 100, 1000])], log_x=True, log_y=True)
    xs = [float(a["cx"]) for a in _attrs(svg, "point")]
    ys = [float(a["cy"]) for a in _attrs(svg, "point")]
    assert max(abs((b - a) - (xs[1] - xs[0])) for a, b in zip(xs, xs[1:])) < 0.2
    assert max(abs((b - a) - (ys[1] - ys[0])) for a, b in zip(ys, ys[1:])) < 0.2 and ys[1] < ys[0]
    ticks = re.findall(r'class="tick-x"[^>]*>([^<]+)<', svg)
    assert ticks == ["0.01", "0.1", "1", "10"]
    assert re.findall(r'class="tick-y"[^>]*>([^<]+)<', svg) == ["1", "10", "100", "1000"]
    assert nice_step(10) == 2 and nice_step(0.9) == 0.2 and nice_step(37) == 10
    # a point that cannot sit on a log axis is skipped, as are non-finite ones
    svg = line_chart([Series("a", [0, 1, 10, float("nan")], [1, 2, 3, 4])], log_x=True)
    assert len(_attrs(svg, "point")) == 2


def test_error_bars_and_hover_titles_carry_the_numbers():
    s = Series("m", [1, 2], [5.0, 6.0], y_low=[4.5, 5.5], y_high=[5.5, 6.75])
    svg = line_chart([s])
    assert len(_attrs(svg, "errorbar")) == 2
    titles = [t.text for t in ET.fromstring(svg).iter(NS + "title")]
    assert titles == ["m: x = 1, y = 5 (bar 4.5 to 5.5)", "m: x = 2, y = 6 (bar 5.5 to 6.75)"]


def test_text_is_escaped_and_fonts_include_cjk():
    svg = line_chart([Series('<b>"a" & 步</b>', [1, 2], [1, 2])], title="<script>x</script>", x_title="a&b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;&quot;a&quot; &amp; 步" in svg
    ET.fromstring(svg)                                                           # well-formed XML
    assert "Noto Sans CJK SC" in svg and "Microsoft YaHei" in svg and "sans-serif" in svg


def test_same_input_same_bytes_and_empty_input_is_refused():
    assert _two_lines(log_x=True) == _two_lines(log_x=True)
    with pytest.raises(ValueError, match="nothing to draw"):
        line_chart([])
    with pytest.raises(ValueError, match="nothing to draw"):
        line_chart([Series("a", [1, 2], [float("nan"), float("inf")])])
    with pytest.raises(ValueError, match="positive"):
        line_chart([Series("a", [1, 2], [0, -1])], log_y=True)
    one = line_chart([Series("a", [3], [7])])                                    # one point: a padded range
    assert len(_attrs(one, "point")) == 1


def test_the_shipped_study_figures_are_regenerated_byte_for_byte(tmp_path):
    """Nothing in bench/study/figures/ is drawn by hand: `aigc study figures` remakes each file."""
    from aigc.cli.commands import main
    shipped = sorted((STUDY_DIR / "figures").glob("*.svg"))
    assert [p.name for p in shipped] == ["images-domain_fd.svg", "text-nats_per_char.svg"]
    assert main(["study", "figures", "--from", str(STUDY_DIR / "study.json"), "--out", str(tmp_path)]) == 0
    for p in shipped:
        assert (tmp_path / p.name).read_bytes() == p.read_bytes(), p.name
    svg = p.read_text(encoding="utf-8")
    assert "standard error" in svg and "1x steps" in svg and "4x steps" in svg
