""""What would more data buy?" for a person's own upload.

    res = study_upload("cats.zip", "dcgan", minutes=10, out="runs/cats-study")
    res["recommendation"]   # "collect more images: doubling them is predicted to lower kid_randconv by ~30% ..."

The upload is prepared (checked, deduplicated) as a fine-tune would be; a seeded share of it is held
out. Short runs of equal length train on 25%, 50% and 100% of the rest (the subsets nested), and one
more run trains on 100% for twice the steps. Each is measured on the held-out split (images:
kid_randconv against it, and copy_rate against the run's own training images; text: held-out
nats/char). A power law fitted to quality against training-set size predicts what twice the data
would give; the recommendation compares that with what twice the steps gave. When duplicates of
training images were removed, one more 1x run trains on 100% with them put back, and
`duplicates_cost` says what they did to the copy rate and KID.

The run length comes from the budget: a probe of a few steps times one step, and every run gets
the same number of steps so that the runs together fit `minutes`. A budget too small for
MIN_STEPS steps per run is refused with the minimum it would need.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from aigc.fileio import atomic_write_json

FRACTIONS = (0.25, 0.5, 1.0)
MIN_EXAMPLES = 8          # a training subset smaller than this (images, or text windows) measures nothing
MIN_STEPS = 20            # the shortest run worth measuring
PROBE_STEPS = 4           # steps of a probe run; its later steps are timed to size the runs
HELDOUT_SHARE = 0.2       # images held out for measuring (text: aigc.data.uploads.split_heldout)
MIN_HELDOUT = 4
EVAL_SHARE = 0.2          # share of the budget kept for measuring and model building
BOOTSTRAP = 200


def _prepare(data_path, base, resolution, tiny, overrides):
    """(kind "images"/"text", training pool, held-out set, duplicates removed, notes, the removed
    duplicates of training-pool images (ImageData) or None)."""
    from aigc.data.uploads import upload_kind
    from aigc.finetune.run import check_modality
    upload = upload_kind(data_path)
    check_modality(base, upload)
    if upload == "images":
        return _prepare_images(data_path, base, resolution)
    return _prepare_text(data_path, base, tiny, overrides)


def _prepare_images(data_path, base, resolution):
    from aigc.data.images import ImageData
    from aigc.data.uploads import prepare_image_zip
    from aigc.finetune.run import image_fit_problem, image_resolution
    prep = prepare_image_zip(data_path, resolution=image_resolution(base, resolution))
    data = prep.data
    problem = image_fit_problem(base, data)
    if problem:
        raise ValueError(problem)
    if base.path is not None and data.labels is not None and not (base.config or {}).get("config", {}).get("num_classes"):
        data.labels, data.class_names = None, []    # an unconditional base ignores folders
    dup = prep.report["duplicates"]
    order = np.random.default_rng(0).permutation(len(data))
    n_held = max(MIN_HELDOUT, int(round(HELDOUT_SHARE * len(data))))
    if len(data) - n_held < MIN_EXAMPLES:
        raise ValueError(f"{Path(data_path).name}: {len(data)} images are too few for a data study "
                         f"(need {n_held + MIN_EXAMPLES}: {n_held} held out and {MIN_EXAMPLES} to train on)")

    def part(src, idx):
        idx = np.sort(idx)
        return ImageData(name=data.name, images=np.ascontiguousarray(src.images[idx]),
                         labels=None if src.labels is None or data.labels is None else src.labels[idx],
                         class_names=list(data.class_names))
    notes = [f"held out {n_held} of {len(data)} images to measure on"]
    extras = None
    if prep.removed is not None and len(prep.removed):
        in_pool = ~np.isin(prep.removed_of, order[:n_held])
        if (~in_pool).any():
            k = int((~in_pool).sum())
            notes.append(f"{k} duplicate{' of a held-out image is' if k == 1 else 's of held-out images are'} left "
                         f"out of the run with duplicates (they would leak into the held-out measurement)")
        if in_pool.any():
            extras = part(prep.removed, np.flatnonzero(in_pool))
    return ("images", part(data, order[n_held:]), part(data, order[:n_held]), int(dup["exact"] + dup["near"]),
            notes, extras)


def _prepare_text(data_path, base, tiny, overrides):
    from aigc.data.text import TextData
    from aigc.data.uploads import prepare_text, split_heldout
    from aigc.finetune.run import text_block_size
    tok = None
    if base.path is not None:
        from aigc.checkpoint import from_pretrained
        tok = from_pretrained(base.path).tokenizer
    block = text_block_size(base, tiny=tiny, overrides=overrides)
    prep = prepare_text(data_path, block_size=block, tokenizer=tok)
    if tok is None:
        from aigc.text.tokenizer import CharTokenizer
        tok = CharTokenizer.from_text(prep.text)
    train_text, held, note = split_heldout(prep.text, block)
    if not held:
        raise ValueError(f"{Path(data_path).name}: {note}; a data study measures on held-out text")
    name = f"upload:{Path(data_path).stem}"
    pool = TextData(name=name, text=train_text, tokenizer=tok, block_size=block)
    heldout = TextData(name=name, text=held, tokenizer=tok, block_size=block, split="heldout")
    return "text", pool, heldout, 0, [note], None


def _subset(kind: str, pool, fraction: float):
    from aigc.study.cells import image_subset, text_subset
    if fraction >= 1.0:
        return pool
    if kind == "images":
        return image_subset(pool, fraction, 0)
    from aigc.data.text import TextData
    text = text_subset(pool.text, fraction, 0, chunk=2 * pool.block_size)
    if len(text) < pool.block_size + 2:
        return None
    return TextData(name=pool.name, text=text, tokenizer=pool.tokenizer, block_size=pool.block_size)


def _train(kind, base, data, out: Path, steps: int, seed: int, device: str, tiny: bool, overrides: dict,
           batch_size: int, max_minutes: float | None, log_every: int | None = None) -> Path:
    from aigc.train.loop import TrainOptions, train
    opts = TrainOptions(model=base.kind, data=data.name, out=str(out), max_steps=steps, max_minutes=max_minutes,
                        batch_size=min(batch_size, len(data)), device=device, seed=seed,
                        tiny=tiny and base.path is None, config=dict(overrides or {}),
                        init_from=None if base.path is None else str(base.path), progress=False, diffaug=True,
                        eval_every=0, log_every=log_every or max(1, min(50, steps)), sample_every=steps, ckpt_every=max(steps, 1000))
    return train(opts, data=data)


def _measure(kind: str, model_dir: Path, data, heldout, eval_n: int) -> dict:
    from aigc.checkpoint import from_pretrained
    model = from_pretrained(model_dir).eval()
    if kind == "text":
        return {"nats_per_char": float(model.nats_per_char(heldout.ids, max_windows=eval_n, batch_size=64))}
    from aigc.eval import evaluate
    kid = evaluate(model, heldout.name, metrics=["kid_randconv"], n=eval_n, seed=0, reference=heldout)
    copy = evaluate(model, data.name, metrics=["copy_rate"], n=eval_n, seed=0, reference=data)
    return {"kid_randconv": float(kid["kid_randconv"]), "copy_rate": float(copy["copy_rate"])}


def _step_time(run_dir: Path) -> float:
    """Seconds per step of a probe run, from its per-step log; the first step (which also counts
    FLOPs) and the set-up are left out."""
    import json
    times = [json.loads(ln)["time_s"] for ln in (run_dir / "stats.jsonl").read_text().splitlines() if ln.strip()]
    gaps = np.diff(times)
    return max(float(np.median(gaps)) if len(gaps) else float(times[-1]), 1e-3)


def _check_minutes(minutes) -> float:
    from aigc.limits import FINETUNE_MINUTES_MAX, check_number
    m = check_number(minutes, "the time budget")
    if not 0 < m <= FINETUNE_MINUTES_MAX:
        raise ValueError(f"the time budget must be more than 0 and at most {FINETUNE_MINUTES_MAX:,} minutes")
    return m


def _steps_for(minutes: float, sec_per_step: float, runs_in_steps: float, max_steps: int | None,
               spent_s: float = 0.0, dup_run: bool = False) -> int:
    """Steps per run so that every run (the 2x one counting twice, and the run with duplicates put
    back when `dup_run`) fits what is left of the budget after `spent_s`; refused below MIN_STEPS
    with the budget that would do."""
    train_s = minutes * 60 * (1 - EVAL_SHARE) - spent_s
    steps = int(train_s / (runs_in_steps * sec_per_step))
    if steps < MIN_STEPS:
        need = (runs_in_steps * MIN_STEPS * sec_per_step + spent_s) / (1 - EVAL_SHARE) / 60
        raise ValueError(f"a {minutes:g}-minute budget is too small for a data study of this upload: it needs at "
                         f"least {math.ceil(need * 10) / 10:g} minutes ({MIN_STEPS} steps for each of "
                         f"{len(FRACTIONS)} fractions" + (" and the run with duplicates" if dup_run else "") +
                         f" and {2 * MIN_STEPS} at twice the steps, at about "
                         f"{sec_per_step:.2g} s a step)")
    return min(steps, max_steps) if max_steps else steps


def study_upload(data_path, base: str, minutes: float, on_progress: Callable[[dict], None] | None = None, *,
                 out=None, device: str = "cpu", seed: int = 0, tiny: bool = False, overrides: dict | None = None,
                 resolution: int | None = None, batch_size: int = 32, eval_n: int = 256,
                 max_steps: int | None = None) -> dict:
    """Train short runs on 25%, 50%, 100% of a prepared upload and once at twice the steps, fit a power
    law, and recommend more data or more steps. Returns {"fractions", "values", "metric", "exponent",
    "prediction_2x_data", "measured_2x_steps", "recommendation", "duplicates_removed", "with_duplicates",
    "duplicates_cost", ...};
    with `out`, the runs and study_upload.json are kept there. ValueError (one line) on bad input."""
    from aigc.finetune.run import resolve_base
    emit = (lambda phase, **kw: on_progress({"phase": phase, **kw})) if on_progress else (lambda phase, **kw: None)
    minutes = _check_minutes(minutes)
    if not Path(data_path).is_file():
        raise ValueError(f"{Path(data_path).name}: no such data file")
    b = resolve_base(str(base))
    if overrides and b.path is not None:
        raise ValueError("config overrides change a new model's config; a fine-tuned model keeps its base's")
    if out is not None and any((Path(out) / p).exists() for p in ("study_upload.json", "probe")):
        raise ValueError(f"{out} already holds a data study; choose a new output folder")
    kind, pool, heldout, dups, notes, extras = _prepare(data_path, b, resolution, tiny, overrides or {})
    emit("note", text="; ".join(notes))
    subsets = []
    for f in FRACTIONS:
        d = _subset(kind, pool, f)
        if d is None or len(d) < MIN_EXAMPLES:
            notes.append(f"skipped {f:.0%} of the data: {0 if d is None else len(d)} examples is fewer than {MIN_EXAMPLES}")
            emit("note", text=notes[-1])
            continue
        subsets.append((f, d))
    if len(subsets) < 2:
        raise ValueError(f"{Path(data_path).name} is too small for a data study: fewer than two of the fractions "
                         f"{', '.join(f'{f:.0%}' for f in FRACTIONS)} leave {MIN_EXAMPLES} examples to train on")
    with tempfile.TemporaryDirectory(prefix="aigc-study-") as tmp:
        root = Path(out) if out is not None else Path(tmp)
        t0 = time.time()
        _train(kind, b, pool, root / "probe", PROBE_STEPS, seed, device, tiny, overrides, batch_size, None, 1)
        sec_per_step = _step_time(root / "probe")
        n_runs = len(subsets) + 2 + (extras is not None)
        steps = _steps_for(minutes, sec_per_step, n_runs, max_steps, spent_s=time.time() - t0,
                           dup_run=extras is not None)
        cap = minutes * (1 - EVAL_SHARE) / n_runs
        res = _runs(kind, b, subsets, heldout, root, steps, cap, seed, device, tiny, overrides, batch_size,
                    eval_n, emit, extras)
    res.update(duplicates_removed=dups, notes=notes, steps=steps, heldout=len(heldout), kind=kind,
               seconds=round(time.time() - t0, 1))
    if out is not None:
        atomic_write_json(Path(out) / "study_upload.json", res)
    emit("done", text=res["recommendation"], result=res)
    return res


def _runs(kind, b, subsets, heldout, root: Path, steps, cap, seed, device, tiny, overrides, batch_size,
          eval_n, emit, extras=None) -> dict:
    from aigc.study.powerlaw import fit_power_law
    metric = "kid_randconv" if kind == "images" else "nats_per_char"
    fractions, examples, values, copies = [], [], [], []
    total = len(subsets) + 1 + (extras is not None)
    for i, (f, d) in enumerate(subsets, 1):
        emit("running", index=i, total=total, text=f"training on {f:.0%} ({len(d)} examples), {steps} steps")
        path = _train(kind, b, d, root / f"frac-{f:g}", steps, seed, device, tiny, overrides, batch_size, 2 * cap)
        m = _measure(kind, path, d, heldout, eval_n)
        fractions.append(f), examples.append(len(d)), values.append(m[metric]), copies.append(m.get("copy_rate"))
    full = subsets[-1][1]
    emit("running", index=len(subsets) + 1, total=total, text=f"training on 100% for {2 * steps} steps")
    path = _train(kind, b, full, root / "steps-2x", 2 * steps, seed, device, tiny, overrides, batch_size, 4 * cap)
    twice = _measure(kind, path, full, heldout, eval_n)
    y = np.array(values)
    fit = fit_power_law(examples, y, offset=bool((y <= 0).any()), bootstrap=BOOTSTRAP, seed=seed)
    n = examples[-1]
    pred = float(fit.predict(2 * n))
    lo_hi = None
    if fit.b_ci is not None:
        alt = [float(fit.a * (2 * n) ** -b + fit.c) for b in fit.b_ci]
        lo_hi = [min(alt), max(alt)]
    res = {"fractions": fractions, "examples": examples, "values": [float(v) for v in values], "metric": metric,
           "exponent": float(fit.b), "exponent_err": fit.b_err, "exponent_ci": fit.to_json()["b_ci"],
           "fit": fit.to_json(), "prediction_2x_data": pred, "prediction_2x_data_range": lo_hi,
           "measured_2x_steps": float(twice[metric])}
    if kind == "images":
        res["copy_rates"] = copies
        res["copy_rate_2x_steps"] = twice["copy_rate"]
    res["recommendation"] = recommend(kind, metric, float(values[-1]), pred, float(twice[metric]), lo_hi)
    res["with_duplicates"] = res["duplicates_cost"] = None
    if extras is not None:
        emit("running", index=total, total=total,
             text=f"training on 100% with {len(extras)} duplicates put back, {steps} steps")
        both = _with_extras(full, extras)
        path = _train(kind, b, both, root / "with-duplicates", steps, seed, device, tiny, overrides, batch_size,
                      2 * cap)
        m = _measure(kind, path, full, heldout, eval_n)          # copies are judged against the deduplicated pool
        res["with_duplicates"] = {"examples": len(both), "kid_randconv": m["kid_randconv"], "copy_rate": m["copy_rate"]}
        res["duplicates_cost"] = duplicates_cost(len(extras), copies[-1], m["copy_rate"], values[-1], m["kid_randconv"])
    return res


def _with_extras(data, extras):
    from aigc.data.images import ImageData
    labels = None if data.labels is None else np.concatenate([data.labels, extras.labels])
    return ImageData(name=data.name, images=np.concatenate([data.images, extras.images]), labels=labels,
                     class_names=list(data.class_names))


def duplicates_cost(n: int, copy_without: float, copy_with: float, kid_without: float, kid_with: float) -> str:
    """One sentence from the measured figures: what leaving `n` duplicates in did to the copy rate and KID."""
    def moved(what: str, a: str, b: str) -> str:
        if a == b:
            return f"left {what} at {a}"
        return f"{'raised' if float(b) > float(a) else 'lowered'} {what} from {a} to {b}"
    copy = moved("the copy rate", f"{copy_without:.2g}", f"{copy_with:.2g}")
    kid = moved("KID", f"{kid_without * 1000:.3g}", f"{kid_with * 1000:.3g}")
    return f"left in, the {n} duplicate{'s' if n != 1 else ''} {copy} and {kid} (x1000)"


def recommend(kind: str, metric: str, now: float, pred_2x_data: float, measured_2x_steps: float,
              pred_range: list | None = None) -> str:
    """One sentence from the figures: which of doubling the data or the steps helps more (lower is better)."""
    what = "images" if kind == "images" else "text"
    scale = abs(now) or 1.0

    def change(v: float, past: bool = False) -> str:
        d = (now - v) / scale * 100
        verbs = ("left", "lowered", "raised") if past else ("leave", "lower", "raise")
        if abs(d) < 0.5:
            return f"{verbs[0]} {metric} about the same"
        return f"{verbs[1]} {metric} by ~{d:.0f}%" if d > 0 else f"{verbs[2]} {metric} by ~{-d:.0f}%"

    data_gain, steps_gain = now - pred_2x_data, now - measured_2x_steps
    unc = ""
    if pred_range is not None:
        lo, hi = ((now - v) / scale * 100 for v in pred_range)
        unc = f" (95% range: {min(lo, hi):.0f}% to {max(lo, hi):.0f}% lower)"
    data_s = f"doubling the {what} is predicted to {change(pred_2x_data)}{unc}"
    steps_s = f"twice the steps {change(measured_2x_steps, past=True)}"
    if data_gain <= 0 and steps_gain <= 0:
        return f"neither more data nor more steps is likely to help: {data_s}, {steps_s}"
    if data_gain > steps_gain:
        return f"collect more {what}: {data_s}; {steps_s}"
    return f"train longer: {steps_s}; {data_s}"
