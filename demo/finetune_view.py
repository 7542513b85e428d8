"""What the Fine-tune tab's job panel shows, shaped from a job's status: curves a person can read
(SVG charts drawn by aigc.plots, the legend inside the plot, short series names, optional smoothing
and log scale), the latest sample text of a text job, the job list's labels and whether Cancel
applies. No gradio here: the handlers wrap these."""
from __future__ import annotations

import html
from pathlib import Path

from aigc.finetune.jobs import QUALITY_SERIES
from aigc.finetune.store import one_line
from aigc.plots import PALETTE, Series, line_chart

SMOOTHING = 0.6               # exponential moving average weight of the previous point (TensorBoard's default)
SAMPLE_TEXT_MAX = 4000        # characters of a sample text shown while training
CANCELLABLE = ("queued", "preparing", "running")
SHORT_SERIES = {"KID×1000": "KID×1000", "copy rate": "copy rate %", "held-out": "held-out nats/char"}


def short_series(name: str) -> str:
    """A quality series' label short enough for the plot's legend (QUALITY_HELP says what it is)."""
    return next((short for start, short in SHORT_SERIES.items() if str(name).startswith(start)), str(name))


def smooth_rows(rows: list[dict], weight: float = SMOOTHING) -> list[dict]:
    """Long-format rows {step, value, series}, each series smoothed by an exponential moving average."""
    last: dict[str, float] = {}
    out = []
    for r in rows:
        prev = last.get(r["series"])
        v = r["value"] if prev is None else weight * prev + (1 - weight) * r["value"]
        last[r["series"]] = v
        out.append({**r, "value": v})
    return out


