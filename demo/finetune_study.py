"""The Fine-tune tab's "Data study": what would more data buy for this upload? It runs
aigc.study.study_upload on a background thread (one study at a time on the server, one per person),
so the page and everyone else's requests go on; the page polls `view`."""
from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("aigc.demo")
FIT_POINTS = 24               # points drawn along the fitted power law


def study_rows(res: dict) -> list[dict]:
    """Long-format rows {examples, value, series} for the plot: the measured values against the
    training-set size, the fitted power law (extended to twice the data) and twice the steps."""
    n, y = list(res.get("examples") or []), list(res.get("values") or [])
    rows = [{"examples": float(a), "value": float(b), "series": "measured"} for a, b in zip(n, y)]
    fit = res.get("fit") or {}
    if n and all(k in fit for k in ("a", "b")):
        lo, hi = min(n), 2 * max(n)
        for i in range(FIT_POINTS):
            x = lo * (hi / lo) ** (i / (FIT_POINTS - 1))
            rows.append({"examples": x, "value": fit["a"] * x ** -fit["b"] + fit.get("c", 0.0),
                         "series": "power-law fit"})
    if n and res.get("measured_2x_steps") is not None:
        rows.append({"examples": float(max(n)), "value": float(res["measured_2x_steps"]), "series": "2× steps"})
    return rows


def study_text(res: dict) -> str:
    """The recommendation in plain words, with the figures it rests on."""
    metric = res.get("metric", "?")
    lines = [f"**{res.get('recommendation', '')}**", ""]
    pairs = ", ".join(f"{f:.0%} ({n} examples): {v:.4g}" for f, n, v in
                      zip(res.get("fractions", []), res.get("examples", []), res.get("values", [])))
    lines.append(f"{metric} on held-out data (lower is better): {pairs}.")
    exp, err = res.get("exponent"), res.get("exponent_err")
    if exp is not None:
        lines.append(f"Power-law exponent {exp:.3g}" + (f" ± {err:.2g}" if err else "") +
                     f"; predicted at twice the data: {res.get('prediction_2x_data', float('nan')):.4g}; "
                     f"measured at twice the steps: {res.get('measured_2x_steps', float('nan')):.4g}.")
    if res.get("duplicates_removed"):
        lines.append(f"{res['duplicates_removed']} duplicates were removed before the study.")
    if res.get("duplicates_cost"):
        lines.append(res["duplicates_cost"][:1].upper() + res["duplicates_cost"][1:] + ".")
    for note in res.get("notes") or []:
        if note:
            lines.append(f"_{note}_")
    return "\n\n".join(lines)


class Studies:
    """Data studies of people's uploads: each runs on its own thread; one trains at a time."""

    def __init__(self, root: Path, run: Callable | None = None):
        self.root = Path(root) / "studies"
        self._run = run                          # aigc.study.study_upload unless a test gives another
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Lock()
        self._by_owner: dict[str, dict] = {}

    def start(self, owner: str, data_path: Path, base: str, minutes: float) -> None:
        with self._lock:
            cur = self._by_owner.get(owner)
            if cur and cur["state"] in ("waiting", "running"):
                raise ValueError("your data study is still running; wait for it to finish")
            key = hashlib.sha256(owner.encode()).hexdigest()[:16]
            out = self.root / key / time.strftime("%Y%m%d-%H%M%S")
            if out.exists():
                raise ValueError("a data study started a moment ago; try again in a second")
            out.mkdir(parents=True)
            data = out / ("upload" + Path(data_path).suffix.lower())
            shutil.copyfile(data_path, data)              # the page's upload may be cleaned up meanwhile
            job = {"state": "waiting", "progress": "waiting for another data study to finish", "result": None,
                   "error": None, "minutes": minutes, "started": time.time()}
            self._by_owner[owner] = job
        threading.Thread(target=self._work, args=(job, data, base, minutes, out), daemon=True,
                         name="aigc-data-study").start()

    def _work(self, job: dict, data: Path, base: str, minutes: float, out: Path) -> None:
        def progress(ev: dict) -> None:
            if ev.get("text"):
                job["progress"] = str(ev["text"])[:300]

        with self._one_at_a_time:
            job["state"], job["progress"] = "running", "preparing the upload"
            try:
                run = self._run
                if run is None:
                    from aigc.study import study_upload as run
                job["result"] = run(data, base, minutes, on_progress=progress, out=out / "study")
                job["state"] = "done"
            except ValueError as e:
                job["state"], job["error"] = "failed", str(e)
            except Exception as e:  # noqa: BLE001 - the server keeps serving; the person gets a reason
                log.exception("data study failed")
                job["state"], job["error"] = "failed", f"internal error ({type(e).__name__})"
            finally:
                for d in (out / "study").glob("*/"):      # keep study_upload.json, not the short runs' weights
                    shutil.rmtree(d, ignore_errors=True)
                data.unlink(missing_ok=True)

    def view(self, owner: str) -> tuple[str, list[dict] | None, bool]:
        """(what to say, plot rows or None, still running?) for this owner's latest study."""
        job = self._by_owner.get(owner)
        if job is None:
            return "", None, False
        if job["state"] in ("waiting", "running"):
            took = time.time() - job["started"]
            return (f"data study {job['state']} ({took / 60:.1f} of about {job['minutes']:g} minutes): "
                    f"{job['progress']}"), None, True
        if job["state"] == "failed":
            return f"data study failed: {job['error']}", None, False
        res = job["result"] or {}
        return study_text(res), study_rows(res), False
