"""The job manager's scheduler: start workers one at a time, follow their progress, record how they
ended, publish finished models, and find the jobs again after a restart (JobManager's base)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from aigc.finetune.owners import write_owner
from aigc.finetune.progress import budget_s, error_tail, eta
from aigc.finetune.store import (ACTIVE, JobError, checkpoint_step, owner_of, one_line, pid_alive, read_json,
                                 safe_name, state_problem, write_json)
from aigc.hub import REPO_ROOT
from aigc.train.stats import read_stats


class JobLifecycle:
    """Needs: root, user_models, python, threads, poll_s, _lock, _wake, _queue, _proc, _current,
    _cancel_requested, _closed, _listeners, _read(job_id), _update(job_id, **fields)."""

    # -- start-up -------------------------------------------------------------------------------
    def _recover(self, kill_wait_s: float) -> None:
        """Re-queue queued jobs; publish jobs whose worker finished while the server was down; mark
        the others interrupted, or failed when their saved state cannot be read."""
        jobs = []
        for d in sorted(self.root.iterdir()):
            j = read_json(d / "job.json") if d.is_dir() else None
            if isinstance(j, dict) and j.get("id") == d.name:
                jobs.append(j)
        for j in sorted(jobs, key=lambda j: j.get("created", 0)):
            d = self.root / j["id"]
            if j.get("state") == "queued":
                self._queue.append(j["id"])
            elif j.get("state") in ACTIVE:
                self._stop_orphan(j.get("pid"), d, kill_wait_s)
                if self._finished_while_down(d):
                    self._finish(j["id"], 0)
                    continue
                ck = checkpoint_step(d)
                self._update(j["id"], state="interrupted", pid=None, eta_s=None,
                             message="the server stopped while this job ran; resume it to continue"
                             + (f" from step {ck}" if ck else " (no checkpoint yet: it restarts)"))
            if j.get("state") in ("interrupted", "cancelled", "failed", *ACTIVE):
                self._fail_if_unreadable(j["id"])

    @staticmethod
    def _stop_orphan(pid, d: Path, kill_wait_s: float) -> None:
        """A worker of the old server still running: let it save, then stop it."""
        if not pid_alive(pid, d):
            return
        os.kill(pid, signal.SIGINT)
        t0 = time.time()
        while pid_alive(pid, d) and time.time() - t0 < kill_wait_s:
            time.sleep(0.2)
        if pid_alive(pid, d):
            os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _finished_while_down(d: Path) -> bool:
        w = read_json(d / "worker.json")
        return isinstance(w, dict) and w.get("phase") == "done" and (d / "run" / "model" / "config.json").is_file()

    def _fail_if_unreadable(self, job_id: str) -> bool:
        problem = state_problem(self.root / job_id / "run")
        if problem:
            self._update(job_id, state="failed", pid=None, eta_s=None, unresumable=problem,
                         error=problem, message=f"failed, not resumable: {problem}")
        return problem is not None

    # -- the scheduler thread -------------------------------------------------------------------
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
                published, listeners = None, []
                with self._wake:
                    if self._closed:
                        return
                    if rc is None:
                        self._progress(job_id)
                    else:
                        published = self._finish(job_id, rc)
                        self._proc, self._current = None, None
                        listeners = list(self._listeners)
                        self._wake.notify_all()
                for fn in listeners if published is not None else []:
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
                self._proc = subprocess.Popen([self.python, "-m", "aigc.finetune.worker", str(d)],
                                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              env=env)
            except OSError as e:
                self._update(job_id, state="failed", error=f"could not start the worker: {e}",
                             message="failed: could not start the worker")
                return
        self._current = job_id
        ck = checkpoint_step(d)
        self._update(job_id, state="preparing", pid=self._proc.pid, runs=j.get("runs", 0) + 1, error=None,
                     started=time.time(),
                     message="checking and preparing the data" + (f" (resuming from step {ck})" if ck else ""))

    def _progress(self, job_id: str) -> None:
        d = self.root / job_id
        j = self._read(job_id)
        w = read_json(d / "worker.json")
        stats = read_stats(d / "run")
        fields = {}
        if j["state"] == "preparing" and isinstance(w, dict) and w.get("phase") in ("running", "done"):
            fields.update(state="running", total=int(w.get("total") or j["total"]))
            if job_id not in self._cancel_requested:
                fields["message"] = "training"
        if stats and stats[-1]["step"] != j.get("step"):
            fields.update(step=stats[-1]["step"], eta_s=eta(stats, fields.get("total", j["total"]), budget_s(j)))
        if fields:
            self._update(job_id, **fields)

    # -- how a job ended ------------------------------------------------------------------------
    def _finish(self, job_id: str, rc: int) -> Path | None:
        """Record how the worker ended; the published model's folder when it finished."""
        d = self.root / job_id
        stats = read_stats(d / "run")
        step = stats[-1]["step"] if stats else self._read(job_id).get("step", 0)
        ck = checkpoint_step(d)
        cancelled = job_id in self._cancel_requested
        self._cancel_requested.discard(job_id)
        shutil.rmtree(d / "resume-prep", ignore_errors=True)
        if rc == 0:                       # finished (even if a cancel came too late to stop it)
            try:
                dest = self._publish(job_id)
            except OSError as e:
                self._update(job_id, state="failed", pid=None, eta_s=0, step=step,
                             error=f"trained, but copying the model failed: {e}",
                             message="failed: trained, but copying the model failed")
                return None
            self._update(job_id, state="done", pid=None, eta_s=0, step=step, model_path=str(dest),
                         message=f"done: saved as {dest.name}")
            return dest
        if cancelled:
            self._update(job_id, state="cancelled", pid=None, eta_s=None, step=ck or step,
                         finished=time.time(),
                         message=f"cancelled; checkpoint kept at step {ck}" if ck is not None
                         else "cancelled before the first checkpoint")
        elif rc == 130:
            self._update(job_id, state="interrupted", pid=None, eta_s=None, step=ck or step,
                         message="interrupted; resume it to continue")
        else:
            err = self._failure(d, rc)
            self._update(job_id, state="failed", pid=None, eta_s=None, step=step, error=err,
                         finished=time.time(), message="failed: " + one_line(err))
        if rc != 0:
            self._fail_if_unreadable(job_id)
        return None

    @staticmethod
    def _failure(d: Path, rc: int) -> str:
        tail = error_tail(d / "worker.log")
        if rc < 0:
            sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            err = f"the worker was killed ({sig}{'; out of memory?' if rc == -signal.SIGKILL else ''})"
            return err + ("\n" + tail if tail else "")
        return tail or f"the worker exited with status {rc}"

    def _publish(self, job_id: str) -> Path:
        """Copy <job>/run/model to <user_models>/<name> atomically (a new name if taken), owned by
        the job's owner and not shared."""
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
        write_json(tmp / "job.json", {"job": job_id, "name": j.get("name"), "base": j["spec"]["base"],
                                      "upload": j["spec"]["upload_name"],
                                      "steps": ((read_json(src / "config.json") or {}).get("train") or {}).get(
                                          "steps", j["spec"]["steps"]),
                                      "max_steps": j["spec"]["steps"], "max_minutes": j["spec"].get("max_minutes")})
        write_owner(tmp, owner_of(j), shared=False)
        card = tmp / "README.md"
        try:                          # the card's title: the name the model is published under
            text = card.read_text(encoding="utf-8")
            if text.startswith("# "):
                card.write_text(f"# {dest.name}\n" + text.split("\n", 1)[1], encoding="utf-8")
        except (OSError, UnicodeDecodeError, IndexError):
            pass
        os.rename(tmp, dest)
        return dest

