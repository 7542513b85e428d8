"""Safe to share: the studio starts whatever the user-models folder holds, and each person's jobs and
models are theirs alone. Each test here tries what a careless or hostile user would."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio_helpers import make_weights, save_user_model
from test_uploads import decodes  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A weights folder plus a user-models folder holding a text fine-tune, an image fine-tune, a
    fine-tune whose name a shipped text model already has, and two broken folders."""
    root = tmp_path_factory.mktemp("published")
    weights = make_weights(root / "weights")
    users = root / "user_models"
    save_user_model(users / "my-story", "char-lm")
    save_user_model(users / "my-cats", "dcgan", class_names=["a", "b"])
    save_user_model(users / "tiny-text", "char-lm", seed=2)
    (users / "half-copied").mkdir(parents=True)
    (users / "half-copied" / "config.json").write_text('{"kind": "char-lm", "modality": "text"')
    (users / "not-a-model").mkdir()
    (users / "not-a-model" / "notes.txt").write_text("hello")
    save_user_model(weights / "tiny-text", "char-lm", seed=3)
    return weights, users


def test_app_starts_with_published_text_and_image_fine_tunes(published):
    """A published text fine-tune once made app start-up raise KeyError in the poem picker."""
    import app

    weights, users = published
    demo, registry = app.create(weights, warm=False, user_models=users)
    names = registry.text_choices()
    assert "my-story" in names and "my-cats" in registry.image_models()
    from demo.text_tab import TextModels
    models = TextModels.from_source(registry)
    assert "my-story" in models.names() and "tiny-text" in models.names()
    assert models.poem_models() == []                      # none of them was trained on poem forms
    assert models.get("my-story").generate("once", 5, seed=1).text


