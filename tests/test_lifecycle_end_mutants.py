"""The job state machine (aigc/finetune/lifecycle.py) without training, part two: progress, how a job
ended, publishing and the scheduler loop, each transition pinned with the fields and messages it writes."""
import json
import signal
import threading
import time

import pytest

from aigc.finetune.lifecycle import JobLifecycle
from aigc.finetune.owners import read_owner
from lifecycle_harness import Harness, model_folder, state_pt, stats_file


@pytest.fixture
def h(tmp_path):
    return Harness(tmp_path)


# -- progress --------------------------------------------------------------------------------------
def test_progress_follows_the_worker_and_the_stats(h):
    jid = h.job(state="preparing", spec={"base": "dcgan", "steps": 40, "max_minutes": 0.5})
    d = h.root / jid
    h._progress(jid)
    before = h.j(jid)
    (d / "worker.json").write_text(json.dumps({"phase": "preparing", "total": 30}))
    h._progress(jid)
    assert h.j(jid) == before                                        # nothing new: job.json untouched
    (d / "worker.json").write_text(json.dumps({"phase": "running", "total": 30}))
    h._progress(jid)
    assert (h.j(jid)["state"], h.j(jid)["total"], h.j(jid)["message"]) == ("running", 30, "training")
    stats_file(d / "run", 5, 10, 15)
    h._progress(jid)
    j = h.j(jid)
    assert j["step"] == 15 and j["eta_s"] == pytest.approx(1.5)    # 15 steps left at 10 steps/s
    (d / "run" / "stats.jsonl").write_text(json.dumps({"step": 15, "time_s": 29.0}) + "\n")
    h._progress(jid)
    assert h.j(jid)["updated"] == j["updated"]                      # same step: not rewritten


@pytest.mark.parametrize("worker, total", [({"phase": "done"}, 40), ({"phase": "running", "total": None}, 40),
                                           ({"phase": "running", "total": 25.0}, 25)])
def test_progress_total_falls_back_to_the_job(h, worker, total):
    jid = h.job(state="preparing")
    h._cancel_requested.add(jid)
    (h.root / jid / "worker.json").write_text(json.dumps(worker))
    stats_file(h.root / jid / "run", 2, 4)
    h._progress(jid)
    j = h.j(jid)
    assert (j["state"], j["total"], j["message"], j["step"]) == ("running", total, "preparing", 4)
    assert j["eta_s"] == pytest.approx((total - 4) / 10)


# -- how a job ended ---------------------------------------------------------------------------------
def test_a_finished_job_is_published_even_if_cancelled_late(h):
    jid = h.job(state="running", step=3, eta_s=9.0, pid=77)
    d = h.root / jid
    model_folder(d / "run" / "model", steps=40)
    stats_file(d / "run", 20, 40)
    (d / "resume-prep").mkdir()
    h._cancel_requested.add(jid)
    dest = h._finish(jid, 0)
    j = h.j(jid)
    assert dest == h.user_models / "my-cats" and jid not in h._cancel_requested and not (d / "resume-prep").exists()
    assert (j["state"], j["pid"], j["eta_s"], j["step"], j["model_path"], j["message"]) == (
        "done", None, 0, 40, str(dest), "done: saved as my-cats")


def test_a_failed_copy_is_a_failed_job(h):
    jid = h.job(state="running", step=6)
    assert h._finish(jid, 0) is None                                  # no run/model to copy
    j = h.j(jid)
    assert (j["state"], j["pid"], j["eta_s"], j["step"]) == ("failed", None, 0, 6)
    assert j["message"] == "failed: trained, but copying the model failed"
    assert j["error"].startswith("trained, but copying the model failed: ")


