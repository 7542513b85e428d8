"""Background fine-tune jobs: a queue of aigc.finetune.run.finetune runs, one worker process at a time,
each job owned by the person who started it.

    jobs = JobManager("jobs/", user_models="user_models/")
    jid = jobs.submit("upload.zip", base="dcgan", steps=500, resolution=32, name="my cats", owner="user:ann")
    jobs.status(jid, owner="user:ann")  # state, step/total, eta_s, queue position, loss curve, preview
    jobs.cancel(jid, owner="user:ann")  # SIGINT: the loop saves a checkpoint; the job ends 'cancelled'
    jobs.resume(jid, owner="user:ann")  # continue a cancelled / interrupted / failed job

Owners are strings ("user:NAME", "token:HASH", "session:HASH", "local"). Every call that takes a job
id and an owner answers another owner's job exactly like an unknown one ("no such job"); owner=None
(a script on the server's own machine) sees every job. Quotas per owner: jobs waiting or running,
steps and minutes per job, disk used under jobs/ and user_models/. Uploads of failed and cancelled
jobs are removed after `retention_hours` (checked at start and on each submit).

Each job is a folder `<root>/<id>/` (a generated id with 128 random bits): job.json (written by the
manager only), data/ (the job's copy of the upload), run/ (the run folder), worker.log, worker.json
(written by the worker, aigc.finetune.worker). A finished model is copied atomically to
`<user_models>/<name>` with owner.json {"owner", "shared": false} and handed to every `on_publish`
listener. A new manager on the same root finds the jobs again (aigc.finetune.lifecycle).
No torch import here: the server stays light; the worker does the work.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path

from aigc.finetune.lifecycle import JobLifecycle
from aigc.finetune.owners import folder_bytes, read_owner, set_shared
from aigc.finetune.progress import QUALITY_SERIES, budget_s, eta, loss_curve, quality_curve
from aigc.finetune.run import IMAGE_RESOLUTIONS
from aigc.finetune.store import (ACTIVE, RESUMABLE, STATES, WAITING, JobError, checkpoint_step, is_job_id,
                                 new_job_id, no_such_job, owner_of, read_json, safe_name, state_problem,
                                 write_json)
from aigc.limits import FINETUNE_MINUTES_MAX, FINETUNE_STEPS_MAX
from aigc.train.stats import read_stats

__all__ = ["IMAGE_RESOLUTIONS", "JobError", "JobManager", "QUALITY_SERIES", "STATES", "safe_name"]
FINISHED = ("done", "failed", "cancelled", "interrupted")


class JobManager(JobLifecycle):
    """Fine-tune jobs under `root`, run one at a time in worker processes, FIFO queue."""

    def __init__(self, root: str | Path, user_models: str | Path | None = None, *, device: str = "cpu",
                 poll_s: float = 0.5, python: str | None = None, kill_wait_s: float = 20.0,
                 max_queue: int = 16, threads: int | None = 1, max_jobs_per_owner: int = 2,
                 max_job_minutes: float | None = 30.0, max_steps: int = FINETUNE_STEPS_MAX,
                 disk_budget_mb: float | None = None, retention_hours: float = 24.0,
                 anonymous_jobs: bool = True):
        """`threads`: CPU threads of the worker's torch (one: it shares the machine with the server).
        `max_job_minutes`: every job stops by then (a job without a time limit gets this one).
        `anonymous_jobs`: False refuses jobs from owners that are not logged-in users."""
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.user_models = Path(user_models).resolve() if user_models else self.root.parent / "user_models"
        self.device, self.poll_s, self.threads = device, poll_s, threads
        self.python = python or sys.executable
        self.max_queue, self.max_jobs_per_owner = max_queue, max_jobs_per_owner
        self.max_job_minutes, self.max_steps = max_job_minutes, max_steps
        self.disk_budget = None if disk_budget_mb is None else int(disk_budget_mb * 2 ** 20)
        self.retention_s = float(retention_hours) * 3600
        self.anonymous_jobs = anonymous_jobs
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[str] = deque()
        self._proc = None
        self._current: str | None = None
        self._cancel_requested: set[str] = set()
        self._closed = False
        self._listeners: list = []
        self._recover(kill_wait_s)
        self.clean_expired()
        self._thread = threading.Thread(target=self._loop, name=f"aigc-jobs:{self.root.name}", daemon=True)
        self._thread.start()

    # -- files ----------------------------------------------------------------------------------
    def _read(self, job_id: str, owner: str | None = None) -> dict:
        """job.json of a job `owner` may see (None: any); 'no such job' otherwise."""
        if not is_job_id(job_id):
            raise no_such_job(job_id)
        j = read_json(self.root / job_id / "job.json")
        if not isinstance(j, dict) or j.get("id") != job_id:
            raise no_such_job(job_id)
        if owner is not None and owner_of(j) != owner:
            raise no_such_job(job_id)
        return j

    def _update(self, job_id: str, **fields) -> dict:
        with self._lock:
            j = self._read(job_id)
            j.update(fields)
            j["updated"] = time.time()
            write_json(self.root / job_id / "job.json", j)
            return j

    def _all(self) -> list[dict]:
        out = []
        for d in self.root.iterdir():
            j = read_json(d / "job.json") if d.is_dir() else None
            if isinstance(j, dict) and j.get("id") == d.name:
                out.append(j)
        return out

    # -- quotas ---------------------------------------------------------------------------------
    def usage(self, owner: str) -> dict:
        """What `owner` uses: jobs waiting or running, all jobs, bytes under jobs/ and user_models/,
        and the limits that apply."""
        mine = [j for j in self._all() if owner_of(j) == owner]
        disk = sum(folder_bytes(self.root / j["id"]) for j in mine)
        if self.user_models.is_dir():
            disk += sum(folder_bytes(d) for d in self.user_models.iterdir()
                        if d.is_dir() and (read_owner(d) or {}).get("owner") == owner)
        return {"active": sum(j.get("state") in WAITING for j in mine), "jobs": len(mine), "disk_bytes": disk,
                "max_active": self.max_jobs_per_owner, "disk_budget_bytes": self.disk_budget,
                "max_job_minutes": self.max_job_minutes, "max_steps": self.max_steps}

    def _check_quota(self, owner: str, upload_bytes: int) -> None:
        if not self.anonymous_jobs and not owner.startswith("user:"):
            raise JobError("this server takes fine-tune jobs from logged-in users only")
        u = self.usage(owner)
        if u["active"] >= self.max_jobs_per_owner:
            raise JobError(f"you already have {u['active']} jobs waiting or running (at most "
                           f"{self.max_jobs_per_owner} per person); wait for one to end or cancel one")
        if self.disk_budget is not None and u["disk_bytes"] + 2 * upload_bytes > self.disk_budget:
            raise JobError(f"your jobs and models use {u['disk_bytes'] / 2 ** 20:.0f} MB of your "
                           f"{self.disk_budget / 2 ** 20:.0f} MB; delete some before starting another")

    def _check_minutes(self, max_minutes) -> float | None:
        if max_minutes is not None:
            ceiling = min(FINETUNE_MINUTES_MAX, self.max_job_minutes or FINETUNE_MINUTES_MAX)
            if isinstance(max_minutes, bool) or not isinstance(max_minutes, (int, float)) \
                    or not 0 < max_minutes <= ceiling:
                raise JobError(f"the time limit must be more than 0 and at most {ceiling:,g} minutes")
            return float(max_minutes)
        return None if self.max_job_minutes is None else float(self.max_job_minutes)

    def clean_expired(self) -> list[str]:
        """Remove the uploads (data/) of failed and cancelled jobs older than the retention period;
        those jobs can no longer resume. Returns their ids."""
        now, gone = time.time(), []
        for j in self._all():
            d = self.root / j["id"] / "data"
            ended = j.get("finished") or j.get("updated") or 0
            if j.get("state") in ("failed", "cancelled") and d.exists() and now - ended >= self.retention_s:
                shutil.rmtree(d, ignore_errors=True)
                self._update(j["id"], data_removed=True, unresumable="its upload was removed after the "
                             "retention period")
                gone.append(j["id"])
        return gone

    # -- API ------------------------------------------------------------------------------------
    def submit(self, data: str | Path, base: str, *, steps: int = 500, resolution: int | None = None,
               batch_size: int = 32, name: str | None = None, tiny: bool = False, seed: int = 0,
               balance: bool = False, max_minutes: float | None = None, owner: str = "local") -> str:
        """Queue a job owned by `owner`: copy the upload into the job folder, return the new id.
        max_minutes: a wall-clock budget beside the steps; the job stops at whichever comes first."""
        src = Path(data)
        if not src.is_file():
            raise JobError(f"{src.name}: no such upload")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.max_steps:
            raise JobError(f"steps must be a whole number from 1 to {self.max_steps:,}")
        if resolution is not None and resolution not in IMAGE_RESOLUTIONS:
            raise JobError(f"resolution must be one of {', '.join(map(str, IMAGE_RESOLUTIONS))}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise JobError("batch size must be at least 1")
        max_minutes = self._check_minutes(max_minutes)
        if not isinstance(owner, str) or not owner:
            raise JobError("a job needs an owner")
        self.clean_expired()
        with self._wake:
            if len(self._queue) >= self.max_queue:
                raise JobError(f"the queue is full ({self.max_queue} jobs waiting); try again later")
            self._check_quota(owner, src.stat().st_size)
            base = str(base)
            if os.sep in base or Path(base).exists():      # a path: make it absolute for the worker
                base = str(Path(base).resolve())
            job_id = new_job_id()
            d = self.root / job_id
            (d / "data").mkdir(parents=True)
            upload = d / "data" / (safe_name(src.stem, "upload") + src.suffix.lower())
            shutil.copyfile(src, upload)
            spec = {"data": str(upload), "upload_name": src.name, "base": base, "steps": steps,
                    "resolution": resolution, "batch_size": batch_size, "tiny": bool(tiny), "seed": int(seed),
                    "balance": bool(balance), "device": self.device, "max_minutes": max_minutes}
            job = {"id": job_id, "owner": owner, "name": safe_name(name or f"{Path(base).name}-{src.stem}"),
                   "state": "queued", "step": 0, "total": steps, "eta_s": None, "message": "waiting for its turn",
                   "error": None, "created": time.time(), "updated": time.time(), "pid": None,
                   "model_path": None, "spec": spec, "runs": 0}
            write_json(d / "job.json", job)
            self._queue.append(job_id)
            self._wake.notify_all()
        return job_id

    def on_publish(self, fn) -> None:
        """Call `fn(model_path)` (on the scheduler thread, outside its lock) whenever a finished job's
        model lands in the user-models folder, e.g. a running app's registry.add. Idempotent."""
        with self._lock:
            if fn not in self._listeners:
                self._listeners.append(fn)

    def jobs(self, owner: str | None = None) -> list[dict]:
        """The job.json of every job of `owner` (None: everyone's), newest first."""
        out = [j for j in self._all() if owner is None or owner_of(j) == owner]
        return sorted(out, key=lambda j: j.get("created", 0), reverse=True)

    def position(self, job_id: str) -> int | None:
        """1-based place in the queue (1: next to run), None when not queued."""
        with self._lock:
            q = list(self._queue)
        return q.index(job_id) + 1 if job_id in q else None

    def status(self, job_id: str, owner: str | None = None) -> dict:
        """job.json plus: position, resumable, loss and quality rows, preview (latest sample grid),
        data_preview, report (the preparation report), budget_s and elapsed_s."""
        with self._lock:
            j = self._read(job_id, owner)
            j["position"] = self.position(job_id)
        d = self.root / job_id
        run = d / "run"
        stats = read_stats(run)
        if j["state"] in ACTIVE and stats:
            j["step"] = stats[-1]["step"]
            j["eta_s"] = eta(stats, j["total"], budget_s(j))
        j["budget_s"] = budget_s(j)
        j["elapsed_s"] = float(stats[-1].get("time_s", 0.0)) if stats else 0.0
        j["loss"] = loss_curve(stats)
        j["quality"] = quality_curve(stats)
        measured = [r for r in stats if any(k in r for k in QUALITY_SERIES)]
        j["quality_first"] = {k: measured[0][k] for k in QUALITY_SERIES if measured and k in measured[0]}
        j["quality_last"] = {k: measured[-1][k] for k in QUALITY_SERIES if measured and k in measured[-1]}
        samples = sorted((run / "samples").glob("step-*.png")) if (run / "samples").is_dir() else []
        j["preview"] = str(samples[-1]) if samples else None
        j["data_preview"] = str(run / "preview.png") if (run / "preview.png").is_file() else None
        j["report"] = read_json(run / "report.json")
        j["checkpoint_step"] = checkpoint_step(d)
        j["resumable"] = not j.get("unresumable") and (j["state"] in ("cancelled", "interrupted") or (
            j["state"] == "failed" and j["checkpoint_step"] is not None))
        return j

    def cancel(self, job_id: str, owner: str | None = None) -> dict:
        """Queued: dropped at once. Running: SIGINT, the loop saves its checkpoint, the job ends
        'cancelled' (resumable). Finished jobs: JobError."""
        with self._wake:
            j = self._read(job_id, owner)
            if j["state"] == "queued":
                if job_id in self._queue:
                    self._queue.remove(job_id)
                self._update(job_id, state="cancelled", finished=time.time(), message="cancelled before it started")
            elif j["state"] in ACTIVE and self._current == job_id and self._proc is not None:
                self._cancel_requested.add(job_id)
                try:
                    self._proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
                self._update(job_id, message="cancelling: saving a checkpoint")
            else:
                raise JobError(f"job {job_id} is {j['state']}; only queued or running jobs can be cancelled")
            self._wake.notify_all()
        return self.status(job_id)

    def resume(self, job_id: str, steps: int | None = None, owner: str | None = None) -> dict:
        """Queue a cancelled / interrupted / failed job again; it continues from its checkpoint
        (or starts over when it has none). `steps` raises the total budget."""
        with self._wake:
            j = self._read(job_id, owner)
            if j["state"] not in RESUMABLE:
                raise JobError(f"job {job_id} is {j['state']}; only cancelled, interrupted or failed jobs resume")
            problem = j.get("unresumable") or state_problem(self.root / job_id / "run")
            if problem:
                raise JobError(f"job {job_id} cannot resume: {problem}")
            if owner is not None:
                self._check_quota(owner, 0)
            spec = dict(j["spec"])
            if steps is not None:
                if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.max_steps:
                    raise JobError(f"steps must be a whole number from 1 to {self.max_steps:,}")
                spec["steps"] = steps
            self._update(job_id, state="queued", spec=spec, total=spec["steps"], error=None, eta_s=None,
                         message="waiting for its turn (resume)")
            self._queue.append(job_id)
            self._wake.notify_all()
        return self.status(job_id)

    def set_shared(self, model: str | Path, owner: str, shared: bool) -> dict:
        """Share (or stop sharing) one of `owner`'s published models (a name in user_models/)."""
        name = Path(str(model)).name
        if name in ("", ".", "..") or name.startswith("."):
            raise JobError(f"no such model {str(model)[:60]!r} among your fine-tuned models")
        return set_shared(self.user_models / name, owner, shared)

    def wait(self, job_id: str, timeout: float = 60.0, states=FINISHED) -> dict:
        """Block until the job reaches one of `states` (tests, scripts); TimeoutError otherwise."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self._read(job_id)["state"] in states:
                return self.status(job_id)
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} still {self._read(job_id)['state']} after {timeout}s")

    def close(self, stop_worker: bool = False, timeout: float = 30.0) -> None:
        """Stop scheduling. `stop_worker`: also interrupt a running worker (it saves a checkpoint)
        and wait for it; otherwise it is left alone and a new manager recovers it."""
        with self._wake:
            self._closed = True
            proc = self._proc
            self._wake.notify_all()
        self._thread.join(timeout=5)
        if stop_worker and proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except Exception:  # noqa: BLE001 - a worker that ignores SIGINT is killed
                proc.kill()
                proc.wait()

    def user_model_dirs(self) -> list[Path]:
        """Finished models copied into the user-models folder."""
        if not self.user_models.is_dir():
            return []
        return sorted(p for p in self.user_models.iterdir() if (p / "config.json").is_file())
