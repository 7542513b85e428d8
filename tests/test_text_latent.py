"""The Text tab's Latent view (demo.text_latent) on the shipped text VAE: handlers and endpoints."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models():
    from demo.text_tab import TextModels
    return TextModels(ROOT / "weights")


def test_latent_handlers(models):
    import gradio as gr

    from demo.text_latent import N_SLIDERS, LatentHandlers

    assert models.names("text-vae") == ["textvae-tang"] and "textvae-tang" not in models.names()
    h = LatentHandlers(models)
    rows, info = h.interpolate("textvae-tang", "床前明月光", "低头思故乡", 8)
    assert len(rows) == 8 and all(isinstance(r[1], str) and r[1] for r in rows) and "8 steps decoded" in info
    assert rows == h.interpolate("textvae-tang", "床前明月光", "低头思故乡", 8.0)[0]     # deterministic
    md, *coords = h.encode("textvae-tang", "春眠不觉晓")
    assert "decoded back" in md and "KL" in md and coords == [0.0] * N_SLIDERS
    assert "edited:" in h.edit("textvae-tang", "春眠不觉晓", *[0.0] * N_SLIDERS)
    moved = h.edit("textvae-tang", "春眠不觉晓", 3.0, -3.0, 3.0, 0, 0, 0)
    assert "edited:" in moved
    # a tiny move keeps the line, and says so; the unmoved line is decoded once, not on every move
    fresh = LatentHandlers(models)
    pipe, calls = fresh._pipe("textvae-tang"), []
    real_edit = pipe.edit
    pipe.edit = lambda line, c: (calls.append(list(c)), real_edit(line, c))[1]
    try:
        small = [fresh.edit("textvae-tang", "春眠不觉晓", d, 0, 0, 0, 0, 0) for d in (0.01, 0.02)]
    finally:
        del pipe.edit
    assert all("the same as the unmoved line" in t for t in small), small
    assert calls == [[0.01] + [0.0] * 5, [0.0] * 6, [0.02] + [0.0] * 5]
    lines = h.sample("textvae-tang", 5, 0).split("\n")
    assert len(lines) == 5 and lines == h.sample("textvae-tang", 5, 0).split("\n")
    assert "active latent units" in h.describe("textvae-tang")
    assert all(lbl.startswith("PC") for lbl in h.slider_labels("textvae-tang"))
    for fn, args, msg in [(h.interpolate, ("textvae-tang", "", "低头思故乡", 8), "empty"),
                          (h.interpolate, ("textvae-tang", "床前明月光", "x" * 5000, 8), "64"),
                          (h.interpolate, ("textvae-tang", "床前明月光", "低头思故乡", 100), "steps"),
                          (h.interpolate, ("char-tang", "床前明月光", "低头思故乡", 8), "not a text VAE"),
                          (h.interpolate, ("nope", "床前明月光", "低头思故乡", 8), "unknown text model"),
                          (h.encode, ("textvae-tang", "🙂🙂🙂"), "known to the model"),
                          (h.edit, ("textvae-tang", "春眠不觉晓", 9.0, 0, 0, 0, 0, 0), "between"),
                          (h.sample, ("textvae-tang", 5, -1), "seed")]:
        with pytest.raises(gr.Error, match=msg):
            fn(*args)


def test_latent_endpoints_through_the_client(models):
    import gradio as gr
    from gradio_client import Client

    from demo.text_tab import build_text_tab
    from studio_helpers import free_port

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with gr.Blocks() as demo:
        build_text_tab(models)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        path, info = client.predict("textvae-tang", "白日依山尽", "黄河入海流", 6, api_name="/text_interpolate")
        rows = path["data"] if isinstance(path, dict) else path
        assert len(rows) == 6 and "6 steps decoded" in info
        md, *coords = client.predict("textvae-tang", "春眠不觉晓", api_name="/text_encode")
        assert "decoded back" in md and len(coords) == 6
        assert "edited:" in client.predict("textvae-tang", "春眠不觉晓", 1, 0, 0, 0, 0, 0, api_name="/text_edit")
        assert len(client.predict("textvae-tang", 4, 1, api_name="/text_vae_sample").split("\n")) == 4
        with pytest.raises(Exception, match="64"):
            client.predict("textvae-tang", "床" * (5 << 20), "黄河入海流", 6, api_name="/text_interpolate")
        assert client.predict("textvae-tang", 2, 1, api_name="/text_vae_sample")           # still serving
    finally:
        demo.close()


def test_interpolation_shows_the_typed_lines_and_why(models):
    from demo.text_latent import LatentHandlers

    h = LatentHandlers(models)
    rows, info = h.interpolate("textvae-tang", "床前明月光", "低头思故乡", 4)
    assert rows[0][3] == "A: 床前明月光" and rows[-1][3] == "B: 低头思故乡" and rows[1][3] == ""
    assert "床前明月光" in info and ("reconstructions of the encoded lines" in info or "exactly" in info)
    cold, warm = (h.sample("textvae-tang", 4, 0, t) for t in (0.0, 1.5))
    assert cold == h.sample("textvae-tang", 4, 0, 0.0) and cold != warm
