"""A job folder on disk: its id, its job.json, whether its worker still runs, whether its saved state
can be read. No torch: the server stays light."""
from __future__ import annotations

import json
import os
import re
import secrets
import time
import zipfile
from pathlib import Path

from aigc.fileio import atomic_write_json

STATES = ("queued", "preparing", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE = ("preparing", "running")
WAITING = ("queued", *ACTIVE)
RESUMABLE = ("cancelled", "interrupted", "failed")
# new ids carry 128 random bits; the 24-bit form is read only for folders made before
ID_RE = re.compile(r"[0-9]{8}-[0-9]{6}-(?:[0-9a-f]{32}|[0-9a-f]{6})")
LEGACY_OWNER = "local"          # the owner of a job.json written before jobs had owners


class JobError(ValueError):
    """Bad request to the job manager (unknown job, wrong state, bad spec, quota): one line."""


def no_such_job(job_id) -> JobError:
    """Unknown ids and other owners' ids answer alike."""
    return JobError(f"no such job {str(job_id)[:80]!r} (unknown job id)")


def new_job_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(16)}"


def is_job_id(job_id) -> bool:
    return isinstance(job_id, str) and ID_RE.fullmatch(job_id) is not None


def write_json(path: Path, obj) -> None:
    atomic_write_json(path, obj)


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def owner_of(job: dict) -> str:
    return job.get("owner") or LEGACY_OWNER


def safe_name(name: str, default: str = "model") -> str:
    """A folder-safe version of a user-typed name: letters, digits, '-', '_' and '.' (max 48)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name or "")).strip("-._")[:48]
    return s or default


def one_line(text: str, most: int = 200) -> str:
    first = next((ln.strip() for ln in str(text or "").splitlines() if ln.strip()), "")
    return first if len(first) <= most else first[:most - 1] + "…"


def pid_alive(pid: int | None, job_dir: Path) -> bool:
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
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
            if stat and stat[0] == "Z":       # exited, not yet reaped
                return False
            return str(job_dir) in cmd.read_bytes().decode(errors="replace")
        except OSError:
            return False
    return True


def state_problem(run_dir: Path) -> str | None:
    """Why the run's state.pt cannot be resumed from (None: it reads, or there is none). torch
    saves a zip archive; its directory and CRCs are checked without loading torch."""
    p = run_dir / "state.pt"
    if not p.is_file():
        return None
    try:
        with zipfile.ZipFile(p) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        return f"its saved state (state.pt) cannot be read ({type(e).__name__}: truncated or corrupt)"
    if bad is not None:
        return f"its saved state (state.pt) is corrupt (bad member {bad[:60]})"
    return None


def checkpoint_step(job_dir: Path) -> int | None:
    """The step of the run's last checkpoint (model/config.json meta), if there is one."""
    run = job_dir / "run"
    if not (run / "state.pt").is_file():
        return None
    cfg = read_json(run / "model" / "config.json")
    step = cfg.get("trained_steps") if isinstance(cfg, dict) else None
    return int(step) if isinstance(step, (int, float)) else 0
