"""One cell of the study: its data, its training run (fresh, continued or already done) and its numbers."""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np

_VAL_IDS: dict[tuple, object] = {}


# -- subsets -------------------------------------------------------------------------------------------
def image_subset(data, fraction: float, seed: int):
    """A seeded, class-balanced share of an ImageData (at least one image per class); nested:
    for one seed, a smaller fraction's images are among a larger one's."""
    from aigc.data.images import ImageData
    rng = np.random.default_rng([20, seed])
    if data.labels is None:
        order = rng.permutation(len(data))
        idx = order[:max(1, int(round(fraction * len(data))))]
    else:
        parts = []
        for c in np.unique(data.labels):
            members = np.flatnonzero(data.labels == c)
            members = members[rng.permutation(len(members))]
            parts.append(members[:max(1, int(round(fraction * len(members))))])
        idx = np.concatenate(parts)
    idx = np.sort(idx)
    return ImageData(name=data.name, images=np.ascontiguousarray(data.images[idx]),
                     labels=None if data.labels is None else data.labels[idx], class_names=list(data.class_names))


def text_subset(text: str, fraction: float, seed: int, chunk: int) -> str:
    """A seeded share of a text in whole chunks, kept in their original order; nested per seed."""
    n = max(1, math.ceil(len(text) / chunk))
    order = np.random.default_rng([21, seed]).permutation(n)
    keep = np.sort(order[:max(1, int(round(fraction * n)))])
    return "".join(text[i * chunk:(i + 1) * chunk] for i in keep)


def remove_partial(run_dir: Path) -> None:
    """A run folder without a checkpoint holds nothing worth keeping (its log would be appended to)."""
    if run_dir.exists() and not (run_dir / "state.pt").exists():
        shutil.rmtree(run_dir)


def prepare_data(spec: dict, cell):
    """(training data, None) for a cell, or (None, note) when its fraction leaves too few examples."""
    t = spec[cell.task]
    if cell.task == "images":
        from aigc.data.images import load_dataset
        data = image_subset(load_dataset(t["dataset"], "train"), cell.fraction, cell.seed)
        what = "images"
    else:
        from aigc.data.text import TextData, load_text_corpus
        train_text, _, info, tok = load_text_corpus(t["dataset"])
        text = text_subset(train_text, cell.fraction, cell.seed, int(t["chunk_chars"]))
        block = _block_size(t)
        if len(text) < block + 2:
            return None, (f"skipped text at {cell.fraction:g}: {len(text)} characters is shorter than one "
                          f"window of {block}")
        data = TextData(name=t["dataset"], text=text, tokenizer=tok, block_size=block, info=dict(info))
        what = f"windows of {block} characters"
    if len(data) < int(t["min_examples"]):
        return None, (f"skipped {cell.task} at {cell.fraction:g} of the data: {len(data)} {what} is fewer "
                      f"than {t['min_examples']}")
    return data, None


def _block_size(t: dict) -> int:
    from aigc.kinds import make_config
    return make_config("char-lm", tiny=bool(t["tiny"]), **dict(t["config"])).block_size


def _options(spec: dict, cell, data, run_dir: Path, steps: int):
    from aigc.train.loop import TrainOptions
    t = spec[cell.task]
    common = dict(data=data.name, out=str(run_dir), max_steps=steps, batch_size=min(int(t["batch_size"]), len(data)),
                  seed=cell.seed, tiny=bool(t["tiny"]), config=dict(t["config"]), device=spec["device"],
                  precision=t["precision"], progress=False, log_every=max(1, min(100, steps)),
                  sample_every=steps, ckpt_every=max(1, min(int(t["ckpt_every"]), steps)), eval_every=0)
    if cell.task == "images":
        return TrainOptions(model="dcgan", diffaug=bool(cell.augment), **common)
    return TrainOptions(model="char-lm", lr=float(t["lr"]), lr_scale=False,
                        warmup=min(int(t["warmup"]), steps // 10), **common)


def train_cell(spec: dict, cell, data, run_dir: Path, steps: int) -> Path:
    """The cell's model folder: trained now, continued from its checkpoint, or as it was left."""
    from aigc.train.loop import TrainOptions, train
    run_dir = Path(run_dir)
    if (run_dir / "summary.json").is_file() and (run_dir / "model" / "config.json").is_file():
        return run_dir / "model"
    remove_partial(run_dir)
    if (run_dir / "state.pt").is_file():
        return train(TrainOptions(max_steps=steps, progress=False, device=spec["device"]), data=data,
                     resume=str(run_dir))
    return train(_options(spec, cell, data, run_dir, steps), data=data)


def _image_values(spec: dict, model, corner: bool) -> dict:
    from aigc.eval import evaluate
    t = spec["images"]
    res = evaluate(model, t["dataset"], metrics=list(t["metrics"]), n=int(t["eval_n"]), seed=0)
    values = {m: float(res[m]) for m in t["metrics"]}
    if corner and t["corner_metrics"]:
        res = evaluate(model, t["dataset"], metrics=list(t["corner_metrics"]), n=int(t["corner_eval_n"]), seed=0)
        values.update({m: float(res[m]) for m in t["corner_metrics"]})
    return values


def _text_values(spec: dict, model) -> dict:
    from aigc.data.text import load_text_dataset
    t = spec["text"]
    key = (t["dataset"], model.config.block_size, model.tokenizer.vocab_size)
    if key not in _VAL_IDS:
        _VAL_IDS.clear()
        _VAL_IDS[key] = load_text_dataset(t["dataset"], "val", model.config.block_size,
                                          tokenizer=model.tokenizer).ids
    nats = model.nats_per_char(_VAL_IDS[key], max_windows=int(t["eval_windows"]), batch_size=64)
    return {"nats_per_char": float(nats)}


def measure_cell(spec: dict, cell, data, run_dir: Path, steps: int, corner: bool = False) -> tuple[dict, dict]:
    """Train (or finish) a cell and measure it -> ({metric: value}, run facts for study.json)."""
    import json
    from aigc.checkpoint import from_pretrained
    model_dir = train_cell(spec, cell, data, run_dir, steps)
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    model = from_pretrained(model_dir).eval()
    t0 = time.time()
    values = _image_values(spec, model, corner) if cell.task == "images" else _text_values(spec, model)
    values = {k: (v if math.isfinite(v) else None) for k, v in values.items()}   # JSON has no NaN
    run = {"steps": int(summary["steps"]), "train_s": summary.get("train_s"), "eval_s": round(time.time() - t0, 2),
           "examples": len(data), "corner": bool(corner)}
    return values, run
