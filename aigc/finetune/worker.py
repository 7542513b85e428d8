"""The job worker process: `python -m aigc.finetune.worker JOB_DIR` runs (or resumes) one job through
aigc.finetune.run.finetune. Exit status: 0 done, 2 bad input (one line on stderr), 130 interrupted.

It writes `worker.json` ({"phase": "running", "total": N} when training starts, {"phase": "done",
"path": ...} when the model is saved), so the manager can tell a finished run from a killed one
even when the server was down while it ended.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

from aigc.fileio import atomic_write_json


def spec_for(job_dir: Path, spec: dict):
    """The job's spec (job.json) -> FinetuneSpec for its run folder."""
    from aigc.finetune.run import FinetuneSpec
    return FinetuneSpec(base=spec["base"], data=spec["data"], out=str(job_dir / "run"), steps=int(spec["steps"]),
                        max_minutes=spec.get("max_minutes"), resolution=spec.get("resolution"),
                        batch_size=int(spec.get("batch_size", 32)), balance=bool(spec.get("balance")),
                        device=spec.get("device", "cpu"), seed=int(spec.get("seed", 0)), tiny=bool(spec.get("tiny")),
                        progress=False, live=True, resume=True)


def run_job(job_dir: Path) -> int:
    """Run one job folder to its end; the exit status of the worker."""
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if the server ignores SIGINT
    try:
        os.nice(10)                 # below the server's requests in the OS scheduler
    except (OSError, AttributeError):
        pass
    from aigc.checkpoint import CheckpointError
    from aigc.finetune.run import finetune
    job = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    run_dir = job_dir / "run"
    if not (run_dir / "state.pt").is_file() and run_dir.exists():
        shutil.rmtree(run_dir)              # killed before its first checkpoint: start over

    def on_progress(event: dict) -> None:
        if event.get("text"):
            print(event["text"], flush=True)
        if event["phase"] in ("running", "done"):
            atomic_write_json(job_dir / "worker.json", {**event, "pid": os.getpid()})

    try:
        finetune(spec_for(job_dir, job["spec"]), on_progress=on_progress)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m aigc.finetune.worker JOB_DIR", file=sys.stderr)
        return 2
    return run_job(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
