"""The job state machine (aigc/finetune/lifecycle.py) without training, part one: recovery at start-up,
an orphaned worker, launch. Part two (progress, endings, publishing, the loop): test_lifecycle_end_mutants.py."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest

from aigc.finetune.lifecycle import JobLifecycle
from aigc.finetune.store import new_job_id
from aigc.hub import REPO_ROOT
from lifecycle_harness import Harness, model_folder, state_pt


@pytest.fixture
def h(tmp_path):
    return Harness(tmp_path)


# -- recovery at start-up ----------------------------------------------------------------------------
def test_recovery_requeues_in_creation_order_and_ignores_other_folders(h):
    late, first, mid = h.job(created=3.0), h.job(created=None), h.job(created=0.5)
    h.job(state="done", created=0.1)
    (h.root / "stray.txt").write_text("x")
    (h.root / "empty").mkdir()
    other = h.root / new_job_id()
    other.mkdir()
    (other / "job.json").write_text(json.dumps({"id": "someone-else", "state": "queued"}))
    h._recover(0.1)
    assert list(h._queue) == [first, mid, late]


def test_recovery_marks_active_jobs_interrupted(h):
    plain = h.job(state="running", created=1.0, pid=None, eta_s=12.0)
    ck = h.job(state="preparing", created=2.0)
    state_pt(h.root / ck / "run")
    model_folder(h.root / ck / "run" / "model", steps=7)
    h._recover(0.1)
    assert {k: h.j(plain)[k] for k in ("state", "pid", "eta_s", "message")} == {
        "state": "interrupted", "pid": None, "eta_s": None,
        "message": "the server stopped while this job ran; resume it to continue (no checkpoint yet: it restarts)"}
    assert h.j(ck)["message"] == "the server stopped while this job ran; resume it to continue from step 7"
    assert h._queue == deque()


def test_recovery_stops_the_old_servers_worker(h):
    jid = h.job(state="running")
    worker = _worker(h.root / jid, ignore_sigint=False)
    (h.root / jid / "job.json").write_text(json.dumps({**h.j(jid), "pid": worker.pid}))
    h._recover(30.0)
    assert worker.wait(10) == -signal.SIGINT and h.j(jid)["state"] == "interrupted" and h.j(jid)["pid"] is None


def test_recovery_publishes_what_finished_while_down_then_goes_on(h):
    done = h.job(state="running", created=1.0)
    model_folder(h.root / done / "run" / "model", steps=40)
    (h.root / done / "worker.json").write_text(json.dumps({"phase": "done"}))
    after = h.job(state="running", created=2.0)
    h._recover(0.1)
    assert h.j(done)["state"] == "done" and Path(h.j(done)["model_path"]) == h.user_models / "my-cats"
    assert h.j(after)["state"] == "interrupted"


@pytest.mark.parametrize("state, ends", [("interrupted", "failed"), ("cancelled", "failed"), ("failed", "failed"),
                                         ("running", "failed"), ("preparing", "failed"), ("done", "done"),
                                         ("queued", "queued")])
def test_recovery_fails_unreadable_saved_state(h, state, ends):
    jid = h.job(state=state)
    state_pt(h.root / jid / "run", ok=False)
    h._recover(0.1)
    assert h.j(jid)["state"] == ends
    if ends == "failed":
        assert h.j(jid)["unresumable"] == h.j(jid)["error"] and "state.pt" in h.j(jid)["error"]


def test_finished_while_down_needs_the_done_phase_and_the_model(tmp_path):
    d = tmp_path
    assert not JobLifecycle._finished_while_down(d)
    (d / "worker.json").write_text(json.dumps({"phase": "done"}))
    assert not JobLifecycle._finished_while_down(d)
    model_folder(d / "run" / "model")
    assert JobLifecycle._finished_while_down(d)
    for w in ({"phase": "running"}, ["done"]):
        (d / "worker.json").write_text(json.dumps(w))
        assert not JobLifecycle._finished_while_down(d)


def test_fail_if_unreadable(h):
    jid = h.job(state="cancelled", pid=5, eta_s=3.0)
    assert h._fail_if_unreadable(jid) is False and h.j(jid)["state"] == "cancelled"
    state_pt(h.root / jid / "run", ok=False)
    assert h._fail_if_unreadable(jid) is True
    j = h.j(jid)
    assert (j["state"], j["pid"], j["eta_s"]) == ("failed", None, None)
    assert j["message"] == f"failed, not resumable: {j['unresumable']}" and j["error"] == j["unresumable"]


# -- an orphaned worker --------------------------------------------------------------------------------
def _worker(d: Path, ignore_sigint: bool) -> subprocess.Popen:
    code = ("import signal, sys, time\n"
            + ("signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if ignore_sigint else "")
            + "print('ready', flush=True)\ntime.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert p.stdout.readline().strip() == b"ready"
    return p


def test_an_orphan_is_asked_to_stop_then_killed(tmp_path):
    JobLifecycle._stop_orphan(None, tmp_path, 5.0)                   # no worker: nothing to do
    polite = _worker(tmp_path, ignore_sigint=False)
    t0 = time.time()
    JobLifecycle._stop_orphan(polite.pid, tmp_path, 30.0)
    assert polite.wait(10) == -signal.SIGINT and time.time() - t0 < 10     # it ended on SIGINT, no 30 s wait
    stubborn = _worker(tmp_path, ignore_sigint=True)
    t0 = time.time()
    JobLifecycle._stop_orphan(stubborn.pid, tmp_path, 0.5)
    assert stubborn.wait(10) == -signal.SIGKILL and time.time() - t0 >= 0.5


class _Clock:
    def __init__(self):
        self.now, self.sleeps = 100.0, []

    def time(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(s)
        self.now += s


@pytest.mark.parametrize("alive_after_sigint, kill_wait_s, sleeps, signals", [
    (2, 1.0, [0.2, 0.2], [signal.SIGINT]),                          # it saved and ended in time
    (None, 1.0, [0.2] * 5, [signal.SIGINT, signal.SIGKILL]),          # it did not: killed after the wait
    (None, 0.0, [], [signal.SIGINT, signal.SIGKILL]),
])
def test_an_orphan_is_polled_every_fifth_of_a_second(tmp_path, monkeypatch, alive_after_sigint, kill_wait_s,
                                                     sleeps, signals):
    from aigc.finetune import lifecycle
    clock, sent, checks = _Clock(), [], []

    def alive(pid, d):
        assert (pid, d) == (4242, tmp_path)
        checks.append(clock.now)
        return signal.SIGKILL not in sent and (alive_after_sigint is None or len(checks) <= 1 + alive_after_sigint)
    monkeypatch.setattr(lifecycle, "time", clock)
    monkeypatch.setattr(lifecycle, "pid_alive", alive)
    monkeypatch.setattr(lifecycle.os, "kill", lambda pid, sig: sent.append(sig))
    JobLifecycle._stop_orphan(4242, tmp_path, kill_wait_s)
    assert clock.sleeps == sleeps and sent == signals


# -- launch ----------------------------------------------------------------------------------------
def _recording_python(tmp_path) -> str:
    p = tmp_path / "record-python"
    p.write_text('#!/bin/sh\nenv > "$3/env.txt"\necho "$@" > "$3/argv.txt"\necho worker output\n'
                 'cat > "$3/stdin.txt"\n')
    p.chmod(0o755)
    return str(p)


def test_launch_starts_the_worker_with_its_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/a", "", "/b"]))
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    h = Harness(tmp_path, python=_recording_python(tmp_path), threads=2)
    jid = h.job(runs=3)
    d = h.root / jid
    (d / "worker.json").write_text("{}")
    state_pt(d / "run")
    model_folder(d / "run" / "model", steps=12)
    (d / "worker.log").write_text("before\n")
    h._launch(jid)
    assert h._proc.wait(20) == 0 and h._current == jid
    env = dict(ln.split("=", 1) for ln in (d / "env.txt").read_text().splitlines() if "=" in ln)
    assert env["PYTHONPATH"] == os.pathsep.join([str(REPO_ROOT), "/a", "/b"])
    assert env["PYTHONUNBUFFERED"] == "1" and env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert (d / "argv.txt").read_text() == f"-m aigc.finetune.worker {d}\n"
    assert (d / "stdin.txt").read_text() == "" and not (d / "worker.json").exists()
    log = (d / "worker.log").read_text().splitlines()
    assert log[0] == "before" and log[1] == "" and log[3] == "worker output"
    assert log[2].startswith("--- worker started 20") and log[2].endswith(" ---") and len(log[2]) == 42
    j = h.j(jid)
    assert (j["state"], j["pid"], j["runs"], j["error"]) == ("preparing", h._proc.pid, 4, None)
    assert j["message"] == "checking and preparing the data (resuming from step 12)"
    assert abs(j["started"] - time.time()) < 60


def test_launch_of_a_first_run(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    h = Harness(tmp_path, python=_recording_python(tmp_path), threads=None)
    jid = h.job()
    h._launch(jid)
    h._proc.wait(20)
    env = dict(ln.split("=", 1) for ln in (h.root / jid / "env.txt").read_text().splitlines() if "=" in ln)
    assert env["PYTHONPATH"] == str(REPO_ROOT) and env["OMP_NUM_THREADS"] == "7"
    assert h.j(jid)["runs"] == 1 and h.j(jid)["message"] == "checking and preparing the data"


def test_launch_failures(tmp_path):
    h = Harness(tmp_path, python=str(tmp_path / "no-such-python"))
    h._launch("20990101-000000-" + "0" * 32)                         # an unknown job: nothing happens
    assert h._proc is None and h._current is None
    jid = h.job()
    h._launch(jid)
    j = h.j(jid)
    assert h._current is None and j["state"] == "failed" and j["message"] == "failed: could not start the worker"
    assert j["error"].startswith("could not start the worker: ") and "no-such-python" in j["error"]
