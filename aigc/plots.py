"""Line charts as SVG text, drawn here (no plotting library): series of (x, y) points with optional
error bars, solid or dashed lines, linear or log axes with round tick values, and the legend inside
the plot area in the corner the data crosses least. The same input gives byte-identical SVG.

    svg = line_chart([Series("4x steps", [0.01, 0.1, 1], [2.5, 1.8, 1.7], y_low=[...], y_high=[...])],
                     title="Text", x_title="share of the data", y_title="nats/char", log_x=True)

Every point carries a <title> (a browser shows it on hover) with its numbers; all text is escaped.
"""
from __future__ import annotations

import html
import math
import unicodedata
from dataclasses import dataclass
from typing import Sequence

FONT_STACK = ('system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC", '
              '"Microsoft YaHei", "Hiragino Sans GB", sans-serif')
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22")
FONT_PX = 12


@dataclass
class Series:
    """One line. `y_low`/`y_high`: an error bar's ends per point (None: no bar); `legend` False leaves
    it out of the legend (e.g. the faint raw curve under a smoothed one); `markers` False draws no
    dots (and so no hover titles)."""
    label: str
    x: Sequence[float]
    y: Sequence[float]
    y_low: Sequence[float] | None = None
    y_high: Sequence[float] | None = None
    dashed: bool = False
    color: str | None = None
    opacity: float = 1.0
    width: float = 2.0
    markers: bool = True
    legend: bool = True


@dataclass
class _Axis:
    lo: float
    hi: float
    log: bool
    ticks: list[float]
    start: float            # pixel of lo
    end: float              # pixel of hi

    def t(self, v: float) -> float:
        return math.log10(v) if self.log else v

    def px(self, v: float) -> float:
        a, b = self.t(self.lo), self.t(self.hi)
        return self.start + (self.t(v) - a) / (b - a) * (self.end - self.start)


def _finite(v, log: bool) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v) and (v > 0 or not log)


def nice_step(span: float, target: int = 5) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving about `target` intervals over `span`."""
    raw = span / max(target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * 0.999)


def _linear_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = nice_step(hi - lo)
    a, b = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    ticks = [round(i * step, 12) for i in range(a, b + 1)]
    return ticks[0], ticks[-1], ticks


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    if b == a:
        b += 1
    decades = [10.0 ** k for k in range(a, b + 1)]
    if b - a >= 2:
        return decades[0], decades[-1], decades
    ticks = sorted({round(m * d, 12) for d in decades for m in (1, 2, 5) if decades[0] <= m * d <= decades[-1]})
    return decades[0], decades[-1], ticks


def _fmt(v: float) -> str:
    """A tick label: short, no float noise (0.1 not 0.1000000001), large and tiny as 1e5."""
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")
    return f"{v:.6g}"


def _exact(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _text_px(s: str, size: float = FONT_PX) -> float:
    """An estimate of a label's width: wide (CJK) characters one em, others 0.6 em."""
    return sum(size if unicodedata.east_asian_width(ch) in "WF" else 0.6 * size for ch in s)


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _axis(values: list[float], log: bool, start: float, end: float) -> _Axis:
    lo, hi = min(values), max(values)
    lo, hi, ticks = _log_ticks(lo, hi) if log else _linear_ticks(lo, hi)
    return _Axis(lo, hi, log, ticks, start, end)


def _points(s: Series, log_x: bool, log_y: bool) -> list[tuple[float, float, float | None, float | None]]:
    """(x, y, low, high) of the points that can be drawn; an end of a bar that cannot is None."""
    out = []
    for i, (x, y) in enumerate(zip(s.x, s.y)):
        if not (_finite(x, log_x) and _finite(y, log_y)):
            continue
        lo = s.y_low[i] if s.y_low is not None and i < len(s.y_low) else None
        hi = s.y_high[i] if s.y_high is not None and i < len(s.y_high) else None
        out.append((float(x), float(y), float(lo) if _finite(lo, log_y) else None,
                    float(hi) if _finite(hi, log_y) else None))
    return out


