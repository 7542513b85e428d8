"""Summarise training runs: time-to-target, throughput, model-FLOPs utilisation, peak memory.

    python bench/gpu_report.py RUN [RUN ...]

Reads each run folder's options.json, stats.jsonl and summary.json (written by the training
loop). MFU = counted model FLOPs per step (PyTorch FlopCounterMode, forward + backward) x steps
per second / the GPU's dense bf16 peak. Throughput is the median of the logged rates.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

# dense bf16 tensor-core peaks, FLOP/s (vendor datasheets)
PEAKS = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def peak_for(name: str) -> float | None:
    for key, val in PEAKS.items():
        if key in name:
            return val
    return None


def report(run: Path) -> dict:
    opts = json.loads((run / "options.json").read_text())
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
    stats = [json.loads(l) for l in (run / "stats.jsonl").read_text().splitlines() if l.strip()]
    rate_key = "img_per_s" if any("img_per_s" in s for s in stats) else "tok_per_s"
    rates = [s[rate_key] for s in stats[1:] if rate_key in s and "eval_s" not in s] or [s[rate_key] for s in stats if rate_key in s]
    rate = statistics.median(rates) if rates else None
    metric = opts.get("eval_metric")
    evals = [(s["step"], s["time_s"], s[metric]) for s in stats if metric in s]
    out = {"run": run.name, "kind": opts["model"], "data": opts["data"], "steps": summary.get("steps"),
           "wall_s": summary.get("time_s"), "train_s": summary.get("train_s"),
           "target": opts.get("target"), "metric": metric, "target_reached": summary.get("target_reached"),
           "final_" + str(metric): evals[-1][2] if evals else None, "best_" + str(metric): min(e[2] for e in evals) if evals else None,
           rate_key: rate, "peak_mem_gb": summary.get("peak_mem_gb"), "device": summary.get("device_name"),
           "torch": summary.get("torch")}
    fps, batch = summary.get("flops_per_step"), summary.get("batch_size") or opts.get("batch_size")
    peak = peak_for(summary.get("device_name") or "")
    if fps and rate and batch:
        steps_per_s = (rate if rate_key == "img_per_s" else rate / _block(run)) / batch
        out["model_tflops_per_s"] = round(fps * steps_per_s / 1e12, 2)
        if peak:
            out["mfu_pct"] = round(100 * fps * steps_per_s / peak, 2)
    return out


def _block(run: Path) -> int:
    cfg = json.loads((run / "model" / "config.json").read_text())
    return int(cfg["config"].get("block_size", 1))


def main(argv):
    rows = []
    for arg in argv:
        try:
            rows.append(report(Path(arg)))
        except (OSError, ValueError, KeyError) as e:
            rows.append({"run": arg, "error": f"{type(e).__name__}: {e}"})
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