def _by_series(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(str(r["series"]), []).append(r)
    return out


def _chart_html(series: list[Series], note: str, **kw) -> str:
    try:
        svg = line_chart(series, subtitle=note, width=600, height=300, marker_r=2.0, **kw)
    except ValueError as e:
        return f'<div class="aigc-small">{html.escape(str(e))}</div>'
    return f'<div class="aigc-curve">{svg}</div>'


def loss_chart(rows: list[dict] | None, smooth: bool = False, log_y: bool = False) -> str:
    """The loss curve as the page asked for it: an SVG (aigc.plots) with its legend inside the plot;
    `smooth`: a moving average drawn over the faint raw curve; `log_y`: a log-scale axis (a series
    that reaches zero or below is left out, and the note says so). '' with no rows yet."""
    rows = list(rows or [])
    if not rows:
        return ""
    groups = _by_series(rows)
    notes = []
    if log_y:
        bad = sorted(k for k, rs in groups.items() if not all(r["value"] > 0 for r in rs))
        groups = {k: rs for k, rs in groups.items() if k not in bad}
        notes.append("log scale" + (f"; left out (not positive): {', '.join(bad)}" if bad else ""))
    if smooth:
        notes.append(f"smoothed (moving average, weight {SMOOTHING}) over the raw curve")
    series = []
    for i, (name, rs) in enumerate(groups.items()):
        color = PALETTE[i % len(PALETTE)]
        steps, vals = [r["step"] for r in rs], [r["value"] for r in rs]
        if smooth:
            series.append(Series(name, steps, vals, color=color, opacity=0.3, width=1.2, markers=False, legend=False))
            vals = [r["value"] for r in smooth_rows(rs)]
        series.append(Series(name + (" (smoothed)" if smooth else ""), steps, vals, color=color))
    return _chart_html(series, "; ".join(notes), title="loss", x_title="step", y_title="loss", log_y=log_y)


def quality_chart(rows: list[dict] | None) -> str:
    """Quality over time as an SVG (short series names, legend inside); '' with no rows yet."""
    rows = quality_rows(rows)
    if not rows:
        return ""
    series = [Series(name, [r["step"] for r in rs], [r["value"] for r in rs])
              for name, rs in _by_series(rows).items()]
    return _chart_html(series, "", title="quality over time", x_title="step", y_title="value")


def quality_rows(rows: list[dict] | None) -> list[dict]:
    return [{**r, "series": short_series(r["series"])} for r in rows or []]


def sample_text(run_dir: Path) -> str:
    """The latest text a text job wrote while training (its run's samples/step-*.txt), or ''."""
    d = Path(run_dir) / "samples"
    try:
        files = sorted(d.glob("step-*.txt")) if d.is_dir() else []
        if not files or files[-1].is_symlink():
            return ""
        with open(files[-1], encoding="utf-8", errors="replace") as f:
            return f.read(SAMPLE_TEXT_MAX)
    except OSError:
        return ""


def sample_caption(run_dir: Path) -> str:
    d = Path(run_dir) / "samples"
    files = sorted(d.glob("step-*.txt")) if d.is_dir() else []
    if not files:
        return "latest sample text"
    step = files[-1].stem.split("-")[-1].lstrip("0") or "0"
    return f"latest sample text (step {int(step):,})"


def job_label(j: dict) -> str:
    return f"{j['name']} — {j['state']} ({j['id']})"


def can_cancel(s: dict | None) -> bool:
    return bool(s) and s.get("state") in CANCELLABLE


def fmt_eta(s) -> str:
    if s is None:
        return "estimating…"
    s = int(round(s))
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def status_text(s: dict) -> str:
    lines = [f"**{html.escape(s['name'])}** — {s['state']}"]
    if s["state"] == "queued" and s.get("position"):
        lines.append(f"place in the queue: {s['position']}")
    if s["state"] in ("preparing", "running"):
        line = f"step {s['step']:,} / {s['total']:,}, about {fmt_eta(s.get('eta_s'))} left"
        if s.get("budget_s"):
            line += (f" (time limit {fmt_eta(s['budget_s'])}: {fmt_eta(s.get('elapsed_s') or 0)} used; "
                     "it stops at whichever of steps and time comes first)")
        lines.append(line)
    if s.get("message"):
        lines.append(html.escape(one_line(s["message"], 300)))
    if s["state"] == "failed" and s.get("error") and one_line(s["error"]) not in str(s.get("message")):
        lines.append(html.escape(one_line(s["error"], 300)) + " (see details)")
    if s["state"] == "done" and s.get("model_path"):
        where = ("the app's text models" if (s.get("report") or {}).get("kind") == "text"
                 else "the Image tab's model list")
        lines.append(f"saved as user model `{Path(s['model_path']).name}` (visible to you only until you share "
                     f"it): it is in {where} now; open **Compare** below to see it next to its base")
    q = quality_text(s)
    if q:
        lines.append(q)
    if s.get("resumable"):
        lines.append("press Resume to continue" + (f" from step {s['checkpoint_step']:,}" if s.get("checkpoint_step") else ""))
    return "\n\n".join(lines)

def quality_text(s: dict) -> str:
    last, first = s.get("quality_last") or {}, s.get("quality_first") or {}
    parts = []
    for k, v in last.items():
        label, scale = QUALITY_SERIES[k]
        txt = f"{label.split(' (')[0]} {v * scale:.3g}"
        if k in first and first is not last:
            txt += f" (start {first[k] * scale:.3g})"
        parts.append(txt)
    return ("quality: " + ", ".join(parts)) if parts else ""

def progress_bar(s: dict) -> str:
    frac = 1.0 if s["state"] == "done" else (s["step"] / s["total"] if s.get("total") else 0.0)
    if s["state"] != "done" and s.get("budget_s"):        # a time limit: whichever is further along
        frac = max(frac, (s.get("elapsed_s") or 0.0) / s["budget_s"])
    return (f'<progress max="1000" value="{int(1000 * min(max(frac, 0.0), 1.0))}" style="width:100%"></progress>'
            f"<div>{100 * frac:.0f}%</div>")