@pytest.mark.slow          # a process of its own (interpreter + torch start-up): the full tier
def test_app_subprocess_starts_and_serves_with_user_models(published, tmp_path):
    """`python app.py` itself: serves, then exits cleanly on SIGINT, with the folder above as its
    user models (exit 134 before the fix)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from studio_helpers import ROOT, free_port

    weights, users = published
    port = free_port()
    env = dict(os.environ, AIGC_USER_MODELS=str(users), GRADIO_ANALYTICS_ENABLED="False",
               AIGC_JOBS_DIR=str(tmp_path / "jobs"))
    p = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--weights", str(weights),
                          "--no-warm"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        deadline = time.time() + 120
        ok = False
        while time.time() < deadline and p.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    ok = r.status == 200
                    break
            except OSError:
                time.sleep(0.5)
        assert ok, f"app did not serve (exit {p.poll()}): {p.stdout.read() if p.poll() is not None else ''}"
    finally:
        p.send_signal(signal.SIGINT)
        try:
            out = p.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            p.kill()
            out = p.communicate()[0]
    # (how it ends is not checked here: an interrupt that lands while torch still loads on the loader
    # thread can abort the process at exit; see the session note)
    assert "KeyError" not in out and "skipping model half-copied" in out, out[-2000:]


# -- a user model is its owner's until shared (studio side) ---------------------------------------
def _client_owner(client) -> str:
    """The owner id the studio gives a gradio_client.Client (its session)."""
    from types import SimpleNamespace

    from demo.common import owner_id
    return owner_id(None, SimpleNamespace(username=None, session_hash=client.session_hash))


@pytest.fixture(scope="module")
def owned(tmp_path_factory):
    """Shipped models plus a user image model and a user text model, both owned by someone."""
    root = tmp_path_factory.mktemp("owned")
    weights = make_weights(root / "weights")
    users = root / "user_models"
    save_user_model(users / "a-cats", "dcgan", class_names=["a", "b"])
    save_user_model(users / "a-story", "char-lm")
    return weights, users


def test_unshared_model_is_its_owners_alone_through_the_library(owned):
    import gradio as gr

    from aigc.finetune.owners import set_shared, write_owner
    from demo.common import owner_id
    from demo.image_handlers import Studio, new_state
    from demo.models import ModelRegistry
    from demo.text_tab import TextModels

    weights, users = owned
    tok_a, tok_b = "a" * 32, "b" * 32
    a, b = owner_id(tok_a), owner_id(tok_b)
    write_owner(users / "a-cats", a)
    write_owner(users / "a-story", a)
    reg = ModelRegistry(weights, user_models=users)
    studio = Studio(reg)
    st_a, st_b = {**new_state(), "owner_token": tok_a}, {**new_state(), "owner_token": tok_b}
    assert "a-cats" in reg.image_models(a) and "a-cats" not in reg.image_models(b)
    assert "a-story" in reg.text_choices(a) and "a-story" not in TextModels.from_source(reg).names(owner=b)
    upd, _ = studio.model_choices(None, -1, st_b)
    assert "a-cats" not in upd["choices"] and "vae-mnist" in upd["choices"]
    with pytest.raises(gr.Error, match="unknown model 'a-cats'"):
        studio.sample("a-cats", "any", 1, 1, 1.0, st_b)
    with pytest.raises(ValueError, match="unknown text model 'a-story'"):
        TextModels.from_source(reg).get("a-story", b)
    _, _, st_a = studio.sample("a-cats", "a", 1, 1, 1.0, st_a)
    st_a = studio.open_sample(st_a, 0)[-1]
    with pytest.raises(gr.Error, match="unknown model 'a-cats'"):       # A's recipe in B's session
        studio.edit({**st_a, "owner_token": tok_b}, {"dir1": 1.0})
    v = reg.version
    set_shared(users / "a-cats", a, True)
    reg.refresh()
    assert reg.version == v + 1 and "a-cats" in reg.image_models(b)     # pickers see the change
    _, _, st_b = studio.sample("a-cats", "b", 1, 1, 1.0, st_b)
    st_b = studio.open_sample(st_b, 0)[-1]
    with pytest.raises(gr.Error, match="someone else's pictures"):
        studio.nearest(st_b)
    with pytest.raises(gr.Error, match="only its owner"):
        studio.save_direction(st_b, "mine now", {"dir1": 1.0})


def test_two_clients_see_only_their_own_unshared_models(owned, tmp_path):
    import json
    import os

    from gradio_client import Client, handle_file

    from aigc.finetune.owners import set_shared, write_owner
    from demo import ModelRegistry, build_demo
    from studio_helpers import free_port

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    weights, users = owned
    demo = build_demo(ModelRegistry(weights, user_models=users))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        a, b = Client(url, verbose=False), Client(url, verbose=False)
        write_owner(users / "a-cats", _client_owner(a))
        _, info = a.predict("a-cats", "a", 1, 1, 1.0, api_name="/sample")
        assert "a-cats** · seed 1 · 1 samples" in info
        with pytest.raises(Exception, match="unknown model 'a-cats'") as err:
            b.predict("a-cats", "a", 1, 1, 1.0, api_name="/sample")
        assert "vae-mnist" in str(err.value) and "a-cats;" not in str(err.value).split("available")[-1]
        with pytest.raises(Exception, match="unknown model"):
            b.predict("a-cats", api_name="/model_info")
        set_shared(users / "a-cats", _client_owner(a), True)
        _, info = b.predict("a-cats", "b", 2, 1, 1.0, api_name="/sample")
        assert "a-cats** · seed 2 · 1 samples" in info
        b.predict(0, api_name="/open")
        with pytest.raises(Exception, match="someone else's pictures"):
            b.predict(api_name="/nearest")
        rec = json.loads(Path([f for f in b.predict(api_name="/recipe") if str(f).endswith(".json")][0]).read_text())
        for change, msg in [({"temperature": 1e300}, "temperature must be between 0 and 2"),
                            ({"z": [1e30] * len(rec["z"]), "latent": None}, "must be between -16 and 16")]:
            bad = tmp_path / "bad.json"
            bad.write_text(json.dumps({**rec, **change}))
            with pytest.raises(Exception, match=msg):
                b.predict(handle_file(str(bad)), api_name="/restore")
    finally:
        demo.close()


def test_recipes_are_range_checked_like_the_sliders():
    from aigc.pipelines.recipes import RecipeError, from_dict

    ok = {"model": "m", "weights_hash": "", "z": [0.5, -1.0], "temperature": 1.0}
    assert from_dict(ok).temperature == 1.0
    for change, msg in [({"temperature": 1e300}, "temperature"), ({"temperature": -1}, "temperature"),
                        ({"z": [1e30, 0.0]}, "z"), ({"latent": [0.0, -1e30]}, "latent"),
                        ({"offsets": {"directions": {"PC1": 1e30}}}, "offsets")]:
        with pytest.raises(RecipeError, match=msg) as err:
            from_dict({**ok, **change})
        assert "\n" not in str(err.value)


def test_upload_pixel_bomb_is_refused_before_any_decoding(tmp_path, decodes):
    """Issue 16.4: 40 solid 6300x6300 PNGs in a few KB once cost 51 s of CPU and ~650 MB; now the
    headers are summed against the pixel budgets before anything is decoded."""
    from test_uploads import pixel_bomb_zip

    from aigc.data.uploads import UploadError, prepare_image_zip

    for side, budget in ((6300, "per-image pixel budget"), (4000, "pixel budget of one upload")):
        p = pixel_bomb_zip(tmp_path / f"bomb{side}.zip", side=side)
        with pytest.raises(UploadError, match=budget):
            prepare_image_zip(p)
    assert decodes == []


def test_degenerate_text_upload_is_refused(tmp_path):
    """Issue 16.6: 5 MB of one repeated character was accepted and trained."""
    from aigc.data.uploads import UploadError, prepare_text

    p = tmp_path / "same.txt"
    p.write_text("z" * 5_000_000, encoding="utf-8")
    with pytest.raises(UploadError, match="too degenerate to learn from: only 1 distinct"):
        prepare_text(p, block_size=128)


# -- fine-tune jobs: each person's own (the job manager and the Fine-tune tab's handlers) ------------------
def test_fine_tune_jobs_are_their_owners_alone(tmp_path):
    """Two owner tokens are two people: B does not see A's job in the list, and status, cancel, resume
    and compare of A's id answer B exactly as an unknown id does."""
    import types

    import gradio as gr

    from aigc.finetune.jobs import JobManager
    from demo.finetune_handlers import FinetuneHandlers

    sleepy = tmp_path / "sleepy-python"
    sleepy.write_text("#!/bin/sh\nexec sleep 60\n")
    sleepy.chmod(0o755)
    up = tmp_path / "notes.txt"
    up.write_text("a line of text to learn from.\n" * 40)
    m = JobManager(tmp_path / "jobs", tmp_path / "user_models", python=str(sleepy))
    try:
        h = FinetuneHandlers(types.SimpleNamespace(entries={}), m)
        tok_a, tok_b = "a1" * 16, "b2" * 16
        jid, *_ = h.start_job(str(up), "new:char-lm", "auto", 5, 0, "mine", tok_a)
        assert h.restore(tok_a, None)[1] == jid and h.restore(tok_b, None)[1] is None
        unknown = "20990101-000000-" + "0" * 32
        calls = {"status": lambda j, t: h.job_status(j, t), "cancel": lambda j, t: h.cancel_job(j, t),
                 "resume": lambda j, t: h.resume_job(j, t), "compare": lambda j, t: h.compare(j, 0, "", t),
                 "share": lambda j, t: h.share_model(j, True, t)}
        for name, call in calls.items():
            with pytest.raises(gr.Error) as theirs:
                call(jid, tok_b)
            with pytest.raises(gr.Error) as missing:
                call(unknown, tok_b)
            assert "no such job" in str(theirs.value), name
            assert str(theirs.value).replace(jid, "ID") == str(missing.value).replace(unknown, "ID"), name
        assert "mine" in h.job_status(jid, tok_a)[0]                 # its owner still sees it
        assert h.cancel_job(jid, tok_a)
    finally:
        m.close(stop_worker=True)


def test_app_auth_flags():
    import app

    assert app.read_auth(["ann:pw:with:colons"], None) == [("ann", "pw:with:colons")]
    with pytest.raises(ValueError, match="expected USER:PASSWORD"):
        app.read_auth(["nopassword"], None)
    assert app.is_loopback("127.0.0.1") and app.is_loopback("localhost") and app.is_loopback("::1")
    assert not app.is_loopback("0.0.0.0") and not app.is_loopback("example.org")
