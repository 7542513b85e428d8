"""Model cards: a README.md beside the weights that says what the model is, what it measured,
and the exact commands that reproduce the training and the evaluation."""
from __future__ import annotations

import json
from pathlib import Path

from aigc import checkpoint as ckpt
from aigc.eval.textcopy import COPY_WARN

LABELS = {
    "fid": "FID (Inception, lower is better)",
    "kid": "KID x 1000 (Inception, lower is better)",
    "domain_fd": "Domain FD (dataset classifier features, lower is better)",
    "label_acc": "Label accuracy of conditional samples (classifier)",
    "diversity": "Within-class diversity vs the test set (classifier features, 1 = as varied as the data)",
    "nll_nats": "Test NLL, nats (IWAE bound, lower is better)",
    "cluster_acc": "Unsupervised clustering accuracy on the test set (best one-to-one matching)",
    "nmi": "Normalised mutual information of clusters and test labels",
    "nats_per_char": "Held-out cross-entropy, nats/char",
    "bits_per_char": "Held-out bits/char",
    "kid_randconv": "KID x 1000 in random-conv features (not Inception; lower is better)",
    "copy_rate": "Copy rate: samples that reproduce a training image (lower is better)",
    "text_copy_rate": "Text copy rate: generated 12-character spans found verbatim in the upload (lower is better)",
}


def fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key in ("kid", "kid_randconv"):
        return f"{value * 1000:.3f}"
    if key in ("label_acc", "copy_rate", "text_copy_rate", "cluster_acc"):
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def metrics_table(metrics: dict) -> str:
    rows = [f"| {LABELS[k]} | {fmt(k, metrics[k])} |" for k in LABELS if k in metrics]
    if not rows:
        return "Not evaluated yet.\n"
    return "| metric | value |\n| --- | --- |\n" + "\n".join(rows) + "\n"


def lineage_lines(train: dict) -> list[str]:
    """Card lines for a fine-tuned model: the base it was trained from, then that base's base and
    so on, with the steps each stage ran, and the total. A folder that no longer holds the weights
    recorded for it is said to, so a reader does not take today's contents for the base."""
    chain = ckpt.lineage(train)
    trains = [rec.get("train") if isinstance(rec.get("train"), dict) else {} for rec in chain]
    lines = []
    for i, (rec, t) in enumerate(zip(chain, trains)):
        where = ckpt.find_base(str(rec.get("path")))
        moved = ""
        if where is not None and (where / "model.safetensors").is_file() and ckpt.weights_hash(where) != rec.get("weights"):
            moved = " (that folder holds other weights now)"
        lines.append(f"- {'fine-tuned from' if i == 0 else 'which was fine-tuned from'} `{rec.get('path')}`{moved}, "
                     f"weights sha256 prefix `{rec.get('weights')}`: {t.get('steps', '?')} steps "
                     f"({t.get('epochs', '?')} epochs) at batch {t.get('batch_size', '?')} on "
                     f"{t.get('device', '?')}, precision {t.get('precision', '?')}")
    if not chain:
        return lines
    if isinstance(trains[-1].get("init_from"), dict):
        lines.append(f"- (the history goes back further than the {len(chain)} generations shown)")
    stages = [train] + trains
    if all(isinstance(t.get("steps"), int) for t in stages):
        lines.append(f"- in all: {sum(t['steps'] for t in stages)} steps over {len(stages)} stages")
    return lines


def measured_lines(metrics: dict) -> list[str]:
    """The card's "Measured metrics" section: the table, the protocol, how many samples."""
    lines = ["## Measured metrics", "", metrics_table(metrics)]
    if metrics.get("protocol"):
        lines += [f"Protocol: {metrics['protocol']}", ""]
    if "n" in metrics:
        lines += [f"Samples evaluated: {metrics['n']}; seed {metrics.get('seed', 0)}.", ""]
    return lines


def write_card(directory: str | Path, *, title: str, summary: str, train_command: str,
               eval_command: str, hardware: str, extra: str = "") -> str:
    directory = Path(directory)
    cfg = ckpt.read_config(directory)
    metrics = ckpt.read_metrics(directory)
    train = cfg.get("train", {})
    lines = [f"# {title}", "", summary, ""]
    if (directory / "samples.png").exists():
        lines += ["![samples on seed 0](samples.png)", ""]
    lines += measured_lines(metrics)
    lines += ["## Reproduce", "", "Training:", "", "```", train_command, "```", "",
              "Evaluation (prints one JSON object; the numbers above are its output):", "", "```",
              eval_command, "```", "",
              "## Training facts", "",
              f"- kind `{cfg['kind']}`, dataset `{cfg.get('dataset')}`, "
              f"{train.get('steps', '?')} steps ({train.get('epochs', '?')} epochs) at batch {train.get('batch_size', '?')}, "
              f"precision {train.get('precision', '?')}, seed {train.get('seed', '?')}",
              f"- {hardware}",
              *lineage_lines(train),
              f"- config: `{json.dumps(cfg['config'], ensure_ascii=False)}`",
              f"- weights sha256 prefix: `{ckpt.weights_hash(directory)}`", ""]
    if extra:
        lines += [extra.strip(), ""]
    text = "\n".join(lines)
    ckpt.atomic_write_text(directory / "README.md", text)
    return text


