"""The study's figures: one SVG per task (aigc.plots), its primary metric against the share of the
training data on a log axis, one colour per compute level, augmentation on dashed and off solid,
each point the mean over the seeds with a bar of ± one standard error (aigc.study.summary).

    write_figures(load_results("runs/study"), "runs/study/figures")   # -> [Path, ...]
"""
from __future__ import annotations

from pathlib import Path

from aigc.fileio import atomic_write_text
from aigc.plots import PALETTE, Series, line_chart

TASK_TITLES = {"images": "Images (dcgan)", "text": "Text (char-lm)"}
METRIC_TITLES = {"domain_fd": "domain FD (lower is better)", "nats_per_char": "held-out nats/char (lower is better)",
                 "kid_randconv": "KID, random-conv features (lower is better)"}
Y_TITLES = {"domain_fd": "domain FD", "nats_per_char": "nats/char", "kid_randconv": "KID (random conv)"}


def _primary(results: dict, task: str) -> str | None:
    metric = (results.get("recipe", {}).get(task) or {}).get("primary")
    by_metric = results.get("series", {}).get(task, {})
    return metric if metric in by_metric else next(iter(by_metric), None)


def task_figure(results: dict, task: str) -> str | None:
    """The SVG of one task's primary metric (None when the study measured none)."""
    metric = _primary(results, task)
    if metric is None:
        return None
    groups = [g for g in results["summary"] if g["task"] == task and g["metric"] == metric]
    mults = sorted({g["steps_multiplier"] for g in groups})
    augs = sorted({g["augment"] for g in groups})
    seeds = sorted({g["n"] for g in groups})
    lines = []
    for i, m in enumerate(mults):
        for aug in augs:
            pts = sorted((g["fraction"], g["mean"], g["sem"]) for g in groups
                         if g["steps_multiplier"] == m and g["augment"] == aug)
            if not pts:
                continue
            label = f"{m:g}x steps" + (f", augment {'on' if aug else 'off'}" if task == "images" else "")
            lines.append(Series(label, [p[0] for p in pts], [p[1] for p in pts],
                                y_low=[p[1] - p[2] if p[2] is not None else None for p in pts],
                                y_high=[p[1] + p[2] if p[2] is not None else None for p in pts],
                                dashed=bool(aug), color=PALETTE[i % len(PALETTE)]))
    n = "/".join(str(s) for s in seeds)
    subtitle = (f"mean over {n} seed{'s' if seeds != [1] else ''}; bars: ± one standard error of the mean"
                + ("; dashed: DiffAugment on" if task == "images" and True in augs else ""))
    return line_chart(lines, title=f"{TASK_TITLES.get(task, task)}: {METRIC_TITLES.get(metric, metric)}",
                      subtitle=subtitle, x_title="share of the training data (log scale)",
                      y_title=Y_TITLES.get(metric, metric), log_x=True)


def study_figures(results: dict) -> dict[str, str]:
    """{file name: SVG} for every task the study measured, e.g. {"text-nats_per_char.svg": "<svg ..."}."""
    out = {}
    for task in sorted(results.get("series", {})):
        svg = task_figure(results, task)
        if svg is not None:
            out[f"{task}-{_primary(results, task)}.svg"] = svg
    return out


def write_figures(results: dict, out_dir) -> list[Path]:
    """Write study_figures(results) into out_dir, each file atomically; returns the paths written."""
    out_dir = Path(out_dir)
    paths = []
    for name, svg in study_figures(results).items():
        atomic_write_text(out_dir / name, svg)
        paths.append(out_dir / name)
    return paths