def _legend_box(entries: list[Series], rect: tuple[float, float, float, float],
                pts: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the legend: the place in the plot area over the fewest drawn points."""
    left, top, w, h = rect
    lw = min(w - 8, 34 + max(_text_px(s.label) for s in entries) + 10)
    lh = min(h - 8, 8 + 18 * len(entries))
    pad = 6
    right, bottom = left + w - lw - pad, top + h - lh - pad
    # the four corners first; down the left and right sides when every corner is crossed
    corners = [(right, top + pad), (left + pad, top + pad), (right, bottom), (left + pad, bottom)]
    corners += [(x, top + pad + k * 8) for k in range(1, int((bottom - top - pad) // 8)) for x in (right, left + pad)]

    def inside(cx, cy):
        return sum(1 for px, py in pts if cx - 4 <= px <= cx + lw + 4 and cy - 4 <= py <= cy + lh + 4)
    best = min(range(len(corners)), key=lambda i: (inside(*corners[i]), i))
    return (*corners[best], lw, lh)


def _dense(xy: list[tuple[float, float]], every: float = 6.0) -> list[tuple[float, float]]:
    """Points along a drawn polyline (its vertices and one every few pixels), for the legend's place."""
    out = list(xy)
    for (x0, y0), (x1, y1) in zip(xy, xy[1:]):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / every))
        out += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n)]
    return out


def _series_svg(s: Series, color: str, pts, ax: _Axis, ay: _Axis, r: float) -> tuple[list[str], list]:
    dash = ' stroke-dasharray="7 4"' if s.dashed else ""
    xy = [(ax.px(x), ay.px(y)) for x, y, _, _ in pts]
    out = [f'<g class="series" data-label="{_e(s.label)}" opacity="{s.opacity:g}">']
    for (x, y, lo, hi), (px, py) in zip(pts, xy):
        if lo is None and hi is None:
            continue
        y0, y1 = ay.px(lo if lo is not None else y), ay.px(hi if hi is not None else y)
        out.append(f'<path class="errorbar" d="M{px:.1f},{y0:.1f}V{y1:.1f}M{px - 4:.1f},{y0:.1f}h8'
                   f'M{px - 4:.1f},{y1:.1f}h8" stroke="{color}" stroke-width="1.2" fill="none"/>')
    if len(xy) > 1:
        d = " ".join(f"{px:.1f},{py:.1f}" for px, py in xy)
        out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{s.width:g}"'
                   f' stroke-linejoin="round"{dash}/>')
    for (x, y, lo, hi), (px, py) in zip(pts, xy) if s.markers else ():
        tip = f"{s.label}: x = {_exact(x)}, y = {_exact(y)}"
        if lo is not None or hi is not None:
            tip += f" (bar {_exact(lo if lo is not None else y)} to {_exact(hi if hi is not None else y)})"
        out.append(f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="{r:g}" fill="{color}">'
                   f"<title>{_e(tip)}</title></circle>")
    out.append("</g>")
    bars = [(px, ay.px(v)) for (_, _, lo, hi), (px, _) in zip(pts, xy) for v in (lo, hi) if v is not None]
    return out, _dense(xy) + bars


def _axes_svg(ax: _Axis, ay: _Axis, rect, x_title: str, y_title: str) -> list[str]:
    left, top, w, h = rect
    out = [f'<rect class="plot-area" x="{left:g}" y="{top:g}" width="{w:g}" height="{h:g}" fill="#fff"'
           ' stroke="#999"/>', '<g class="ticks" font-size="11" fill="#333">']
    for v in ax.ticks:
        p = ax.px(v)
        out.append(f'<line x1="{p:.1f}" y1="{top:g}" x2="{p:.1f}" y2="{top + h:g}" stroke="#e5e5e5"/>'
                   f'<text class="tick-x" x="{p:.1f}" y="{top + h + 16:g}" text-anchor="middle">{_e(_fmt(v))}</text>')
    for v in ay.ticks:
        p = ay.px(v)
        out.append(f'<line x1="{left:g}" y1="{p:.1f}" x2="{left + w:g}" y2="{p:.1f}" stroke="#e5e5e5"/>'
                   f'<text class="tick-y" x="{left - 6:g}" y="{p + 4:.1f}" text-anchor="end">{_e(_fmt(v))}</text>')
    out.append("</g>")
    if x_title:
        out.append(f'<text class="axis-title" x="{left + w / 2:g}" y="{top + h + 36:g}" text-anchor="middle">'
                   f"{_e(x_title)}</text>")
    if y_title:
        out.append(f'<text class="axis-title" transform="translate(16,{top + h / 2:g}) rotate(-90)" '
                   f'text-anchor="middle">{_e(y_title)}</text>')
    return out


