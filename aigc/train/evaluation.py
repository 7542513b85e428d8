"""Periodic evaluation during a run: which metrics, when one is due, when a target is reached, and
which evaluation was the best so far (the run keeps that model when `keep_best` is on)."""
from __future__ import annotations

import time
from pathlib import Path

from aigc.fileio import atomic_write_json


class PeriodicEval:
    """The run's `eval_*` options at work; the numbers go to stats.jsonl, the full result to eval.json."""

    def __init__(self, task, opts, data, extra=None):
        """`extra(model) -> dict`: more numbers measured beside the metrics (e.g. a text copy rate)."""
        self.task, self.data, self.extra = task, data, extra
        self.names = [m.strip() for m in str(opts.eval_metric).split(",") if m.strip()]
        self.every, self.n, self.budget, self.target = opts.eval_every, opts.eval_n, opts.eval_budget, opts.target
        self.eval_s = 0.0           # time spent evaluating, excluded from train_s
        self.last_eval_s = 0.0      # the latest evaluation's cost (predicts the next one's)
        self.reached = None         # the first record at or below target
        self.best = None            # {"step", "metric", "value"}: the lowest first metric so far
        self.since_best = 0         # evaluations since the best one
        self.is_best = False        # the latest evaluation is the best so far
        self.extra_keys: set = set()

    def measure(self, model, device) -> dict:
        """Every metric -> the full result (numbers, and a `protocol` line when the metric gives one)."""
        if hasattr(self.data, "evaluate"):      # data that scores its own held-out split
            res = {self.names[0]: self.data.evaluate(model, self.names[0])}
        else:
            res = self.task.evaluate(model, self.data, self.names, self.n, device)
        more = {} if self.extra is None else self.extra(model)
        self.extra_keys = set(more)
        return {**res, **more}

    @staticmethod
    def metric_value(res: dict, name: str) -> float:
        if name in res:
            return float(res[name])
        return float(next(v for k, v in res.items() if k.startswith(name) and isinstance(v, (int, float))))

    def first_value(self, res: dict) -> float:
        return self.metric_value(res, self.names[0])

    def due(self, step: int, done: bool, elapsed: float) -> bool:
        """Every `eval_every` steps and at the end; within `eval_budget`'s share of the time, if set."""
        if not self.every or not (step % self.every == 0 or done):
            return False
        if done or not self.budget or self.budget <= 0:
            return True
        return self.eval_s + self.last_eval_s <= self.budget * (elapsed - self.eval_s)

    def record(self, model, device, run_dir: Path, step: int, t0: float, at_start: bool = False) -> dict:
        """Evaluate -> the numbers for stats.jsonl (with eval_s, and target_reached the first time)."""
        t = time.time()
        res = self.measure(model, device)
        atomic_write_json(Path(run_dir) / "eval.json", {"step": step, **res})
        out = {k: float(f"{v:.6g}") for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and (k in self.extra_keys or any(k.startswith(m) for m in self.names))}
        first = self.names[0]
        out.setdefault(first, float(f"{self.first_value(res):.6g}"))
        self.last_eval_s = time.time() - t
        self.eval_s += self.last_eval_s
        out["eval_s"] = round(self.last_eval_s, 2)
        self._track_best(out[first], 0 if at_start else step, run_dir, res)
        if at_start:
            return {"step": 0, "epoch": 0.0, "time_s": 0.0, **out}
        if self.target is not None and out[first] <= self.target and self.reached is None:
            now = time.time()
            self.reached = {"step": step, "time_s": round(now - t0, 2), "train_s": round(now - t0 - self.eval_s, 2),
                            first: out[first]}
            out["target_reached"] = self.reached
        return out

    def _track_best(self, value: float, step: int, run_dir: Path, res: dict) -> None:
        self.is_best = self.best is None or value < self.best["value"]
        if self.is_best:
            self.best, self.since_best = {"step": step, "metric": self.names[0], "value": value}, 0
            atomic_write_json(Path(run_dir) / "eval_best.json", {"step": step, **res})
        else:
            self.since_best += 1

    def state(self) -> dict:
        return {"best": self.best, "since_best": self.since_best}

    def load_state(self, state: dict | None) -> None:
        if isinstance(state, dict):
            self.best, self.since_best = state.get("best"), int(state.get("since_best") or 0)