@pytest.mark.parametrize("checkpoint", [True, False])
def test_a_cancelled_job_keeps_its_checkpoint(h, checkpoint):
    jid = h.job(state="running", step=9, eta_s=4.0, pid=5)
    d = h.root / jid
    stats_file(d / "run", 4, 8, 12)
    if checkpoint:
        state_pt(d / "run")
        model_folder(d / "run" / "model", steps=10)
    h._cancel_requested.add(jid)
    assert h._finish(jid, 130) is None
    j = h.j(jid)
    assert (j["state"], j["pid"], j["eta_s"], j["step"]) == ("cancelled", None, None, 10 if checkpoint else 12)
    assert j["message"] == ("cancelled; checkpoint kept at step 10" if checkpoint
                            else "cancelled before the first checkpoint")
    assert abs(j["finished"] - time.time()) < 60 and jid not in h._cancel_requested


def test_an_interrupted_job(h):
    jid = h.job(state="running", step=9)
    state_pt(h.root / jid / "run")
    model_folder(h.root / jid / "run" / "model", steps=0)
    assert h._finish(jid, 130) is None
    j = h.j(jid)
    assert (j["state"], j["pid"], j["eta_s"], j["step"], j["message"]) == (
        "interrupted", None, None, 9, "interrupted; resume it to continue")    # step 0 checkpoint: the job's step
    assert "finished" not in j


def test_a_failed_worker_says_why(h):
    jid = h.job(state="running", step=2)
    d = h.root / jid
    (d / "worker.log").write_text("noise\nerror: the upload has only 3 images\nTraceback ...\n")
    h._finish(jid, 2)
    j = h.j(jid)
    assert (j["state"], j["pid"], j["eta_s"], j["step"]) == ("failed", None, None, 2)
    assert j["error"] == "the upload has only 3 images" and j["message"] == "failed: the upload has only 3 images"
    assert abs(j["finished"] - time.time()) < 60
    state_pt(d / "run", ok=False)
    h._finish(jid, 1)
    assert h.j(jid)["unresumable"] and h.j(jid)["message"].startswith("failed, not resumable")


def test_a_job_without_stats_or_a_step_ends_at_step_0(h):
    jid = h.job(state="running")
    (h.root / jid / "job.json").write_text(json.dumps({k: v for k, v in h.j(jid).items() if k != "step"}))
    h._finish(jid, 3)
    assert (h.j(jid)["state"], h.j(jid)["step"]) == ("failed", 0)


def test_failure_messages(tmp_path):
    f = JobLifecycle._failure
    assert f(tmp_path, 3) == "the worker exited with status 3"
    assert f(tmp_path, -signal.SIGKILL) == "the worker was killed (SIGKILL; out of memory?)"
    assert f(tmp_path, -signal.SIGTERM) == "the worker was killed (SIGTERM)"
    assert f(tmp_path, -200) == "the worker was killed (200)"
    (tmp_path / "worker.log").write_text("line 1\nline 2\n")
    assert f(tmp_path, 3) == "line 1\nline 2"
    assert f(tmp_path, -signal.SIGTERM) == "the worker was killed (SIGTERM)\nline 1\nline 2"


# -- publishing ------------------------------------------------------------------------------------
def test_publish_copies_under_a_free_name_with_owner_and_title(h):
    h.user_models.mkdir()
    (h.user_models / "my-cats").mkdir()
    (h.user_models / "my-cats-2").mkdir()
    jid = h.job(spec={"base": "dcgan", "upload_name": "cats.zip", "steps": 40, "max_minutes": 5})
    src = h.root / jid / "run" / "model"
    model_folder(src, steps=33, card="# run\n\nthe card\n")
    (h.user_models / f".tmp-{jid}").mkdir()
    (h.user_models / f".tmp-{jid}" / "stale").write_text("x")           # a copy a crash left behind
    dest = h._publish(jid)
    assert dest == h.user_models / "my-cats-3"
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json", "job.json",
                                                      "model.safetensors", "owner.json"]
    assert json.loads((dest / "job.json").read_text()) == {
        "job": jid, "name": "my cats", "base": "dcgan", "upload": "cats.zip", "steps": 33, "max_steps": 40,
        "max_minutes": 5}
    assert read_owner(dest) == {"owner": "user:ann", "shared": False}
    assert (dest / "README.md").read_text() == "# my-cats-3\n\nthe card\n"
    assert sorted(p.name for p in h.user_models.iterdir()) == ["my-cats", "my-cats-2", "my-cats-3"]
    assert (src / "README.md").read_text() == "# run\n\nthe card\n"


