"""Background fine-tune jobs: a queue of `python -m aigc finetune` runs, one worker process at a time.

    jobs = JobManager("jobs/", user_models="user_models/")
    jid = jobs.submit("upload.zip", base="dcgan", steps=500, resolution=32, name="my cats")
    jobs.status(jid)      # state, step/total, eta_s, queue position, loss curve, latest preview
    jobs.cancel(jid)      # SIGINT: the loop saves a checkpoint; the job ends 'cancelled'
    jobs.resume(jid)      # continue a cancelled / interrupted / failed job from its checkpoint

Each job is a folder `<root>/<id>/` (the id is generated, never a user-supplied name):
  job.json     status, written atomically by the manager only: state (queued, preparing, running,
               done, failed, cancelled, interrupted), step, total, eta_s, message, error, spec
  data/        the job's own copy of the upload
  run/         the run folder (report.json, preview.png, options.json, stats.jsonl, samples/,
               model/, state.pt)
  worker.log   the worker's stdout and stderr
  worker.json  written by the worker when training starts (phase, total)

The worker is a separate process (`python -m aigc.finetune.jobs worker JOB_DIR`), so a crash or an
out-of-memory kill fails only that job. A finished model is copied atomically to
`<user_models>/<name>` and handed to every `on_publish` listener (a running app's registry).
`aigc finetune` measures quality while it trains (KID in random-conv features and copy rate
against the upload, or held-out cross-entropy); `status()` returns it as `quality` rows. A new manager on the same root finds the jobs again: one that was running
when the server died is marked 'interrupted' (resumable), queued ones are queued again.
No torch import here: the server stays light; the worker does the work.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from aigc.hub import REPO_ROOT
from aigc.train.stats import read_stats
from aigc.limits import FINETUNE_MINUTES_MAX, FINETUNE_STEPS_MAX

STATES = ("queued", "preparing", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = ("preparing", "running")
RESUMABLE = ("cancelled", "interrupted", "failed")
IMAGE_RESOLUTIONS = (28, 32, 64)
_NON_LOSS = {"step", "epoch", "time_s", "img_per_s", "tok_per_s", "lr", "peak_mem_gb", "eval_s",
             "kid_randconv", "copy_rate", "copy_rate_median_ratio", "nats_per_char", "bits_per_char"}
# quality measured during a job (aigc finetune's periodic evaluation): stats key -> (series label, scale)
QUALITY_SERIES = {
    "kid_randconv": ("KID×1000 (random-conv features, vs your data)", 1000.0),
    "copy_rate": ("copy rate % (samples reproducing a training image)", 100.0),
    "nats_per_char": ("held-out cross-entropy (nats/char)", 1.0),
}


class JobError(ValueError):
    """Bad request to the job manager (unknown job, wrong state, bad spec): one line for the user."""


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def safe_name(name: str, default: str = "model") -> str:
    """A folder-safe version of a user-typed name: letters, digits, '-', '_' and '.' (max 48)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or "")).strip("-._")[:48]
    return s or default


def _pid_alive(pid: int | None, job_dir: Path) -> bool:
    """The worker of `job_dir` still runs as `pid` (checks its command line where /proc exists)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmd = Path(f"/proc/{pid}/cmdline")
    if cmd.exists():
        try:
            return str(job_dir) in cmd.read_bytes().decode(errors="replace")
        except OSError:
            return False
    return True


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


def _eta(stats: list[dict], total: int, budget_s: float | None = None) -> float | None:
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


def _budget_s(job: dict) -> float | None:
    """A job's time limit in seconds (None: steps only)."""
    m = (job.get("spec") or {}).get("max_minutes")
    return float(m) * 60 if m else None


def _error_tail(log: Path, n_lines: int = 15) -> str:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errs = [ln[len("error: "):] for ln in lines if ln.startswith("error: ")]
    if errs:
        return errs[-1]
    return "\n".join(lines[-n_lines:])


