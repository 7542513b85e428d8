"""Safe to share: the studio starts whatever the user-models folder holds, and each person's jobs and
models are theirs alone. Each test here tries what a careless or hostile user would."""
from __future__ import annotations

from pathlib import Path

import pytest

from studio_helpers import make_weights


def _save(folder: Path, kind: str, seed: int = 1, **kw):
    import torch

    from aigc import checkpoint as ckpt
    from aigc.kinds import build

    torch.manual_seed(seed)
    if kind == "char-lm":
        from aigc.text.tokenizer import CharTokenizer
        tok = CharTokenizer.from_text("once upon a time, a small model wrote.\n")
        m = build("char-lm", tiny=True, vocab_size=tok.vocab_size).set_tokenizer(tok)
    else:
        m = build(kind, tiny=True, **kw)
    return ckpt.save_pretrained(m, folder, meta={"dataset": "upload:x"}, metrics={"copy_rate": 0.0})


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A weights folder plus a user-models folder holding a text fine-tune, an image fine-tune, a
    fine-tune whose name a shipped text model already has, and two broken folders."""
    root = tmp_path_factory.mktemp("published")
    weights = make_weights(root / "weights")
    users = root / "user_models"
    _save(users / "my-story", "char-lm")
    _save(users / "my-cats", "dcgan", class_names=["a", "b"])
    _save(users / "tiny-text", "char-lm", seed=2)
    (users / "half-copied").mkdir(parents=True)
    (users / "half-copied" / "config.json").write_text('{"kind": "char-lm", "modality": "text"')
    (users / "not-a-model").mkdir()
    (users / "not-a-model" / "notes.txt").write_text("hello")
    _save(weights / "tiny-text", "char-lm", seed=3)
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
    assert "KeyError" not in out and "Traceback" not in out, out[-2000:]
