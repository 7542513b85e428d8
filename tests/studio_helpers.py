"""Shared by the studio tests: tiny saved models in a temporary weights folder, and a launched app."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

GAIN = 3.0
TINY = [("vae", "vae-mnist"), ("dcgan", "dcgan-mnist"), ("seed-gan", "seed-gan-mnist")]


def make_weights(root: Path) -> Path:
    """Three tiny untrained models (dataset 'mnist'), a support folder and a broken model."""
    from aigc import checkpoint as ckpt
    from aigc.kinds import build

    root = Path(root)
    torch.manual_seed(0)
    for kind, name in TINY:
        kw = {"class_names": [str(i) for i in range(10)]} if kind == "dcgan" else {}
        m = build(kind, tiny=True, **kw)
        if kind == "vae":            # untrained decoders draw flat grey; more gain makes edits visible
            with torch.no_grad():
                for pname, w in m.named_parameters():
                    if pname.endswith("weight"):
                        w.mul_(GAIN)
        ckpt.save_pretrained(m, root / name, meta={"dataset": "mnist"}, metrics={"fid": 123.4})
    (root / "_eval").mkdir(exist_ok=True)
    (root / "_eval" / "config.json").write_text("{}")
    (root / "broken").mkdir(exist_ok=True)
    (root / "broken" / "config.json").write_text('{"kind": "vae", "config": {}}')
    (root / "broken" / "model.safetensors").write_bytes(b"not safetensors")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(weights: Path):
    """Build and launch the app on a free port in this process -> (demo, url)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import app
    from demo import CSS

    app.configure_runtime()
    demo, _ = app.create(weights, warm=False, user_models=Path(weights) / "_user_models")   # not shared between apps
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS,
                footer_links=["api"])
    return demo, f"http://127.0.0.1:{port}/"


def save_user_model(folder, kind="dcgan", seed=1, **kw):
    """A tiny untrained model saved as a fine-tune would be (dataset 'upload:x') -> its folder."""
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


def grid_box(page, timeout: int = 60_000) -> dict:
    """The sample grid picture's box on the page, once it is drawn and in view."""
    page.wait_for_function("(() => { const i = document.querySelector('#gallery img');"
                           " return i && i.complete && i.naturalWidth > 0; })()", timeout=timeout)
    page.locator("#gallery img").scroll_into_view_if_needed()
    return page.locator("#gallery img").bounding_box()


def click_tile(page, index: int, side: int) -> None:
    """Click the middle of tile `index` of a side x side grid picture, as a person would."""
    box = grid_box(page)
    row, col = divmod(index, side)
    page.mouse.click(box["x"] + box["width"] * (col + 0.5) / side, box["y"] + box["height"] * (row + 0.5) / side)
