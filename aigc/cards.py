"""Model cards: a README.md beside the weights that says what the model is, what it measured,
and the exact commands that reproduce the training and the evaluation."""
from __future__ import annotations

import json
from pathlib import Path

from . import checkpoint as ckpt

LABELS = {
    "fid": "FID (Inception, lower is better)",
    "kid": "KID x 1000 (Inception, lower is better)",
    "domain_fd": "Domain FD (dataset classifier features, lower is better)",
    "label_acc": "Label accuracy of conditional samples (classifier)",
    "nll_nats": "Test NLL, nats (IWAE bound, lower is better)",
    "nats_per_char": "Held-out cross-entropy, nats/char",
    "bits_per_char": "Held-out bits/char",
}


def fmt(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "kid":
        return f"{value * 1000:.3f}"
    if key == "label_acc":
        return f"{100 * value:.2f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def metrics_table(metrics: dict) -> str:
    rows = [f"| {LABELS[k]} | {fmt(k, metrics[k])} |" for k in LABELS if k in metrics]
    if not rows:
        return "Not evaluated yet.\n"
    return "| metric | value |\n| --- | --- |\n" + "\n".join(rows) + "\n"


def write_card(directory: str | Path, *, title: str, summary: str, train_command: str,
               eval_command: str, hardware: str, extra: str = "") -> str:
    directory = Path(directory)
    cfg = ckpt.read_config(directory)
    metrics = ckpt.read_metrics(directory)
    train = cfg.get("train", {})
    lines = [f"# {title}", "", summary, ""]
    if (directory / "samples.png").exists():
        lines += ["![samples on seed 0](samples.png)", ""]
    lines += ["## Measured metrics", "", metrics_table(metrics)]
    if metrics.get("protocol"):
        lines += [f"Protocol: {metrics['protocol']}", ""]
    if "n" in metrics:
        lines += [f"Samples evaluated: {metrics['n']}; seed {metrics.get('seed', 0)}.", ""]
    lines += ["## Reproduce", "", "Training:", "", "```", train_command, "```", "",
              "Evaluation (prints one JSON object; the numbers above are its output):", "", "```",
              eval_command, "```", "",
              "## Training facts", "",
              f"- kind `{cfg['kind']}`, dataset `{cfg.get('dataset')}`, "
              f"{train.get('steps', '?')} steps ({train.get('epochs', '?')} epochs) at batch {train.get('batch_size', '?')}, "
              f"precision {train.get('precision', '?')}, seed {train.get('seed', '?')}",
              f"- {hardware}",
              f"- config: `{json.dumps(cfg['config'], ensure_ascii=False)}`",
              f"- weights sha256 prefix: `{ckpt.weights_hash(directory)}`", ""]
    if extra:
        lines += [extra.strip(), ""]
    text = "\n".join(lines)
    ckpt.atomic_write_text(directory / "README.md", text)
    return text