QUALITY_KEYS = ("kid_randconv", "copy_rate", "nats_per_char", "text_copy_rate")


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _quality_lines(metrics: dict, start: dict | None) -> list[str]:
    """The quality table: at start, for the weights kept, and at the last step when those differ."""
    keys = [k for k in QUALITY_KEYS if k in metrics]
    if not keys:
        return ["Not measured (quality tracking was off, or the text was too short to hold a slice out).", ""]
    last = metrics.get("at_last_step")
    kept = f"kept (step {metrics.get('measured_at_step')}, best held-out)" if last else "final"
    lines = [f"| metric | at start | {kept} |" + (f" last (step {last.get('step')}) |" if last else ""),
             "| --- | --- | --- |" + (" --- |" if last else "")]
    for k in keys:
        s0 = fmt(k, start[k]) if start is not None and k in start else "-"
        lines.append(f"| {LABELS[k]} | {s0} | {fmt(k, metrics[k])} |" + (f" {fmt(k, last.get(k))} |" if last else ""))
    lines += ["", f"Protocol: {metrics.get('protocol', '')}", ""]
    if metrics.get("text_copy_protocol"):
        lines += [f"Copy rate: {metrics['text_copy_protocol']}.", ""]
    if "kid_randconv" in keys:
        lines += ["KID here is measured against the training images themselves, so it also rewards "
                  "memorisation; read it together with the copy rate.", ""]
    if isinstance(metrics.get("text_copy_rate"), float) and metrics["text_copy_rate"] > COPY_WARN:
        lines += [f"Warning: above {COPY_WARN:.0%} of the generated spans are copied from the upload: this model "
                  "memorised much of it.", ""]
    return lines


def write_finetune_card(model_dir: str | Path, *, base: str | None, kind: str, upload: str, steps: int,
                        title: str | None = None, max_minutes: float | None = None,
                        overrides: dict | None = None, recipe: str | None = None) -> dict:
    """After `aigc finetune`: the quality measured during training (the run's eval.json and
    stats.jsonl beside model/) into metrics.json, and a model card saying what was trained on what
    and how it was measured. Returns the metrics written."""
    model_dir = Path(model_dir)
    run_dir = model_dir.parent
    last = _read_json(run_dir / "eval.json")
    summary = _read_json(run_dir / "summary.json")
    kept = _read_json(run_dir / "eval_best.json") if summary.get("best") else {}
    final = kept or last          # the evaluation of the weights in model_dir
    from aigc.train.stats import read_stats
    rows = [r for r in read_stats(run_dir) if any(k in r for k in QUALITY_KEYS)]
    start = next((r for r in rows if r["step"] == 0), None)
    metrics = ckpt.read_metrics(model_dir)
    for k in QUALITY_KEYS + ("copy_rate_median_ratio", "bits_per_char", "text_copy_spans"):
        if isinstance(final.get(k), (int, float)):
            metrics[k] = final[k]
    if final:
        metrics.update({"protocol": final.get("protocol", ""), "measured_at_step": final.get("step")})
        if final.get("text_copy_protocol"):
            metrics["text_copy_protocol"] = final["text_copy_protocol"]
        for k in ("n", "seed", "dataset"):
            if k in final:
                metrics[k] = final[k]
    if kept and last and last.get("step") != kept.get("step"):
        metrics["at_last_step"] = {"step": last.get("step"), **{k: last[k] for k in QUALITY_KEYS if k in last}}
    if start is not None:
        metrics["at_start"] = {k: start[k] for k in QUALITY_KEYS if k in start}
    ckpt.atomic_write_json(model_dir / "metrics.json", metrics)

    cfg = ckpt.read_config(model_dir)
    trained = int(summary.get("steps") or cfg.get("train", {}).get("steps") or steps)
    limit = f"{max_minutes:g}-minute" if max_minutes else ""
    how = (f"Fine-tuned from `{base}`" if base else f"A new `{kind}` trained from scratch") + \
          f" on the upload `{upload}` for {trained:,} steps" + \
          (" (stopped early: the held-out score had stopped improving)." if summary.get("stopped_early") else
           f" (stopped by its {limit} time limit; {steps:,} were allowed)." if trained < steps and limit else
           f" (time limit {max_minutes:g} minutes)." if limit else ".")
    if kept:
        how += (f" The weights kept are those of step {kept.get('step')}, where the held-out score was best "
                "(early stopping), not necessarily the last.")
    title = title or (model_dir.name if model_dir.name != "model" else f"{base or kind} on {upload}")
    lines = [f"# {title}", "", how, ""]
    lines += ["## Quality on the uploaded data (measured during training)", ""]
    lines += _quality_lines(metrics, start)
    from aigc.eval.nearest import TRAINING_IMAGES
    if (model_dir / TRAINING_IMAGES).is_file():
        lines += [f"`{TRAINING_IMAGES}` beside the weights holds the prepared training images (uint8, read "
                  "without unpickling), so that any sample can be compared with its nearest training image.", ""]
    lines += ["## Reproduce", "", "```",
              f"python -m aigc finetune {base or kind} --data {upload} --out RUN --steps {steps}"
              + (f" --max-minutes {max_minutes:g}" if max_minutes else "")
              + "".join(f" --set {k}={json.dumps(v)}" for k, v in (overrides or {}).items())
              + (f" --resolution {cfg['config'].get('resolution')}" if cfg.get("modality", "image") == "image" else ""),
              "```", "", "## Training facts", "",
              f"- kind `{cfg['kind']}`, dataset `{cfg.get('dataset')}`, "
              f"{cfg.get('train', {}).get('steps', '?')} steps at batch {cfg.get('train', {}).get('batch_size', '?')}",
              f"- config: `{json.dumps(cfg['config'], ensure_ascii=False)}`",
              *([f"- {recipe}"] if recipe else []),
              f"- weights sha256 prefix: `{ckpt.weights_hash(model_dir)}`", ""]
    ckpt.atomic_write_text(model_dir / "README.md", "\n".join(lines))
    return metrics
