"""Shared by the job-lifecycle tests: a JobLifecycle over plain job folders, and fake run outputs."""
import json
import threading
import zipfile
from collections import deque
from pathlib import Path

from aigc.finetune.jobs import JobManager
from aigc.finetune.lifecycle import JobLifecycle
from aigc.finetune.store import new_job_id


class Harness(JobLifecycle):
    """JobLifecycle with JobManager's job.json access and nothing running."""
    _read = JobManager._read
    _update = JobManager._update

    def __init__(self, root: Path, python: str = "unused", threads=None):
        self.root, self.user_models = root / "jobs", root / "user_models"
        self.root.mkdir(parents=True, exist_ok=True)
        self.python, self.threads, self.poll_s = python, threads, 0.05
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue, self._proc, self._current = deque(), None, None
        self._cancel_requested, self._closed, self._listeners = set(), False, []

    def job(self, state="queued", created=None, **extra) -> str:
        jid = new_job_id()
        (self.root / jid).mkdir()
        job = {"id": jid, "owner": "user:ann", "name": "my cats", "state": state, "step": 0, "total": 40,
               "eta_s": None, "message": state, "error": None, "pid": None, "model_path": None,
               "spec": {"base": "dcgan", "upload_name": "cats.zip", "steps": 40, "max_minutes": None},
               **({} if created is None else {"created": created}), **extra}
        (self.root / jid / "job.json").write_text(json.dumps(job))
        return jid

    def j(self, jid) -> dict:
        return json.loads((self.root / jid / "job.json").read_text())




def state_pt(run: Path, ok=True):
    run.mkdir(parents=True, exist_ok=True)
    if ok:
        with zipfile.ZipFile(run / "state.pt", "w") as z:
            z.writestr("state/data.pkl", b"x")
    else:
        (run / "state.pt").write_bytes(b"PK\x03\x04 truncated")


def model_folder(folder: Path, steps=None, card="# run\n\nbody\n"):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"kind": "vae", "config": {}, "trained_steps": steps or 0}
    if steps is not None:
        cfg["train"] = {"steps": steps}
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes(b"w")
    if card is not None:
        (folder / "README.md").write_text(card, encoding="utf-8")


def stats_file(run: Path, *steps):
    run.mkdir(parents=True, exist_ok=True)
    (run / "stats.jsonl").write_text("".join(json.dumps({"step": s, "time_s": s / 10, "loss": 1.0}) + "\n"
                                             for s in steps) + '{"step": 99, "los')
