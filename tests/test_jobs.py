"""Background fine-tune jobs (aigc.finetune.jobs.JobManager) and the fine-tune tab's handlers, with tiny
models: end to end, the queue, cancel, a server restart with a killed worker, a failing job."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_uploads import good_members, make_zip  # noqa: E402

from aigc.finetune.jobs import JobError, JobManager  # noqa: E402
from aigc.train.stats import read_stats  # noqa: E402

pytestmark = pytest.mark.slow          # training runs and worker processes: the full tier (make test)

TINY = dict(resolution=32, batch_size=8, tiny=True)


@pytest.fixture
def managers():
    """make(root, users, **kw) -> a JobManager closed at teardown (its scheduler and its worker)."""
    made = []

    def make(*args, **kw):
        m = JobManager(*args, **kw)
        made.append(m)
        return m
    yield make
    for m in made:
        m.close(stop_worker=True)


def fake_python(tmp_path) -> str:
    """A 'python' whose worker only sleeps: jobs stay preparing, and nothing trains."""
    p = tmp_path / "sleepy-python"
    p.write_text("#!/bin/sh\nexec sleep 60\n")
    p.chmod(0o755)
    return str(p)


@pytest.fixture(scope="module")
def zip64(tmp_path_factory):
    return make_zip(tmp_path_factory.mktemp("up") / "cats.zip", good_members(64))


def wait_for(pred, timeout=60.0, what="condition"):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise TimeoutError(what)


def test_end_to_end_queue_and_failure(tmp_path, zip64, managers):
    """A 64-image job runs to 'done' and its model samples; a second job waits at position 1; a job
    with a bad base fails with a message and the manager goes on with the next one."""
    from aigc.pipelines.image import ImagePipeline
    from demo.models import ModelRegistry

    m = managers(tmp_path / "jobs", tmp_path / "user_models", max_jobs_per_owner=3)
    reg = ModelRegistry(tmp_path / "weights", user_models=tmp_path / "user_models")    # a running app's
    m.on_publish(reg.add)
    a = m.submit(zip64, "dcgan", steps=6, name="../my cats!", **TINY)
    wait_for(lambda: m.status(a)["state"] != "queued", what="the first job to start")
    bad = m.submit(zip64, str(tmp_path / "no-such-model"), steps=2)
    c = m.submit(zip64, "dcgan", steps=2, **TINY)
    assert m.status(bad)["position"] == 1 and m.status(c)["position"] == 2
    assert m.status(a)["position"] is None
    s = m.wait(a, timeout=60)
    assert s["state"] == "done", s
    assert s["step"] == s["total"] == 6 and s["loss"] and {"step", "value", "series"} <= set(s["loss"][0])
    assert s["preview"] and Path(s["preview"]).is_file() and Path(s["data_preview"]).is_file()
    assert s["report"]["kept"] == 64
    dest = Path(s["model_path"])
    assert dest.parent == (tmp_path / "user_models").resolve() and dest.name == "my-cats"
    assert (dest / "config.json").is_file() and m.user_model_dirs() == [dest]
    imgs = ImagePipeline.from_pretrained(dest)(n=2, seed=0)
    assert imgs.images.shape == (2, 32, 32, 3)
    # the app's registry has it without a restart; its quality was tracked and published
    wait_for(lambda: "my-cats" in reg.image_models(), timeout=10, what="the registry to load the new model")
    assert reg.version == 1 and reg.entries["my-cats"].user
    series = {r["series"] for r in s["quality"]}
    assert any(x.startswith("KID×1000") for x in series) and any(x.startswith("copy rate") for x in series)
    assert s["quality"][0]["step"] == 0 and s["quality"][-1]["step"] == 6
    metrics = json.loads((dest / "metrics.json").read_text())
    assert {"kid_randconv", "copy_rate", "protocol"} <= set(metrics)
    assert (dest / "README.md").read_text().startswith("# my-cats\n")
    # its samples can be checked against the images it was trained on (kept beside it)
    from demo.image_handlers import Studio, new_state
    studio = Studio(reg, tmp_path / "ui")
    _, _, st = studio.sample("my-cats", "any", 0, 1, 1.0, new_state())
    st = studio.open_sample(st, 0)[-1]
    pair, md = studio.nearest(st)
    assert "Nearest of 64 training images" in md and "nearest other training image" in md, md
    f = m.wait(bad, timeout=60)
    assert f["state"] == "failed" and "no saved model" in f["error"], f
    assert m.wait(c, timeout=60)["state"] == "done"          # the manager kept working
    with pytest.raises(JobError):
        m.cancel(a)                                           # finished jobs cannot be cancelled
    with pytest.raises(JobError):
        m.status("../etc")


def test_cancel_keeps_checkpoint_then_restart_and_resume(tmp_path, zip64, managers):
    """Cancel: SIGINT -> checkpoint kept, 'cancelled'. A worker killed mid-job fails. Then a job whose
    worker is killed while the server is down: a new manager marks it interrupted and resume()
    finishes it. Each job is too long (steps, or a time limit) to end before its kill."""
    root = tmp_path / "jobs"
    m = managers(root, tmp_path / "user_models", max_jobs_per_owner=4)
    a = m.submit(zip64, "dcgan", steps=100, **TINY)
    wait_for(lambda: m.status(a)["step"] > 0, what="first log line")
    m.cancel(a)
    s = m.wait(a, timeout=60)
    assert s["state"] == "cancelled" and s["resumable"] and s["step"] < 100, s
    assert (root / a / "run" / "state.pt").is_file() and s["checkpoint_step"] >= 1

    oom = m.submit(zip64, "dcgan", steps=100_000, max_minutes=2, **TINY)     # killed by the OOM killer
    wait_for(lambda: m.status(oom)["step"] > 0, what="the job to train")
    pid = m.status(oom)["pid"]
    os.kill(pid, signal.SIGKILL)
    s = m.wait(oom, timeout=60)
    assert s["state"] == "failed" and "killed (SIGKILL; out of memory?)" in s["error"], s
    assert 0 < s["step"] < 100_000 and s["message"].count("\n") == 0

    b = m.submit(zip64, "dcgan", steps=60, **TINY)
    wait_for(lambda: m.status(b).get("checkpoint_step"), what="a periodic checkpoint")
    pid = m.status(b)["pid"]
    m.close()                                   # the server dies ...
    os.kill(pid, signal.SIGKILL)                # ... and its worker with it (no checkpoint on SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
             what="worker gone")

    m2 = managers(root, tmp_path / "user_models", max_jobs_per_owner=4)
    s = m2.status(b)
    assert s["state"] == "interrupted" and s["resumable"], s
    ck = s["checkpoint_step"]
    assert 1 <= ck < 60                          # killed mid-way
    with pytest.raises(JobError):
        m2.resume("20990101-000000-" + "ab" * 16)
    m2.resume(b)
    s = m2.wait(b, timeout=120)
    assert s["state"] == "done" and s["step"] == 60, s
    steps = [r["step"] for r in read_stats(root / b / "run")]
    assert steps == sorted(steps) and steps[-1] == 60      # resumed, not restarted from 0 twice
    assert json.loads((root / b / "run" / "model" / "config.json").read_text())["trained_steps"] == 60
    assert m2.status(a)["state"] == "cancelled"            # the other job was found again too


def test_finetune_tab_handlers(tmp_path, zip64, managers):
    """The tab's endpoints exist; a bad zip -> gr.Error with the preparation's message; a good one
    -> report and preview; start -> a job of its owner's; cancel while it starts ends it 'cancelled'
    and its worker exits."""
    from aigc.finetune.store import pid_alive
    import types

    import gradio as gr

    from demo.finetune_tab import build_finetune_tab

    reg = types.SimpleNamespace(entries={}, weights_dir=tmp_path / "weights", device="cpu")
    m = managers(tmp_path / "jobs", tmp_path / "user_models")
    with gr.Blocks() as demo:
        with gr.Tab("Fine-tune"):
            h = build_finetune_tab(reg, manager=m)
    names = set(demo.get_api_info()["named_endpoints"])
    assert {"/check_upload", "/start_job", "/job_status", "/cancel_job"} <= names
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"this is not a zip")
    with pytest.raises(gr.Error, match="bad.zip is not a zip file"):
        h.check_upload(str(bad), "new:dcgan", "32")
    with pytest.raises(gr.Error, match="text file"):
        h.check_upload(str(zip64), "new:char-lm", "auto")
    with pytest.raises(gr.Error, match="steps"):
        h.start_job(str(zip64), "new:dcgan", "32", 2.5, 0, "")
    for bad_minutes in (-1, "ten", float("nan"), 10 ** 6):
        with pytest.raises(gr.Error, match="time limit"):
            h.start_job(str(zip64), "new:dcgan", "32", 3, bad_minutes, "")
    # an upload moves the base picker to one that suits it, and leaves a suitable choice alone
    assert h.suggest_base(str(zip64), "new:char-lm")["value"] == "new:vae"
    assert "value" not in h.suggest_base(str(zip64), "new:dcgan")
    txt = tmp_path / "notes.txt"
    txt.write_text("some text\n" * 50)
    assert h.suggest_base(str(txt), "new:vae")["value"] == "new:char-lm"
    assert "value" not in h.suggest_base(None, "new:vae")
    md, preview = h.check_upload(str(zip64), "new:dcgan", "32")
    assert "64 images kept" in md and preview.size[0] > 32
    # a saved text base: the check encodes the upload as the job will, and says which characters it adds
    from aigc.checkpoint import save_pretrained
    from aigc.kinds import build
    from aigc.text.tokenizer import CharTokenizer
    tok = CharTokenizer.from_text("some text\n")
    lm = build("char-lm", tiny=True, vocab_size=tok.vocab_size).set_tokenizer(tok)
    lm_dir = save_pretrained(lm, tmp_path / "weights" / "tiny-lm")
    reg.entries["tiny-lm"] = types.SimpleNamespace(path=lm_dir, kind="char-lm", error=None)
    story = tmp_path / "story.txt"
    story.write_text("some text, now with a cat\n" * 40)
    md, _ = h.check_upload(str(story), "tiny-lm", "auto")
    assert "unknown to the tokenizer" in md and "added" in md and "characters to the vocabulary" in md
    token = "ab" * 16
    jid, pick, text, usage = h.start_job(str(zip64), "new:dcgan", "32", 200, 0, "tab model", token)
    assert m.status(jid)["spec"]["max_minutes"] == m.max_job_minutes            # 0: the server's ceiling
    assert "tab-model" in text and "1 of 2 jobs waiting or running" in usage
    h.cancel_job(jid, token)
    pid = m.status(jid)["pid"]
    s = m.wait(jid, timeout=60)
    assert s["state"] == "cancelled", s
    assert pid is None or not pid_alive(pid, m.root / jid)                      # the worker has exited
    assert m._proc is None or m._current != jid
    text, bar, loss, prev, quality = h.job_status(jid, token)
    assert s["state"] in text and "<progress" in bar
    upd, value, usage = h.restore(token, None)
    assert value == jid and [c[1] for c in upd["choices"]] == [jid]      # the server's list, this owner's
    assert h.restore("cd" * 16, None)[1] is None                         # another owner sees none
    with pytest.raises(gr.Error, match="no such job"):
        h.job_status("../../etc/passwd", token)


def test_submit_refusals(tmp_path, zip64, managers):
    m = managers(tmp_path / "jobs", tmp_path / "user_models", max_queue=0)
    with pytest.raises(JobError, match="queue is full"):
        m.submit(zip64, "dcgan", steps=2)
    m.max_queue = 4
    with pytest.raises(JobError, match="resolution"):
        m.submit(zip64, "dcgan", steps=2, resolution=33)
    with pytest.raises(JobError, match="steps"):
        m.submit(zip64, "dcgan", steps=0)
    for bad in (0, -2, True, "5", float("inf")):
        with pytest.raises(JobError, match="time limit"):
            m.submit(zip64, "dcgan", steps=2, max_minutes=bad)
    with pytest.raises(JobError, match="no such upload"):
        m.submit(tmp_path / "missing.zip", "dcgan")
    with pytest.raises(JobError, match="at most 30 minutes"):
        m.submit(zip64, "dcgan", steps=2, max_minutes=31)             # the server's ceiling
    with pytest.raises(JobError, match="steps must be a whole number from 1 to 100,000"):
        m.submit(zip64, "dcgan", steps=100_001)
    assert m.jobs() == []


def test_time_limited_job_stops_on_its_clock(tmp_path, zip64, managers):
    """A job with a time limit stops at whichever of steps and minutes comes first: here the clock,
    long before its 100,000 steps; the status shows the limit, the card and job.json the steps run."""
    m = managers(tmp_path / "jobs", tmp_path / "user_models")
    a = m.submit(zip64, "dcgan", steps=100_000, max_minutes=0.05, name="clocked", **TINY)
    s = m.wait(a, timeout=90)
    assert s["state"] == "done", s
    assert s["budget_s"] == pytest.approx(3.0) and s["elapsed_s"] >= 3.0
    assert 1 <= s["step"] < 100_000
    dest = Path(s["model_path"])
    meta = json.loads((dest / "job.json").read_text())
    assert meta["steps"] == s["step"] and meta["max_steps"] == 100_000 and meta["max_minutes"] == 0.05
    card = (dest / "README.md").read_text()
    assert f"for {s['step']:,} steps (stopped by its 0.05-minute time limit" in card
    assert "--max-minutes 0.05" in card


# -- base vs fine-tuned, and the registry learning about finished jobs ---------------------------------
def _fake_done_job(root: Path, job_id: str, base: str, model_path: Path, name: str, state: str = "done") -> str:
    d = root / job_id
    d.mkdir(parents=True)
    job = {"id": job_id, "name": name, "state": state, "step": 3, "total": 3, "eta_s": 0, "message": "done",
           "error": None, "created": time.time(), "updated": time.time(), "pid": None,
           "model_path": str(model_path), "spec": {"base": base, "upload_name": "x", "steps": 3}, "runs": 1}
    (d / "job.json").write_text(json.dumps(job))
    return job_id


def test_compare_base_and_finetuned(tmp_path, one_thread, managers):
    """Images: two grids from the same seed (and classes), deterministic; a model trained from
    scratch is shown alone with a note; text: the same prompt and seed through both models; a job
    that is not done is refused."""
    import gradio as gr
    import torch

    from aigc import checkpoint as ckpt
    from aigc.kinds import build
    from aigc.text.tokenizer import CharTokenizer
    from demo.finetune_tab import COMPARE_CHARS, FinetuneHandlers
    from demo.models import ModelRegistry
    from studio_helpers import make_weights

    weights = make_weights(tmp_path / "weights")
    users = tmp_path / "user_models"
    torch.manual_seed(5)
    names = [f"c{i}" for i in range(10)]
    tuned = ckpt.save_pretrained(build("dcgan", tiny=True, class_names=names), users / "tuned", meta={"dataset": "upload:x"})
    scratch = ckpt.save_pretrained(build("vae", tiny=True), users / "scratch", meta={"dataset": "upload:y"})
    tok = CharTokenizer.from_text("the moon is bright over the sea.\n")
    lm = [build("char-lm", tiny=True, vocab_size=tok.vocab_size).set_tokenizer(tok) for _ in range(2)]
    text_base = ckpt.save_pretrained(lm[0], tmp_path / "elsewhere" / "text-base", meta={"dataset": "x"})
    text_tuned = ckpt.save_pretrained(lm[1], users / "poems", meta={"dataset": "upload:z"})
    reg = ModelRegistry(weights, user_models=users)
    m = managers(tmp_path / "jobs", users)
    img = _fake_done_job(m.root, "20250101-000000-aaaaaa", str(weights / "dcgan-mnist"), tuned, "tuned")
    new = _fake_done_job(m.root, "20250101-000001-bbbbbb", "vae", scratch, "scratch")
    txt = _fake_done_job(m.root, "20250101-000002-cccccc", str(text_base), text_tuned, "poems")
    h = FinetuneHandlers(reg, m)
    b_img, t_img, b_txt, t_txt, info = h.compare(img, 7, "")
    assert b_img.size == t_img.size and b_txt == t_txt == ""
    assert np.asarray(b_img).tolist() != np.asarray(t_img).tolist()
    assert "seed 7" in info and "dcgan-mnist** (base)" in info and "tuned** (fine-tuned)" in info
    assert "c0, c1" in info and "calls the same class indices 0, 1" in info
    assert np.array_equal(np.asarray(h.compare(img, 7, "")[1]), np.asarray(t_img))   # same seed, same grid
    b_img, t_img, _, _, info = h.compare(new, 0, "")
    assert b_img is None and t_img is not None and "trained from scratch" in info and "new model only" in info
    _, _, b_txt, t_txt, info = h.compare(txt, 3, "the ")
    assert len(b_txt) == len(t_txt) == COMPARE_CHARS and b_txt != t_txt
    assert "text-base** (base)" in info and "seed 3" in info
    assert h.compare(txt, 3, "the ")[3] == t_txt                                     # repeatable
    j = _fake_done_job(m.root, "20250101-000003-dddddd", "dcgan", tuned, "later", state="cancelled")
    with pytest.raises(gr.Error, match="is cancelled; compare once it is done"):
        h.compare(j, 0, "")


def test_eta_is_capped_by_the_time_limit():
    from aigc.finetune.progress import eta as _eta
    stats = [{"step": 10 * i, "time_s": float(i)} for i in range(1, 7)]      # 10 steps a second
    assert _eta(stats, 1000) == pytest.approx(94.0)                          # 940 steps left
    assert _eta(stats, 1000, budget_s=30.0) == pytest.approx(24.0)           # the clock ends first
    assert _eta(stats, 100, budget_s=3600.0) == pytest.approx(4.0)           # the steps end first
    assert _eta(stats, 1000, budget_s=5.0) == 0.0


# -- owners, quotas, retention, recovery ----------------------------------------------------------------
def _job_folder(root: Path, state: str, owner: str = "user:ann", age_s: float = 0.0, **extra) -> str:
    from aigc.finetune.store import new_job_id
    jid = new_job_id()
    d = root / jid
    (d / "data").mkdir(parents=True)
    (d / "data" / "up.zip").write_bytes(b"x" * 1000)
    t = time.time() - age_s
    job = {"id": jid, "owner": owner, "name": "j", "state": state, "step": 1, "total": 4, "eta_s": None,
           "message": state, "error": None, "created": t, "updated": t, "finished": t, "pid": None,
           "model_path": None, "spec": {"base": "dcgan", "upload_name": "up.zip", "steps": 4,
                                        "data": str(d / "data" / "up.zip")}, "runs": 1, **extra}
    (d / "job.json").write_text(json.dumps(job))
    return jid


def test_jobs_belong_to_their_owner_and_quotas_hold(tmp_path, zip64, managers):
    """Two owners are two people: B cannot see, cancel or resume A's job, and A's id answers B exactly
    like an unknown one; ids carry 128 random bits; at most 2 jobs per owner wait or run."""
    m = managers(tmp_path / "jobs", tmp_path / "user_models", python=fake_python(tmp_path))
    a1 = m.submit(zip64, "dcgan", steps=5, owner="token:a")
    a2 = m.submit(zip64, "dcgan", steps=5, owner="token:a")
    assert len(a1.rsplit("-", 1)[1]) == 32 and a1 != a2
    with pytest.raises(JobError, match="already have 2 jobs waiting or running"):
        m.submit(zip64, "dcgan", steps=5, owner="token:a")
    b1 = m.submit(zip64, "dcgan", steps=5, owner="token:b")
    assert [j["id"] for j in m.jobs(owner="token:b")] == [b1]
    assert {j["id"] for j in m.jobs(owner="token:a")} == {a1, a2}
    unknown = "20990101-000000-" + "0" * 32
    for call in (lambda i: m.status(i, owner="token:b"), lambda i: m.cancel(i, owner="token:b"),
                 lambda i: m.resume(i, owner="token:b")):
        with pytest.raises(JobError) as theirs:
            call(a1)
        with pytest.raises(JobError) as missing:
            call(unknown)
        assert str(theirs.value).replace(a1, "ID") == str(missing.value).replace(unknown, "ID")
        assert "no such job" in str(theirs.value)
    assert m.status(a1, owner="token:a")["state"] in ("queued", "preparing")
    u = m.usage("token:a")
    assert u["active"] == 2 and u["jobs"] == 2 and u["disk_bytes"] >= 2 * zip64.stat().st_size
    m.cancel(a2, owner="token:a")
    assert m.wait(a2, timeout=30)["state"] == "cancelled"
    m.submit(zip64, "dcgan", steps=5, owner="token:a")          # a place is free again
    strict = managers(tmp_path / "jobs2", tmp_path / "um2", anonymous_jobs=False, disk_budget_mb=0.01,
                      python=fake_python(tmp_path))
    with pytest.raises(JobError, match="logged-in users only"):
        strict.submit(zip64, "dcgan", steps=5, owner="session:x")
    with pytest.raises(JobError, match="MB of your"):
        strict.submit(zip64, "dcgan", steps=5, owner="user:ann")


def test_retention_removes_uploads_of_failed_and_cancelled_jobs(tmp_path, managers):
    root = tmp_path / "jobs"
    old_failed = _job_folder(root, "failed", age_s=25 * 3600)
    old_cancelled = _job_folder(root, "cancelled", age_s=25 * 3600)
    new_failed = _job_folder(root, "failed", age_s=60)
    old_done = _job_folder(root, "done", age_s=25 * 3600)
    m = managers(root, tmp_path / "user_models", python=fake_python(tmp_path))
    for jid in (old_failed, old_cancelled):
        assert not (root / jid / "data").exists()
        s = m.status(jid)
        assert not s["resumable"] and "retention" in s["unresumable"]
        with pytest.raises(JobError, match="cannot resume"):
            m.resume(jid)
    assert (root / new_failed / "data").exists() and (root / old_done / "data").exists()
    m.retention_s = 30                           # checked again on each submit
    assert m.clean_expired() == [new_failed]


def test_recovery_publishes_a_job_finished_while_down_and_fails_unreadable_state(tmp_path, managers):
    """At start: a job whose worker finished while the server was down is published (owned, not
    shared); a job whose state.pt cannot be read is failed, not resumable, with a one-line reason."""
    import torch

    from aigc import checkpoint as ckpt
    from aigc.finetune.owners import read_owner
    from aigc.kinds import build
    root = tmp_path / "jobs"
    done = _job_folder(root, "running")
    torch.manual_seed(0)
    ckpt.save_pretrained(build("vae", tiny=True), root / done / "run" / "model", meta={"dataset": "upload:x"})
    (root / done / "worker.json").write_text(json.dumps({"phase": "done", "path": "run/model"}))
    broken = _job_folder(root, "interrupted")
    (root / broken / "run").mkdir()
    (root / broken / "run" / "state.pt").write_bytes(b"PK\x03\x04 truncated")
    m = managers(root, tmp_path / "user_models", python=fake_python(tmp_path))
    s = m.status(done)
    assert s["state"] == "done" and Path(s["model_path"]).parent == (tmp_path / "user_models").resolve(), s
    assert read_owner(s["model_path"]) == {"owner": "user:ann", "shared": False}
    with pytest.raises(ValueError, match="no such model"):
        m.set_shared(Path(s["model_path"]).name, "user:bob", True)
    assert m.set_shared(Path(s["model_path"]).name, "user:ann", True)["shared"]
    assert read_owner(s["model_path"])["shared"] is True
    s = m.status(broken)
    assert s["state"] == "failed" and not s["resumable"], s
    assert "state.pt" in s["message"] and "\n" not in s["message"] and s["message"].startswith("failed, not resumable")
