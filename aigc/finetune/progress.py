"""What a job's files say about it: loss and quality curves from stats.jsonl, the time left, the
reason a worker failed. Reads files only (no torch): the server calls these on every poll."""
from __future__ import annotations

from pathlib import Path

_NON_LOSS = {"step", "epoch", "time_s", "img_per_s", "tok_per_s", "lr", "peak_mem_gb", "eval_s",
             "kid_randconv", "copy_rate", "copy_rate_median_ratio", "nats_per_char", "bits_per_char",
             "text_copy_rate", "text_copy_spans"}
# quality measured during a job (aigc finetune's periodic evaluation): stats key -> (series label, scale)
QUALITY_SERIES = {
    "kid_randconv": ("KID×1000 (random-conv features, vs your data)", 1000.0),
    "copy_rate": ("copy rate % (samples reproducing a training image)", 100.0),
    "nats_per_char": ("held-out cross-entropy (nats/char)", 1.0),
    "text_copy_rate": ("text copy rate % (generated 12-character spans found in your text)", 100.0),
}


def loss_curve(stats: list[dict]) -> list[dict]:
    """Long-format rows {step, value, series} of the loss-like numbers in stats.jsonl."""
    keys = sorted({k for r in stats for k, v in r.items() if "loss" in k and isinstance(v, (int, float))})
    if not keys:
        keys = sorted({k for r in stats for k, v in r.items()
                       if k not in _NON_LOSS and isinstance(v, (int, float)) and not isinstance(v, bool)})
    return [{"step": r["step"], "value": float(r[k]), "series": k} for r in stats for k in keys if k in r]


def quality_curve(stats: list[dict]) -> list[dict]:
    """Long-format rows {step, value, series} of the quality measured during training (scaled for
    reading: KID x 1000, copy rate in %)."""
    return [{"step": r["step"], "value": float(r[k]) * scale, "series": label}
            for r in stats for k, (label, scale) in QUALITY_SERIES.items()
            if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool)]


def eta(stats: list[dict], total: int, budget_s: float | None = None) -> float | None:
    """Seconds left: from the step rate over the last few log lines of the current run segment,
    capped by what is left of a time budget (the run's clock continues across resumes)."""
    if not stats:
        return None
    by_steps = _eta_steps(stats, total)
    if budget_s:
        left = max(0.0, budget_s - float(stats[-1].get("time_s", 0.0)))
        return left if by_steps is None else min(by_steps, left)
    return by_steps


def _eta_steps(stats: list[dict], total: int) -> float | None:
    b = prev = stats[-1]
    a = None
    for r in reversed(stats[-6:-1]):
        if r["step"] < prev["step"] and r.get("time_s", 0) < prev.get("time_s", 0):
            a = prev = r
        else:
            break               # a resume restarted the clock: older lines belong to another segment
    if a is not None:
        ds, dt = b["step"] - a["step"], b["time_s"] - a["time_s"]
        return max(0.0, (total - b["step"]) * dt / ds)
    return None


def budget_s(job: dict) -> float | None:
    """A job's time limit in seconds (None: steps only)."""
    m = (job.get("spec") or {}).get("max_minutes")
    return float(m) * 60 if m else None


def error_tail(log: Path, n_lines: int = 15) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errs = [ln[len("error: "):] for ln in lines if ln.startswith("error: ")]
    if errs:
        return errs[-1]
    return "\n".join(lines[-n_lines:])