class JobManager:
    """Fine-tune jobs under `root`, run one at a time in worker processes, FIFO queue."""

    def __init__(self, root: str | Path, user_models: str | Path | None = None, *, device: str = "cpu",
                 poll_s: float = 0.5, python: str | None = None, kill_wait_s: float = 20.0,
                 max_queue: int = 16, threads: int | None = 1):
        """`threads`: CPU threads of the worker's torch (OMP_NUM_THREADS). One by default: the worker
        shares the machine with the server, and on a busy two-core machine a two-thread worker spun
        ~10x slower than a one-thread one (tiny DCGAN: 3.5 vs 36 images/s). None: torch's default."""
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.user_models = Path(user_models).resolve() if user_models else self.root.parent / "user_models"
        self.device = device
        self.poll_s = poll_s
        self.python = python or sys.executable
        self.max_queue = max_queue
        self.threads = threads
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[str] = deque()
        self._proc: subprocess.Popen | None = None
        self._current: str | None = None
        self._cancel_requested: set[str] = set()
        self._closed = False
        self._listeners: list = []
        self._recover(kill_wait_s)
        self._thread = threading.Thread(target=self._loop, name=f"aigc-jobs:{self.root.name}", daemon=True)
        self._thread.start()

    # -- files ----------------------------------------------------------------------------------
    def _dir(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not re.fullmatch(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}", job_id):
            raise JobError(f"unknown job {str(job_id)[:40]!r}")
        d = self.root / job_id
        if not (d / "job.json").is_file():
            raise JobError(f"unknown job {job_id!r}")
        return d

    def _read(self, job_id: str) -> dict:
        j = _read_json(self._dir(job_id) / "job.json")
        if not isinstance(j, dict):
            raise JobError(f"job {job_id!r}: unreadable job.json")
        return j

    def _update(self, job_id: str, **fields) -> dict:
        with self._lock:
            j = self._read(job_id)
            j.update(fields)
            j["updated"] = time.time()
            _write_json(self.root / job_id / "job.json", j)
            return j

    def _recover(self, kill_wait_s: float) -> None:
        """Startup: re-queue queued jobs; jobs whose worker died with the old server -> interrupted."""
        jobs = []
        for d in sorted(self.root.iterdir()):
            j = _read_json(d / "job.json") if d.is_dir() else None
            if isinstance(j, dict) and j.get("id") == d.name:
                jobs.append(j)
        for j in sorted(jobs, key=lambda j: j.get("created", 0)):
            d = self.root / j["id"]
            if j.get("state") == "queued":
                self._queue.append(j["id"])
            elif j.get("state") in ACTIVE:
                pid = j.get("pid")
                if _pid_alive(pid, d):       # an orphan of the old server: let it save, then stop it
                    os.kill(pid, signal.SIGINT)
                    t0 = time.time()
                    while _pid_alive(pid, d) and time.time() - t0 < kill_wait_s:
                        time.sleep(0.2)
                    if _pid_alive(pid, d):
                        os.kill(pid, signal.SIGKILL)
                ck = self._checkpoint_step(d)
                self._update(j["id"], state="interrupted", pid=None, eta_s=None,
                             message="the server stopped while this job ran; resume it to continue"
                             + (f" from step {ck}" if ck else " (no checkpoint yet: it restarts)"))

    @staticmethod
    def _checkpoint_step(job_dir: Path) -> int | None:
        """The step of the run's last checkpoint (model/config.json meta), if there is one."""
        run = job_dir / "run"
        if not (run / "state.pt").is_file():
            return None
        cfg = _read_json(run / "model" / "config.json")
        step = cfg.get("trained_steps") if isinstance(cfg, dict) else None
        return int(step) if isinstance(step, (int, float)) else 0

    # -- API ------------------------------------------------------------------------------------
    def submit(self, data: str | Path, base: str, *, steps: int = 500, resolution: int | None = None,
               batch_size: int = 32, name: str | None = None, tiny: bool = False, seed: int = 0,
               balance: bool = False, max_minutes: float | None = None) -> str:
        """Queue a job: copy the upload into the job folder, return the new job id.

        max_minutes: a wall-clock budget beside the steps (None: steps only); the job stops at
        whichever comes first, and its learning-rate schedule follows whichever is further along."""
        src = Path(data)
        if not src.is_file():
            raise JobError(f"{src.name}: no such upload")
        if not isinstance(steps, int) or not 1 <= steps <= FINETUNE_STEPS_MAX:
            raise JobError("steps must be a whole number from 1 to 1,000,000")
        if resolution is not None and resolution not in IMAGE_RESOLUTIONS:
            raise JobError(f"resolution must be one of {', '.join(map(str, IMAGE_RESOLUTIONS))}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise JobError("batch size must be at least 1")
        if max_minutes is not None:
            if isinstance(max_minutes, bool) or not isinstance(max_minutes, (int, float)) \
                    or not 0 < max_minutes <= FINETUNE_MINUTES_MAX:
                raise JobError(f"the time limit must be more than 0 and at most {FINETUNE_MINUTES_MAX:,} minutes")
            max_minutes = float(max_minutes)
        if len(self._queue) >= self.max_queue:
            raise JobError(f"the queue is full ({self.max_queue} jobs waiting); try again later")
        base = str(base)
        if os.sep in base or Path(base).exists():      # a path: make it absolute for the worker
            base = str(Path(base).resolve())
        job_id = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        d = self.root / job_id
        (d / "data").mkdir(parents=True)
        upload = d / "data" / (safe_name(src.stem, "upload") + src.suffix.lower())
        shutil.copyfile(src, upload)
        spec = {"data": str(upload), "upload_name": src.name, "base": base, "steps": steps,
                "resolution": resolution, "batch_size": batch_size, "tiny": bool(tiny), "seed": int(seed),
                "balance": bool(balance), "device": self.device, "max_minutes": max_minutes}
        job = {"id": job_id, "name": safe_name(name or f"{Path(base).name}-{src.stem}"), "state": "queued",
               "step": 0, "total": steps, "eta_s": None, "message": "waiting for its turn", "error": None,
               "created": time.time(), "updated": time.time(), "pid": None, "model_path": None,
               "spec": spec, "runs": 0}
        with self._wake:
            _write_json(d / "job.json", job)
            self._queue.append(job_id)
            self._wake.notify_all()
        return job_id

    def on_publish(self, fn) -> None:
        """Call `fn(model_path)` (on the scheduler thread, outside its lock) whenever a finished job's
        model lands in the user-models folder, e.g. a running app's registry.add. Idempotent."""
        with self._lock:
            if fn not in self._listeners:
                self._listeners.append(fn)

    def jobs(self) -> list[dict]:
        """Every job's job.json (newest first)."""
        out = []
        for d in self.root.iterdir():
            j = _read_json(d / "job.json") if d.is_dir() else None
            if isinstance(j, dict) and j.get("id") == d.name:
                out.append(j)
        return sorted(out, key=lambda j: j.get("created", 0), reverse=True)

    def position(self, job_id: str) -> int | None:
        """1-based place in the queue (1: next to run), None when not queued."""
        with self._lock:
            q = list(self._queue)
        return q.index(job_id) + 1 if job_id in q else None

    def status(self, job_id: str) -> dict:
        """job.json plus: position, resumable, loss (rows step/value/series), preview (latest sample
        grid path), data_preview (the upload's preview), report (the preparation report),
        budget_s (the time limit, None without one) and elapsed_s (the run's clock)."""
        d = self._dir(job_id)
        with self._lock:
            j = self._read(job_id)
            j["position"] = self.position(job_id)
        run = d / "run"
        stats = read_stats(run)
        if j["state"] in ACTIVE and stats:
            j["step"] = stats[-1]["step"]
            j["eta_s"] = _eta(stats, j["total"], _budget_s(j))
        j["budget_s"] = _budget_s(j)
        j["elapsed_s"] = float(stats[-1].get("time_s", 0.0)) if stats else 0.0
        j["loss"] = loss_curve(stats)
        j["quality"] = quality_curve(stats)
        measured = [r for r in stats if any(k in r for k in QUALITY_SERIES)]
        j["quality_first"] = {k: measured[0][k] for k in QUALITY_SERIES if measured and k in measured[0]}
        j["quality_last"] = {k: measured[-1][k] for k in QUALITY_SERIES if measured and k in measured[-1]}
        samples = sorted((run / "samples").glob("step-*.png")) if (run / "samples").is_dir() else []
        j["preview"] = str(samples[-1]) if samples else None
        j["data_preview"] = str(run / "preview.png") if (run / "preview.png").is_file() else None
        j["report"] = _read_json(run / "report.json")
        j["checkpoint_step"] = self._checkpoint_step(d)
        j["resumable"] = j["state"] in ("cancelled", "interrupted") or (
            j["state"] == "failed" and j["checkpoint_step"] is not None)
        return j

    def cancel(self, job_id: str) -> dict:
        """Queued: dropped at once. Running: SIGINT, the loop saves its checkpoint, the job ends
        'cancelled' (resumable). Finished jobs: JobError."""
        with self._wake:
            j = self._read(job_id)
            if j["state"] == "queued":
                if job_id in self._queue:
                    self._queue.remove(job_id)
                self._update(job_id, state="cancelled", message="cancelled before it started")
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

    def resume(self, job_id: str, steps: int | None = None) -> dict:
        """Queue a cancelled / interrupted / failed job again; it continues from its checkpoint
        (or starts over when it has none). `steps` raises the total budget."""
        with self._wake:
            j = self._read(job_id)
            if j["state"] not in RESUMABLE:
                raise JobError(f"job {job_id} is {j['state']}; only cancelled, interrupted or failed jobs resume")
            spec = dict(j["spec"])
            if steps is not None:
                if not isinstance(steps, int) or steps < 1:
                    raise JobError("steps must be at least 1")
                spec["steps"] = steps
            self._update(job_id, state="queued", spec=spec, total=spec["steps"], error=None, eta_s=None,
                         message="waiting for its turn (resume)")
            self._queue.append(job_id)
            self._wake.notify_all()
        return self.status(job_id)

    def wait(self, job_id: str, timeout: float = 60.0, states=("done", "failed", "cancelled", "interrupted")) -> dict:
        """Block until the job reaches one of `states` (tests, scripts); TimeoutError otherwise."""
        t0 = time.time()
        while time.time() - t0 < timeout:
            j = self._read(job_id)
            if j["state"] in states:
                return self.status(job_id)
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} still {self._read(job_id)['state']} after {timeout}s")

    def close(self) -> None:
        """Stop scheduling (the worker, if any, is left alone: a new manager recovers it)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout=5)

    def user_model_dirs(self) -> list[Path]:
        """Finished models copied into the user-models folder."""
        if not self.user_models.is_dir():
            return []
        return sorted(p for p in self.user_models.iterdir() if (p / "config.json").is_file())

    # -- scheduler ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                if self._closed:
                    return
                if self._proc is None and self._queue:
                    self._launch(self._queue.popleft())
                proc, job_id = self._proc, self._current
            if proc is not None:
                rc = proc.poll()
                published = None
                with self._wake:
                    if self._closed:
                        return
                    if rc is None:
                        self._progress(job_id)
                    else:
                        published = self._finish(job_id, rc)
                        self._proc, self._current = None, None
                        listeners = list(self._listeners)
                if published is not None:
                    for fn in listeners:
                        try:
                            fn(published)
                        except Exception as e:  # noqa: BLE001 - a listener must not stop the queue
                            print(f"aigc.finetune.jobs: listener {fn!r} failed on {published}: {e}", file=sys.stderr)
                if rc is not None:
                    continue
            with self._wake:
                if not self._closed:
                    self._wake.wait(self.poll_s)

    def _launch(self, job_id: str) -> None:
        d = self.root / job_id
        try:
            j = self._read(job_id)
        except JobError:
            return
        (d / "worker.json").unlink(missing_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env["PYTHONUNBUFFERED"] = "1"
        if self.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(int(self.threads))
        with open(d / "worker.log", "ab") as log:
            log.write(f"\n--- worker started {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            log.flush()
            try:
                self._proc = subprocess.Popen([self.python, "-m", "aigc.finetune.jobs", "worker", str(d)],
                                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              env=env)
            except OSError as e:
                self._update(job_id, state="failed", error=f"could not start the worker: {e}", message="failed")
                return
        self._current = job_id
        ck = self._checkpoint_step(d)
        self._update(job_id, state="preparing", pid=self._proc.pid, runs=j.get("runs", 0) + 1, error=None,
                     started=time.time(),
                     message="checking and preparing the data" + (f" (resuming from step {ck})" if ck else ""))

    def _progress(self, job_id: str) -> None:
        d = self.root / job_id
        j = self._read(job_id)
        w = _read_json(d / "worker.json")
        stats = read_stats(d / "run")
        fields = {}
        if j["state"] == "preparing" and isinstance(w, dict) and w.get("phase") == "running":
            fields.update(state="running", total=int(w.get("total") or j["total"]))
            if job_id not in self._cancel_requested:
                fields["message"] = "training"
        if stats and stats[-1]["step"] != j.get("step"):
            fields.update(step=stats[-1]["step"], eta_s=_eta(stats, fields.get("total", j["total"]), _budget_s(j)))
        if fields:
            self._update(job_id, **fields)

    def _finish(self, job_id: str, rc: int) -> Path | None:
        """Record how the worker ended; the published model's folder when it finished."""
        d = self.root / job_id
        stats = read_stats(d / "run")
        step = stats[-1]["step"] if stats else self._read(job_id).get("step", 0)
        ck = self._checkpoint_step(d)
        cancelled = job_id in self._cancel_requested
        self._cancel_requested.discard(job_id)
        shutil.rmtree(d / "resume-prep", ignore_errors=True)
        if rc == 0:                       # finished (even if a cancel came too late to stop it)
            try:
                dest = self._publish(job_id)
            except OSError as e:
                self._update(job_id, state="failed", pid=None, eta_s=0, step=step,
                             error=f"trained, but copying the model failed: {e}", message="failed")
                return None
            self._update(job_id, state="done", pid=None, eta_s=0, step=step, model_path=str(dest),
                         message=f"done: saved as {dest.name}")
            return dest
        elif cancelled:
            self._update(job_id, state="cancelled", pid=None, eta_s=None, step=ck or step,
                         message=f"cancelled; checkpoint kept at step {ck}" if ck is not None
                         else "cancelled before the first checkpoint")
        elif rc == 130:
            self._update(job_id, state="interrupted", pid=None, eta_s=None, step=ck or step,
                         message="interrupted; resume it to continue")
        else:
            if rc < 0:
                sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
                err = f"the worker was killed ({sig}{'; out of memory?' if rc == -signal.SIGKILL else ''})"
                tail = _error_tail(d / "worker.log")
                err = err + ("\n" + tail if tail else "")
            else:
                err = _error_tail(d / "worker.log") or f"the worker exited with status {rc}"
            self._update(job_id, state="failed", pid=None, eta_s=None, step=step, error=err,
                         message="failed: " + err.splitlines()[0][:200])

    def _publish(self, job_id: str) -> Path:
        """Copy <job>/run/model to <user_models>/<name> atomically (a new name if taken)."""
        j = self._read(job_id)
        src = self.root / job_id / "run" / "model"
        self.user_models.mkdir(parents=True, exist_ok=True)
        base = safe_name(j.get("name"))
        dest, n = self.user_models / base, 2
        while dest.exists():
            dest, n = self.user_models / f"{base}-{n}", n + 1
        tmp = self.user_models / f".tmp-{job_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        meta_path = tmp / "job.json"
        _write_json(meta_path, {"job": job_id, "name": j.get("name"), "base": j["spec"]["base"],
                                "upload": j["spec"]["upload_name"],
                                "steps": ((_read_json(src / "config.json") or {}).get("train") or {}).get(
                                    "steps", j["spec"]["steps"]),
                                "max_steps": j["spec"]["steps"], "max_minutes": j["spec"].get("max_minutes")})
        card = tmp / "README.md"
        try:                          # the card's title: the name the model is published under
            text = card.read_text(encoding="utf-8")
            if text.startswith("# "):
                card.write_text(f"# {dest.name}\n" + text.split("\n", 1)[1], encoding="utf-8")
        except (OSError, UnicodeDecodeError, IndexError):
            pass
        os.rename(tmp, dest)
        return dest


# -- the worker process -----------------------------------------------------------------------------
def _worker(job_dir: Path) -> int:
    """Run (or resume) one job through `aigc finetune`, with live-progress cadences and periodic
    checkpoints. Exit status: 0 done, 2 bad input (message on stderr), 130 interrupted."""
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if the server ignores SIGINT
    from aigc.cli import commands as cli
    from aigc.train import loop

    job = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    spec = job["spec"]
    run_dir = job_dir / "run"
    resuming = (run_dir / "state.pt").is_file()
    if not resuming and run_dir.exists():
        shutil.rmtree(run_dir)              # killed before its first checkpoint: start over
    real_train = loop.train

    def train(opts, data=None, resume=None, heldout=None):
        steps = int(opts.max_steps or spec["steps"])
        opts.log_every = max(1, min(50, steps // 20))
        opts.sample_every = max(1, steps // 10)
        opts.ckpt_every = max(1, steps // 10)
        _write_json(job_dir / "worker.json", {"phase": "running", "total": steps, "pid": os.getpid()})
        if resuming:
            again = loop.TrainOptions(max_steps=steps, epochs=None, max_minutes=None, progress=False,
                                      device=opts.device)
            return real_train(again, data=data, resume=str(run_dir), heldout=heldout)
        return real_train(opts, data=data, heldout=heldout)

    loop.train = train
    out = job_dir / "resume-prep" if resuming else run_dir
    shutil.rmtree(job_dir / "resume-prep", ignore_errors=True)
    argv = ["finetune", spec["base"], "--data", spec["data"], "--out", str(out), "--steps", str(spec["steps"]),
            "--batch-size", str(spec["batch_size"]), "--device", spec.get("device", "cpu"),
            "--seed", str(spec.get("seed", 0)), "--no-progress"]
    if spec.get("resolution"):
        argv += ["--resolution", str(spec["resolution"])]
    if spec.get("tiny"):
        argv.append("--tiny")
    if spec.get("balance"):
        argv.append("--balance")
    if spec.get("max_minutes"):
        argv += ["--max-minutes", repr(float(spec["max_minutes"]))]
    return cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "worker":
        print("usage: python -m aigc.finetune.jobs worker JOB_DIR", file=sys.stderr)
        return 2
    return _worker(Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main())