def _legend_svg(entries: list[tuple[Series, str]], box) -> list[str]:
    x, y, w, h = box
    out = ['<g class="legend">', f'<rect class="legend-box" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" '
           f'height="{h:.1f}" rx="3" fill="#fff" fill-opacity="0.85" stroke="#bbb"/>']
    for i, (s, color) in enumerate(entries):
        ly = y + 13 + 18 * i
        dash = ' stroke-dasharray="7 4"' if s.dashed else ""
        out.append(f'<line x1="{x + 6:.1f}" y1="{ly:.1f}" x2="{x + 30:.1f}" y2="{ly:.1f}" stroke="{color}" '
                   f'stroke-width="2"{dash}/><text x="{x + 36:.1f}" y="{ly + 4:.1f}">{_e(s.label)}</text>')
    out.append("</g>")
    return out


def line_chart(series: Sequence[Series], *, title: str = "", subtitle: str = "", x_title: str = "",
               y_title: str = "", log_x: bool = False, log_y: bool = False, width: int = 640,
               height: int = 400, marker_r: float = 3.0) -> str:
    """The SVG (a string) of `series` as lines. Points not finite (or not positive on a log axis) are
    skipped; ValueError when nothing is left to draw."""
    series = list(series)
    drawn = [(s, _points(s, log_x, log_y)) for s in series]
    drawn = [(s, p) for s, p in drawn if p]
    if not drawn:
        raise ValueError("nothing to draw: no series with a finite point" + (" (log scale: positive values only)"
                                                                              if log_x or log_y else ""))
    xs = [p[0] for _, pts in drawn for p in pts]
    ys = [v for _, pts in drawn for p in pts for v in (p[1], p[2], p[3]) if v is not None]
    head = 14 + (24 if title else 0) + (18 if subtitle else 0)
    rect = (64.0, float(head), width - 64.0 - 16, height - head - 48.0)
    inset = 10          # markers on the outermost ticks stay clear of the frame
    ax = _axis(xs, log_x, rect[0] + inset, rect[0] + rect[2] - inset)
    ay = _axis(ys, log_y, rect[1] + rect[3] - inset, rect[1] + inset)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="aigc-chart" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" style="max-width:100%;height:auto" role="img" '
           f'aria-label="{_e(title or y_title or "chart")}">',
           f"<style>.aigc-chart text{{font-family:{FONT_STACK};font-size:{FONT_PX}px;fill:#222}}"
           ".aigc-chart .chart-title{font-size:15px;font-weight:600}.aigc-chart .tick-x,.aigc-chart .tick-y"
           "{font-size:11px;fill:#444}.aigc-chart .subtitle{fill:#555}</style>",
           f'<rect width="{width}" height="{height}" fill="#fff"/>']
    if title:
        out.append(f'<text class="chart-title" x="{width / 2:g}" y="24" text-anchor="middle">{_e(title)}</text>')
    if subtitle:
        out.append(f'<text class="subtitle" x="{width / 2:g}" y="{head - 12:g}" text-anchor="middle">'
                   f"{_e(subtitle)}</text>")
    out += _axes_svg(ax, ay, rect, x_title, y_title)
    colors, legend, crossed = {}, [], []
    for s, pts in drawn:
        color = s.color or colors.setdefault(s.label, PALETTE[len(colors) % len(PALETTE)])
        lines, along = _series_svg(s, color, pts, ax, ay, marker_r)
        out += lines
        crossed += along
        if s.legend and s.label:
            legend.append((s, color))
    if legend:
        out += _legend_svg(legend, _legend_box([s for s, _ in legend], rect, crossed))
    out.append("</svg>")
    return "\n".join(out) + "\n"