def test_publish_makes_the_models_folder(h):
    h.user_models = h.root.parent / "not" / "yet" / "models"
    jid = h.job()
    model_folder(h.root / jid / "run" / "model")
    assert h._publish(jid) == h.user_models / "my-cats" and (h.user_models / "my-cats" / "owner.json").is_file()


@pytest.mark.parametrize("card", [None, "no title\n", "# only a title"])
def test_publish_keeps_a_card_without_a_title_line(h, card):
    jid = h.job(name="??", spec={"base": "dcgan", "upload_name": "u.zip", "steps": 8})
    model_folder(h.root / jid / "run" / "model", card=card)
    dest = h._publish(jid)
    assert dest == h.user_models / "model"
    assert json.loads((dest / "job.json").read_text())["steps"] == 8
    assert json.loads((dest / "job.json").read_text())["max_minutes"] is None
    if card is None:
        assert not (dest / "README.md").exists()
    else:
        assert (dest / "README.md").read_text() == card


# -- the scheduler loop ------------------------------------------------------------------------------
class FakeProc:
    """A worker that runs for `seconds` and then exits with `rc`; counts how often it was polled."""

    def __init__(self, rc: int, seconds: float):
        self.rc, self.end, self.polls, self.pid = rc, time.time() + seconds, 0, 12345

    def poll(self):
        self.polls += 1
        return self.rc if time.time() >= self.end else None


class LoopHarness(Harness):
    def __init__(self, root, runs):
        super().__init__(root)
        self.runs, self.started, self.procs = dict(runs), [], []

    def _launch(self, job_id):
        assert self._proc is None, "one worker at a time"
        self.started.append(job_id)
        self._proc, self._current = FakeProc(*self.runs[job_id]), job_id
        self.procs.append(self._proc)


def test_the_loop_runs_one_job_at_a_time_and_tells_listeners(tmp_path, capsys):
    h = LoopHarness(tmp_path, {})
    a, b, c = h.job(state="preparing"), h.job(state="preparing"), h.job(state="preparing")
    for jid in (a, c):
        model_folder(h.root / jid / "run" / "model", steps=1)
    h.runs = {a: (0, 0.3), b: (1, 0.2), c: (0, 0.2)}
    h._queue.extend([a, b, c])
    published = []

    def broken(path):
        raise RuntimeError("boom")

    def record(path):
        published.append(path)
        if len(published) == 2:
            h._closed = True
    h._listeners.extend([broken, record])
    t = threading.Thread(target=h._loop, daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive() and h.started == [a, b, c]
    assert published == [h.user_models / "my-cats", h.user_models / "my-cats-2"]
    assert [h.j(j)["state"] for j in (a, b, c)] == ["done", "failed", "done"]
    assert h._proc is None and h._current is None
    assert all(p.polls < 40 for p in h.procs), [p.polls for p in h.procs]     # it waits between polls
    err = capsys.readouterr().err
    assert err == "".join(f"aigc.finetune.jobs: listener {broken!r} failed on {p}: boom\n" for p in published)


def test_the_loop_stops_when_closed_even_with_a_worker_running(tmp_path):
    h = LoopHarness(tmp_path, {})
    jid = h.job(state="preparing")
    h.runs = {jid: (0, 3600)}
    h._queue.append(jid)
    t = threading.Thread(target=h._loop, daemon=True)
    t.start()
    deadline = time.time() + 20
    while not h.procs and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    with h._wake:
        h._closed = True
        h._wake.notify_all()
    t.join(5)
    assert not t.is_alive() and h.started == [jid] and h.j(jid)["state"] == "preparing"
