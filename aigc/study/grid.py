"""The data-vs-compute grid: quality as a function of data fraction, augmentation and steps, over seeds.

    results = run_grid("runs/study", {"seeds": [0, 1]}, on_progress=print)
    results = merge_studies("runs/study", ["runs/study-text", "runs/study-images"])   # parallel runs
    results = load_results("runs/study")     # {"cells": [...], "summary": [...], "answers": [...], ...}

A cell is (task, fraction, augment, steps_multiplier, seed). Its run folder is
<out>/cells/<key>/ (an ordinary training run folder); its result goes into <out>/study.json
atomically once it is measured, and a cell with a result is never trained again; at the end the
figures (one SVG per task, aigc.study.figures) go to <out>/figures/. A cell
interrupted mid-run continues from its last checkpoint (state.pt); one that finished training
but was not measured is only measured. Fractions that leave fewer than `min_examples` examples
are skipped with a note.

Image cells train the dcgan on a seeded, class-balanced subset of MNIST's training images (the
subsets of one seed are nested: its 1% lies inside its 10%), DiffAugment on or off, and are
judged on generated samples against the held-out test images by the domain metrics. Text cells
train the char-lm on seeded chunks of the Shakespeare training plays and are judged by held-out
nats/char on the three held-out plays.
"""
from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from aigc.fileio import atomic_write_json

FORMAT = "aigc-study/1"
TASKS = ("images", "text")

DEFAULT_SPEC: dict = {
    "tasks": ["images", "text"],
    "fractions": [0.01, 0.1, 1.0],
    "augment": [False, True],          # images only: DiffAugment off / on
    "steps_multipliers": [1, 4],
    "seeds": [0, 1, 2],
    "device": "cpu",
    "images": {
        "dataset": "mnist",
        "base_steps": 300,             # the whole grid in <= 4 h of 2 CPU cores: aigc/study/README.md
        "batch_size": 64,              # the shipped dcgan-mnist recipe's batch
        "config": {"ngf": 16, "ndf": 16},   # the shipped dcgan at half width: 2.9x cheaper a step, so 300 steps fit
        "tiny": False,
        "precision": "fp32",
        "metrics": ["domain_fd", "kid_randconv", "label_acc", "diversity"],
        "eval_n": 1000,                # samples per measurement
        "corner_metrics": [],          # e.g. ["fid"]: also measured at the grid's 8 corners; ~75 thread-min more
        "corner_eval_n": 500,          # Inception runs ~3 images/s a thread; biased upward, compare corners only
        "corner_seed": 0,              # a fixed seed, so a grid split over processes by seed measures corners once
        "min_examples": 16,
        "ckpt_every": 500,
    },
    "text": {
        "dataset": "shakespeare",
        "base_steps": 150,             # 0.66 CPU s a step: 45 base-step units fit 1.3 h of one thread
        "batch_size": 32,              # the char-shakespeare-small recipe
        "config": {"preset": "cpu", "n_embd": 192},   # char-shakespeare-small's model
        "tiny": False,
        "precision": "fp32",
        "lr": 2e-3,
        "warmup": 200,                 # capped at a tenth of a cell's steps
        "chunk_chars": 4096,           # the text is subsampled in chunks of this many characters
        "eval_windows": 200,           # held-out windows per measurement
        "min_examples": 16,            # windows
        "ckpt_every": 500,
    },
}
_TOP_KEYS = {"tasks", "fractions", "augment", "steps_multipliers", "seeds", "device", "images", "text"}


@dataclass(frozen=True)
class Cell:
    task: str
    fraction: float
    augment: bool
    steps_multiplier: float
    seed: int

    @property
    def key(self) -> str:
        aug = "aug" if self.augment else "noaug"
        return f"{self.task}-f{self.fraction:g}-{aug}-x{self.steps_multiplier:g}-s{self.seed}"


