"""The study's numbers, summarised: means and standard errors over seeds, plot series, and the
answers to its four questions as sentences built from the figures (nothing typed by hand)."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

# metrics where a smaller number is the better model; every other one is better when larger
LOWER_IS_BETTER = {"domain_fd", "kid_randconv", "kid", "fid", "nats_per_char", "bits_per_char", "copy_rate"}
GROUP_KEYS = ("task", "fraction", "augment", "steps_multiplier", "metric")


def summarize(rows: list[dict]) -> list[dict]:
    """Per (task, fraction, augment, steps_multiplier, metric): mean, standard error of the mean
    over seeds (None with one seed), the seeds' count and values."""
    groups = defaultdict(list)
    for r in rows:
        if r.get("value") is not None:
            groups[tuple(r[k] for k in GROUP_KEYS)].append((r["seed"], float(r["value"])))
    out = []
    for key in sorted(groups, key=lambda k: (k[0], k[4], k[2], k[3], k[1])):
        vals = np.array([v for _, v in sorted(groups[key])])
        sem = float(vals.std(ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else None
        out.append({**dict(zip(GROUP_KEYS, key)), "mean": float(vals.mean()), "sem": sem, "n": len(vals),
                    "values": [float(v) for v in vals]})
    return out


def series(summary: list[dict]) -> dict:
    """{task: {metric: [line, ...]}}: one line per (steps multiplier, augmentation), quality
    against data fraction, with error bars (the standard error; 0 with one seed)."""
    lines = defaultdict(dict)
    for g in summary:
        k = (g["steps_multiplier"], g["augment"])
        line = lines[(g["task"], g["metric"])].setdefault(k, {
            "label": f"{g['steps_multiplier']:g}x steps" + (f", augment {'on' if g['augment'] else 'off'}"
                                                            if g["task"] == "images" else ""),
            "steps_multiplier": g["steps_multiplier"], "augment": g["augment"], "x": [], "y": [], "err": []})
        line["x"].append(g["fraction"])
        line["y"].append(g["mean"])
        line["err"].append(g["sem"] or 0.0)
    out = defaultdict(dict)
    for (task, metric), by in lines.items():
        out[task][metric] = [by[k] for k in sorted(by)]
    return dict(out)


# -- answers ----------------------------------------------------------------------------------------
class _Table:
    def __init__(self, summary: list[dict], task: str, metric: str):
        self.task, self.metric = task, metric
        self.g = {(s["fraction"], s["augment"], s["steps_multiplier"]): s for s in summary
                  if s["task"] == task and s["metric"] == metric}
        self.fractions = sorted({k[0] for k in self.g})
        self.mults = sorted({k[2] for k in self.g})
        augs = sorted({k[1] for k in self.g})
        self.augs = augs
        self.aug = True if True in augs else (augs[0] if augs else False)   # the recipe's setting
        self.lower = metric in LOWER_IS_BETTER

    def get(self, f, m, aug=None):
        return self.g.get((f, self.aug if aug is None else aug, m))

    def gain(self, a: dict, b: dict) -> float:
        """How much better b is than a (positive: better), in the metric's units."""
        return (a["mean"] - b["mean"]) if self.lower else (b["mean"] - a["mean"])

    def clear(self, a: dict, b: dict) -> bool:
        """The difference exceeds twice the combined standard error (False when unknown)."""
        if a["sem"] is None or b["sem"] is None:
            return False
        return abs(a["mean"] - b["mean"]) > 2 * math.hypot(a["sem"], b["sem"])

    def change(self, a: dict, b: dict) -> str:
        pct = (b["mean"] - a["mean"]) / abs(a["mean"]) * 100 if a["mean"] else float("nan")
        verdict = "better" if self.gain(a, b) > 0 else "worse"
        pct_s = f"{pct:+.0f}%, " if math.isfinite(pct) else ""
        if a["sem"] is None or b["sem"] is None:
            return f"{self.metric} from {_fmt(a)} to {_fmt(b)} ({pct_s}{verdict}; one seed, no error bar)"
        sure = "beyond" if self.clear(a, b) else "within"
        return (f"{self.metric} from {_fmt(a)} to {_fmt(b)} ({pct_s}{verdict}, {sure} twice the seeds' "
                f"standard error)")

    def where(self) -> str:
        aug = f", augment {'on' if self.aug else 'off'}" if self.task == "images" else ""
        side = "lower" if self.lower else "higher"
        return f"{self.task} ({self.metric}, {side} is better{aug})"


def _fmt(g: dict) -> str:
    return f"{g['mean']:.4g}" + (f" ± {g['sem']:.2g}" if g["sem"] is not None else "")


def _pct(f: float) -> str:
    return f"{f * 100:g}%"


def _more_data(t: _Table) -> list[str]:
    out = []
    for m in t.mults:
        for f, f2 in zip(t.fractions, t.fractions[1:]):
            a, b = t.get(f, m), t.get(f2, m)
            if a and b:
                out.append(f"{t.where()}, {m:g}x steps: {f2 / f:.3g}x more data ({_pct(f)} -> {_pct(f2)}) took "
                           f"{t.change(a, b)}.")
    return out


def _more_compute(t: _Table) -> list[str]:
    out = []
    for f in t.fractions:
        for m, m2 in zip(t.mults, t.mults[1:]):
            a, b = t.get(f, m), t.get(f, m2)
            if a and b:
                out.append(f"{t.where()}, {_pct(f)} of the data: {m2 / m:.3g}x the steps ({m:g}x -> {m2:g}x) took "
                           f"{t.change(a, b)}.")
    return out


def _augmentation(t: _Table) -> list[str]:
    if t.task != "images" or not {False, True} <= set(t.augs):
        return []
    out, helps = [], []
    for f in t.fractions:
        for m in t.mults:
            off, on = t.get(f, m, False), t.get(f, m, True)
            if off and on:
                out.append(f"{t.task} ({t.metric}), {_pct(f)} of the data, {m:g}x steps: DiffAugment took "
                           f"{t.change(off, on)}.")
                if t.gain(off, on) > 0 and t.clear(off, on):
                    helps.append(f"{_pct(f)} at {m:g}x")
    out.append(f"{t.task} ({t.metric}): augmentation was clearly worth it at " + ", ".join(helps) + "."
               if helps else f"{t.task} ({t.metric}): augmentation was not clearly worth it at any size measured.")
    return out


def _crossing(t: _Table) -> list[str]:
    if len(t.mults) < 2:
        return []
    m, m2 = t.mults[0], t.mults[-1]
    out, prefs = [], []
    for f, f2 in zip(t.fractions, t.fractions[1:]):
        a, data, steps = t.get(f, m), t.get(f2, m), t.get(f, m2)
        if not (a and data and steps):
            continue
        gd, gs = t.gain(a, data), t.gain(a, steps)
        prefs.append((f, gd > gs))
        out.append(f"{t.where()}: from {_pct(f)} of the data at {m:g}x steps, {f2 / f:.3g}x more data reached "
                   f"{_fmt(data)}, {m2 / m:.3g}x the steps {_fmt(steps)}: more "
                   f"{'data' if gd > gs else 'steps'} was worth more.")
    if prefs:
        flips = [f2 for (f1, p1), (f2, p2) in zip(prefs, prefs[1:]) if p1 != p2]
        if not flips:
            what = "data" if prefs[0][1] else "steps"
            out.append(f"{t.where()}: the curves do not cross in the range measured: more {what} was worth more "
                       f"at every data size from {_pct(prefs[0][0])} to {_pct(prefs[-1][0])}.")
        else:
            first = "data" if prefs[0][1] else "steps"
            other = "steps" if first == "data" else "data"
            out.append(f"{t.where()}: the curves cross near {_pct(flips[0])} of the data: below it more {first} "
                       f"was worth more, from there more {other}.")
    return out


CORNER_METRICS = ("fid", "kid")       # measured at the grid's corners only (aigc.study.corners)
CORNER_QUESTION = "At the grid's corners, what does Inception FID say?"

QUESTIONS = (
    ("more_data", "At equal compute, what does 10x more data buy?", _more_data),
    ("more_compute", "What does 4x more compute buy at each data size?", _more_compute),
    ("augmentation", "When is augmentation worth it?", _augmentation),
    ("crossing", "Where do the curves cross: when is more data worth more than more steps?", _crossing),
)


def answers(summary: list[dict], primary: dict | None = None) -> list[dict]:
    """[{"question", "key", "task", "metric", "sentences"}] for each task's primary metric (the
    first metric it records when `primary` does not name one)."""
    primary = dict(primary or {})
    out = []
    for task in sorted({s["task"] for s in summary}):
        metric = primary.get(task) or next(s["metric"] for s in summary if s["task"] == task)
        t = _Table(summary, task, metric)
        if not t.g:
            continue
        for key, question, fn in QUESTIONS:
            sentences = fn(t)
            if sentences:
                out.append({"key": key, "question": question, "task": task, "metric": metric,
                            "sentences": sentences})
        for extra in CORNER_METRICS:
            t = _Table(summary, task, extra)
            if extra != metric and t.g:
                out.append({"key": "corners", "question": CORNER_QUESTION, "task": task, "metric": extra,
                            "sentences": _more_data(t) + _more_compute(t) + _augmentation(t)})
    return out
