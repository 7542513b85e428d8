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

TINY = dict(resolution=32, batch_size=8, tiny=True)


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


def test_end_to_end_queue_and_failure(tmp_path, zip64):
    """A 64-image job runs to 'done' and its model samples; a second job waits at position 1; a job
    with a bad base fails with a message and the manager goes on with the next one."""
    from aigc.pipelines.image import ImagePipeline
    from demo.models import ModelRegistry

    m = JobManager(tmp_path / "jobs", tmp_path / "user_models")
    reg = ModelRegistry(tmp_path / "weights", user_models=tmp_path / "user_models")    # a running app's
    m.on_publish(reg.add)
    try:
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
    finally:
        m.close()


def test_cancel_keeps_checkpoint_then_restart_and_resume(tmp_path, zip64):
    """Cancel: SIGINT -> checkpoint kept, 'cancelled'. Then a job whose worker is killed while the
    server is down: a new manager marks it interrupted and resume() finishes it."""
    root = tmp_path / "jobs"
    m = JobManager(root, tmp_path / "user_models")
    a = m.submit(zip64, "dcgan", steps=100, **TINY)
    wait_for(lambda: m.status(a)["step"] > 0, what="first log line")
    s = m.cancel(a)
    s = m.wait(a, timeout=60)
    assert s["state"] == "cancelled" and s["resumable"], s
    assert (root / a / "run" / "state.pt").is_file() and s["checkpoint_step"] >= 1

    oom = m.submit(zip64, "dcgan", steps=20, **TINY)     # a worker killed by the OOM killer
    pid = wait_for(lambda: m.status(oom)["pid"], what="worker pid")
    os.kill(pid, signal.SIGKILL)
    s = m.wait(oom, timeout=60)
    assert s["state"] == "failed" and "killed (SIGKILL; out of memory?)" in s["error"], s

    b = m.submit(zip64, "dcgan", steps=20, **TINY)
    wait_for(lambda: m.status(b).get("checkpoint_step"), what="a periodic checkpoint")
    pid = m.status(b)["pid"]
    m.close()                                   # the server dies ...
    os.kill(pid, signal.SIGKILL)                # ... and its worker with it (no checkpoint on SIGKILL)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
             what="worker gone")

    m2 = JobManager(root, tmp_path / "user_models")
    try:
        s = m2.status(b)
        assert s["state"] == "interrupted" and s["resumable"], s
        ck = s["checkpoint_step"]
        assert 1 <= ck < 20
        with pytest.raises(JobError):
            m2.resume("20990101-000000-abcdef")
        m2.resume(b)
        s = m2.wait(b, timeout=60)
        assert s["state"] == "done" and s["step"] == 20, s
        steps = [r["step"] for r in read_stats(root / b / "run")]
        assert steps == sorted(steps) and steps[-1] == 20      # resumed, not restarted from 0 twice
        assert json.loads((root / b / "run" / "model" / "config.json").read_text())["trained_steps"] == 20
        assert m2.status(a)["state"] == "cancelled"            # the other job was found again too
    finally:
        m2.close()


def test_finetune_tab_handlers(tmp_path, zip64):
    """The tab's endpoints exist; a bad zip -> gr.Error with the preparation's message; a good one
    -> report and preview; start -> a job the browser keeps; cancel while it starts."""
    import types

    import gradio as gr

    from demo.finetune_tab import build_finetune_tab

    reg = types.SimpleNamespace(entries={}, weights_dir=tmp_path / "weights", device="cpu")
    m = JobManager(tmp_path / "jobs", tmp_path / "user_models")
    try:
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
            h.start_job(str(zip64), "new:dcgan", "32", 2.5, 0, "", [])
        for bad_minutes in (-1, "ten", float("nan"), 10 ** 6):
            with pytest.raises(gr.Error, match="time limit"):
                h.start_job(str(zip64), "new:dcgan", "32", 3, bad_minutes, "", [])
        # an upload moves the base picker to one that suits it, and leaves a suitable choice alone
        assert h.suggest_base(str(zip64), "new:char-lm")["value"] == "new:vae"
        assert "value" not in h.suggest_base(str(zip64), "new:dcgan")
        txt = tmp_path / "notes.txt"
        txt.write_text("some text\n" * 50)
        assert h.suggest_base(str(txt), "new:vae")["value"] == "new:char-lm"
        assert "value" not in h.suggest_base(None, "new:vae")
        md, preview = h.check_upload(str(zip64), "new:dcgan", "32")
        assert "64 images kept" in md and preview.size[0] > 32
        jid, mine, pick, text = h.start_job(str(zip64), "new:dcgan", "32", 3, 0, "tab model", ["20990101-000000-abcdef"])
        assert m.status(jid)["spec"]["max_minutes"] is None            # 0: steps only
        assert mine[0] == jid and "tab-model" in text
        h.cancel_job(jid)
        s = m.wait(jid, timeout=60)
        assert s["state"] in ("cancelled", "done")
        text, bar, loss, prev, quality = h.job_status(jid)
        assert s["state"] in text and "<progress" in bar
        upd, value = h.restore(mine, None)
        assert value == jid and [c[1] for c in upd["choices"]] == [jid]   # unknown ids dropped
        with pytest.raises(gr.Error, match="unknown job"):
            h.job_status("../../etc/passwd")
    finally:
        m.close()


def test_submit_refusals(tmp_path, zip64):
    m = JobManager(tmp_path / "jobs", tmp_path / "user_models", max_queue=0)
    try:
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
        assert m.jobs() == []
    finally:
        m.close()


def test_time_limited_job_stops_on_its_clock(tmp_path, zip64):
    """A job with a time limit stops at whichever of steps and minutes comes first: here the clock,
    long before its 100,000 steps; the status shows the limit, the card and job.json the steps run."""
    m = JobManager(tmp_path / "jobs", tmp_path / "user_models")
    try:
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
    finally:
        m.close()


# -- base vs fine-tuned, and the registry learning about finished jobs ---------------------------------
def _fake_done_job(root: Path, job_id: str, base: str, model_path: Path, name: str, state: str = "done") -> str:
    d = root / job_id
    d.mkdir(parents=True)
    job = {"id": job_id, "name": name, "state": state, "step": 3, "total": 3, "eta_s": 0, "message": "done",
           "error": None, "created": time.time(), "updated": time.time(), "pid": None,
           "model_path": str(model_path), "spec": {"base": base, "upload_name": "x", "steps": 3}, "runs": 1}
    (d / "job.json").write_text(json.dumps(job))
    return job_id


def test_compare_base_and_finetuned(tmp_path, one_thread):
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
    m = JobManager(tmp_path / "jobs", users)
    try:
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
    finally:
        m.close()


def test_eta_is_capped_by_the_time_limit():
    from aigc.finetune.jobs import _eta
    stats = [{"step": 10 * i, "time_s": float(i)} for i in range(1, 7)]      # 10 steps a second
    assert _eta(stats, 1000) == pytest.approx(94.0)                          # 940 steps left
    assert _eta(stats, 1000, budget_s=30.0) == pytest.approx(24.0)           # the clock ends first
    assert _eta(stats, 100, budget_s=3600.0) == pytest.approx(4.0)           # the steps end first
    assert _eta(stats, 1000, budget_s=5.0) == 0.0