# -- the spec ---------------------------------------------------------------------------------------
def make_spec(spec: dict | None = None) -> dict:
    """The defaults with `spec` laid over them (the task dicts key by key), checked; ValueError
    names the first bad field."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"unknown study spec field(s) {', '.join(unknown)}; known: {', '.join(sorted(_TOP_KEYS))}")
    out = copy.deepcopy(DEFAULT_SPEC)
    for k, v in spec.items():
        if k in TASKS:
            if not isinstance(v, dict):
                raise ValueError(f"spec field {k!r} must be a dict")
            bad = sorted(set(v) - set(out[k]))
            if bad:
                raise ValueError(f"unknown {k} field(s) {', '.join(bad)}; known: {', '.join(sorted(out[k]))}")
            out[k].update(copy.deepcopy(v))
        else:
            out[k] = copy.deepcopy(v)
    _check_spec(out)
    return out


def _check_spec(s: dict) -> None:
    if not s["tasks"] or any(t not in TASKS for t in s["tasks"]):
        raise ValueError(f"tasks must be some of {', '.join(TASKS)}, got {s['tasks']!r}")
    for f in s["fractions"]:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise ValueError(f"fractions must be numbers in (0, 1], got {f!r}")
    for m in s["steps_multipliers"]:
        if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m <= 100:
            raise ValueError(f"steps multipliers must be numbers in (0, 100], got {m!r}")
    for seed in s["seeds"]:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seeds must be whole numbers >= 0, got {seed!r}")
    if any(not isinstance(a, bool) for a in s["augment"]) or not s["augment"]:
        raise ValueError(f"augment must be a list of true/false, got {s['augment']!r}")
    for t in TASKS:
        steps = s[t]["base_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{t}.base_steps must be a whole number >= 1, got {steps!r}")
    cs = s["images"]["corner_seed"]
    if isinstance(cs, bool) or not isinstance(cs, int) or cs < 0:
        raise ValueError(f"images.corner_seed must be a whole number >= 0, got {cs!r}")
    if not s["fractions"] or not s["steps_multipliers"] or not s["seeds"]:
        raise ValueError("fractions, steps_multipliers and seeds must each name at least one value")


def cells(spec: dict) -> list[Cell]:
    """Every cell of a (checked) spec; text cells have no augmentation setting (always off)."""
    out = []
    for task in spec["tasks"]:
        augs = sorted(set(spec["augment"])) if task == "images" else [False]
        for f in sorted(set(spec["fractions"])):
            for a in augs:
                for m in sorted(set(spec["steps_multipliers"])):
                    for seed in spec["seeds"]:
                        out.append(Cell(task, float(f), a, float(m), int(seed)))
    return out


def cell_steps(spec: dict, cell: Cell) -> int:
    return max(1, int(round(spec[cell.task]["base_steps"] * cell.steps_multiplier)))


def is_corner(spec: dict, cell: Cell) -> bool:
    """A corner: the smallest or largest fraction at the lowest or highest compute, of the corner seed."""
    fr, ms = spec["fractions"], spec["steps_multipliers"]
    return (cell.task == "images" and cell.seed == spec["images"]["corner_seed"] and cell.fraction in (min(fr), max(fr))
            and cell.steps_multiplier in (min(ms), max(ms)))


def plan(spec: dict | None = None) -> dict:
    """How big a study is: cells and optimiser steps per task (for sizing and progress bars)."""
    spec = make_spec(spec)
    out = {}
    for c in cells(spec):
        p = out.setdefault(c.task, {"cells": 0, "steps": 0})
        p["cells"] += 1
        p["steps"] += cell_steps(spec, c)
    return out


# -- study.json -------------------------------------------------------------------------------------
def study_path(out_dir) -> Path:
    return Path(out_dir) / "study.json"


def read_study(out_dir) -> dict:
    """The raw study.json (an empty study when there is none yet)."""
    p = study_path(out_dir)
    if not p.is_file():
        return {"format": FORMAT, "recipe": {}, "cells": [], "runs": {}, "notes": []}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: not a readable study.json ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{p}: not a study.json of format {FORMAT}")
    return data


def load_results(out_dir) -> dict:
    """study.json with its summary: per (task, fraction, augment, multiplier, metric) the mean and
    standard error over seeds, the answers to the study's questions, and plot series."""
    from aigc.study.summary import answers, series, summarize
    if not study_path(out_dir).is_file():
        raise ValueError(f"{out_dir}: no study.json; run the study first")
    data = read_study(out_dir)
    summary = summarize(data["cells"])
    primary = {t: r.get("primary") for t, r in data.get("recipe", {}).items()}
    return {**data, "summary": summary, "answers": answers(summary, primary), "series": series(summary)}


@contextlib.contextmanager
def study_lock(out_dir: Path):
    """One runner per study folder: a second one is refused instead of training cells twice."""
    out_dir.mkdir(parents=True, exist_ok=True)
    f = open(out_dir / ".lock", "w")
    try:
        try:
            import fcntl
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:
            pass
        except OSError:
            raise ValueError(f"{out_dir}: another study is running in this folder") from None
        yield
    finally:
        f.close()


def _recipe(spec: dict, task: str) -> dict:
    r = {k: v for k, v in spec[task].items() if k not in ("min_examples", "ckpt_every")}
    r["primary"] = "nats_per_char" if task == "text" else spec[task]["metrics"][0]
    return r


# -- the run ----------------------------------------------------------------------------------------
def run_grid(out_dir, spec: dict | None = None, on_progress: Callable[[dict], None] | None = None) -> dict:
    """Train and measure every cell of `spec` not yet recorded in <out_dir>/study.json; returns
    load_results(out_dir). A folder holding a study with another recipe is refused."""
    from aigc.study.cells import measure_cell, prepare_data

    spec = make_spec(spec)
    out_dir = Path(out_dir)
    emit = on_progress or (lambda e: None)
    with study_lock(out_dir):
        study = read_study(out_dir)
        for task in spec["tasks"]:
            rec = _recipe(spec, task)
            old = study["recipe"].get(task)
            if old is not None and old != rec and any(r["task"] == task for r in study["cells"]):
                raise ValueError(f"{out_dir} holds a study with another {task} recipe; choose a new output folder")
            study["recipe"][task] = rec
        study["spec"] = spec
        todo = cells(spec)
        for i, cell in enumerate(todo, 1):
            if cell.key in study["runs"]:
                continue
            data, note = prepare_data(spec, cell)
            if data is None:
                if note not in study["notes"]:
                    study["notes"].append(note)
                    atomic_write_json(study_path(out_dir), study)
                emit({"phase": "skip", "index": i, "total": len(todo), "cell": asdict(cell), "text": note})
                continue
            steps = cell_steps(spec, cell)
            emit({"phase": "cell", "index": i, "total": len(todo), "cell": asdict(cell), "steps": steps,
                  "text": f"[{i}/{len(todo)}] {cell.key}: {len(data)} examples, {steps} steps"})
            run_dir = out_dir / "cells" / cell.key
            values, run = measure_cell(spec, cell, data, run_dir, steps, corner=is_corner(spec, cell))
            base = asdict(cell)
            study["cells"] = [r for r in study["cells"] if _cell_of(r) != base]
            study["cells"] += [{**base, "metric": k, "value": v} for k, v in values.items()]
            study["runs"][cell.key] = run
            atomic_write_json(study_path(out_dir), study)
            emit({"phase": "cell_done", "index": i, "total": len(todo), "cell": base, "values": values,
                  "text": f"[{i}/{len(todo)}] {cell.key}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in values.items())})
        if not study_path(out_dir).is_file():
            atomic_write_json(study_path(out_dir), study)
    results = load_results(out_dir)
    figures = _write_figures(results, out_dir)
    emit({"phase": "done", "text": f"{len(results['runs'])} cells measured; results in {study_path(out_dir)}"
          + (f", figures in {out_dir / 'figures'}" if figures else "")})
    return results


def merge_studies(out_dir, sources) -> dict:
    """Gather studies run in parallel (e.g. one process per task or per seed) into <out_dir>/study.json;
    returns load_results(out_dir). Refused when two sources hold one task with different recipes or
    measured the same cell; the merged spec names every task and seed measured."""
    merged = {"format": FORMAT, "recipe": {}, "cells": [], "runs": {}, "notes": []}
    seeds, tasks, spec = set(), [], None
    for src in sources:
        s = read_study(src)
        if not s["runs"]:
            raise ValueError(f"{src}: holds no measured cell")
        for task, rec in s["recipe"].items():
            if not any(r["task"] == task for r in s["cells"]):
                continue
            if merged["recipe"].setdefault(task, rec) != rec:
                raise ValueError(f"{src}: its {task} recipe differs from an earlier source's; not one study")
            if task not in tasks:
                tasks.append(task)
        twice = sorted(set(s["runs"]) & set(merged["runs"]))
        if twice:
            raise ValueError(f"{src}: cell {twice[0]} is measured in two sources")
        merged["runs"].update(s["runs"])
        merged["cells"] += s["cells"]
        merged["notes"] += [n for n in s["notes"] if n not in merged["notes"]]
        seeds |= {r["seed"] for r in s["cells"]}
        spec = spec or s.get("spec")
    if spec is not None:
        merged["spec"] = {**spec, "tasks": [t for t in TASKS if t in tasks], "seeds": sorted(seeds)}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(study_path(out_dir), merged)
    results = load_results(out_dir)
    _write_figures(results, out_dir)
    return results


def _write_figures(results: dict, out_dir) -> list:
    """<out_dir>/figures/<task>-<metric>.svg from the results (aigc.study.figures)."""
    from aigc.study.figures import write_figures
    return write_figures(results, Path(out_dir) / "figures")


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _cell_of(row: dict) -> dict:
    return {k: row[k] for k in ("task", "fraction", "augment", "steps_multiplier", "seed")}
