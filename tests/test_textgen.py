"""Streaming text generation (aigc.pipelines.charlm) and the Text tab's Generate view (demo.text_tab).

Tiny untrained char-lm in a temporary weights folder; runs in seconds on a CPU.
"""
from __future__ import annotations

import os

import pytest
import torch

from aigc import checkpoint as ckpt
from aigc.kinds import build
from aigc.text.tokenizer import CharTokenizer
from aigc.limits import MAX_NEW_CHARS, MAX_PROMPT_CHARS
from aigc.pipelines.charlm import TextPipeline

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"


pytestmark = pytest.mark.usefixtures("one_thread")   # small transformer ops: 1 thread is faster here


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("textweights")
    tok = CharTokenizer.from_text(TEXT)
    torch.manual_seed(0)
    m = build("char-lm", tiny=True, vocab_size=tok.vocab_size).set_tokenizer(tok)
    ckpt.save_pretrained(m, root / "tiny-text", meta={"dataset": "tiny"})
    m2 = build("vae", tiny=True)                       # an image model: not offered by the Text tab
    ckpt.save_pretrained(m2, root / "tiny-vae", meta={"dataset": "mnist"})
    return root


@pytest.fixture(scope="module")
def pipe(weights):
    return TextPipeline.from_pretrained(weights / "tiny-text")


# -- library -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, msg", [
    ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "limit is 100,000"),
    ({"prompt": 12}, "prompt must be text"),
    ({"max_new": 0}, "max_new"),
    ({"max_new": MAX_NEW_CHARS + 1}, "max_new"),
    ({"max_new": 2.5}, "whole number"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": 5.5}, "temperature"),
    ({"temperature": float("nan")}, "finite"),
    ({"temperature": "hot"}, "must be a number"),
    ({"top_k": -1}, "top_k"),
    ({"top_k": 1.5}, "whole number"),
    ({"top_p": 0}, "top_p"),
    ({"top_p": 1.01}, "top_p"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"repetition_penalty": 10}, "repetition_penalty"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"seed": "7"}, "seed"),
    ({"seed": True}, "seed"),
    ({"stop": [""]}, "must not be empty"),
    ({"stop": [3]}, "stop string must be text"),
    ({"stop": ["a"] * 17}, "at most 16"),
    ({"stop": ["a" * 201]}, "limit is 200"),
])
def test_bad_arguments_are_refused_before_generating(pipe, kw, msg):
    args = {"prompt": "To be", "max_new": 10, **kw}
    with pytest.raises(ValueError, match=msg):
        pipe.stream(**args)          # raised by the call itself, not on the first next()


def test_not_a_text_model_is_refused(weights):
    with pytest.raises(ValueError, match="not a text model"):
        TextPipeline.from_pretrained(weights / "tiny-vae")


def test_same_seed_same_text_and_seed_reported(pipe):
    a = pipe.generate("To be", 40, temperature=1.0, seed=123)
    b = pipe.generate("To be", 40, temperature=1.0, seed=123)
    assert a.text == b.text and a.seed == b.seed == 123 and len(a.text) == 40
    c = pipe.generate("To be", 40, temperature=1.0, seed=None)      # drawn, reported, repeatable
    assert isinstance(c.seed, int)
    assert pipe.generate("To be", 40, temperature=1.0, seed=c.seed).text == c.text
    # the cache and the plain path agree; greedy ignores the seed; top-k 0 / top-p 1 are "off"
    assert pipe.generate("To be", 40, seed=5, use_cache=False).text == pipe.generate("To be", 40, seed=5).text
    assert pipe.generate("To", 20, temperature=0, seed=1).text == pipe.generate("To", 20, temperature=0, seed=2).text
    assert (pipe.generate("To", 20, seed=9, top_k=0, top_p=1.0).text == pipe.generate("To", 20, seed=9).text)


def test_streaming_yields_growing_prefixes(pipe):
    steps = list(pipe.stream("", max_new=30, seed=4))             # empty prompt: unconditional
    texts = [s.text for s in steps]
    assert steps[-1].done and not any(s.done for s in steps[:-1])
    assert len(texts[-1]) == 30 and steps[-1].new_chars == 30
    for a, b in zip(texts, texts[1:]):
        assert b.startswith(a)
    assert [len(t) for t in texts[:-1]] == list(range(1, 30))
    assert steps[-1].first_char_s is not None and steps[-1].elapsed_s > 0


def test_stop_strings_end_generation(pipe):
    full = pipe.generate("To be", 200, temperature=1.0, seed=11).text
    stop = full[20:22]
    i = full.find(stop)
    res = pipe.generate("To be", 200, temperature=1.0, seed=11, stop=["\x00never", stop])
    assert res.done and res.stopped_by == stop
    assert res.text == full[:i] and res.new_chars == i + len(stop)
    assert pipe.generate("To be", 50, seed=11, stop="\x00never").stopped_by is None   # one str is one stop


def test_unknown_characters_are_counted_not_refused(pipe):
    res = pipe.generate("To be 🙂 Ω", 5, seed=0)
    assert res.unknown_chars == 2 and len(res.text) == 5
    assert "\ufffd" not in res.text           # the unknown symbol is never written


# -- the tab -------------------------------------------------------------------------------------------
def test_tab_handler_streams_and_refuses_bad_input(weights):
    import gradio as gr

    from demo.text_tab import TextModels, build_text_tab, parse_stop

    models = TextModels(weights)
    assert models.names() == ["tiny-text"]
    with gr.Blocks() as demo:
        h = build_text_tab(models)
    assert "generate_text" in {fn.api_name for fn in demo.fns.values()}
    outs = list(h.generate("tiny-text", "To be", 0.8, 0, 1.0, 1.0, 25, 7, ""))
    text, seed, info = outs[-1]
    assert seed == 7 and len(text) == 25 and "seed **7**" in info
    assert text == models.get("tiny-text").generate("To be", 25, temperature=0.8, seed=7).text
    assert all(b[0].startswith(a[0]) for a, b in zip(outs, outs[1:]))
    _, drawn, _ = list(h.generate("tiny-text", "", 1.0, 5, 0.9, 1.1, 5, None, ""))[-1]   # empty seed: drawn
    assert isinstance(drawn, int)
    assert parse_stop("a\\nb\n\n\\\\n\r\nx") == ["a\nb", "\\n", "x"]
    for args, msg in [(("nope", "x", 0.8, 0, 1.0, 1.0, 5, 1, ""), "unknown text model"),
                      (("tiny-text", "x" * (MAX_PROMPT_CHARS + 1), 0.8, 0, 1.0, 1.0, 5, 1, ""), "limit"),
                      (("tiny-text", "x", 9.0, 0, 1.0, 1.0, 5, 1, ""), "temperature"),
                      (("tiny-text", "x", 0.8, 0, 1.0, 1.0, 0, 1, ""), "max_new"),
                      (("tiny-text", "x", 0.8, 0, 1.0, 1.0, 5, -3, ""), "seed"),
                      (("tiny-text", "x", 0.8, 0, 1.0, 1.0, 5, 1.5, ""), "seed")]:
        with pytest.raises(gr.Error, match=msg):
            list(h.generate(*args))


def test_tab_fits_build_demo(weights):
    from demo import ModelRegistry, build_demo
    from demo.text_tab import build_text_tab

    demo = build_demo(ModelRegistry(weights), extra_tabs={"Text": build_text_tab})
    assert "generate_text" in {fn.api_name for fn in demo.fns.values()}


def test_gradio_client_generate_text(weights):
    import gradio as gr
    from gradio_client import Client

    from demo.text_tab import TextModels, build_text_tab
    from studio_helpers import free_port

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with gr.Blocks() as demo:
        build_text_tab(TextModels(weights))
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        args = dict(model="tiny-text", prompt="To be", temperature=0.8, top_k=0, top_p=1.0,
                    repetition_penalty=1.0, max_length=300, seed=5, stop="")
        text, seed, info = client.predict(**args, api_name="/generate_text")
        assert seed == 5 and len(text) == 300
        job = client.submit(**args, api_name="/generate_text")
        outs = list(job)                                       # streamed updates
        assert outs and outs[-1][0] == text
        assert all(b[0].startswith(a[0]) for a, b in zip(outs, outs[1:]))
        with pytest.raises(Exception, match="limit is 100,000"):
            client.predict(**{**args, "prompt": "x" * (5 << 20)}, api_name="/generate_text")
        assert client.predict(**{**args, "max_length": 3}, api_name="/generate_text")[1] == 5   # still serving
    finally:
        demo.close()


def test_published_text_model_appears_in_the_text_picker(weights, tmp_path):
    """A fine-tuned language model published into the user-models folder is offered (and served)
    by the Text tab without a restart."""
    import shutil

    import gradio as gr

    from demo import ModelRegistry
    from demo.text_tab import TextModels, build_text_tab

    users = tmp_path / "user_models"
    users.mkdir()
    reg = ModelRegistry(weights, user_models=users)
    models = TextModels.from_source(reg)
    with gr.Blocks():
        h = build_text_tab(models)
    assert models.names() == ["tiny-text"] and h.model_pickers
    shutil.copytree(weights / "tiny-text", users / "my-finetune")
    up = models.picker_update("tiny-text")
    assert [c[0] if isinstance(c, (tuple, list)) else c for c in up["choices"]] == ["tiny-text", "my-finetune"]
    assert up["value"] == "tiny-text"
    text, seed, _ = list(h.generate("my-finetune", "To be", 0.8, 0, 1.0, 1.0, 10, 3, ""))[-1]
    assert seed == 3 and len(text) == 10
    shutil.rmtree(users / "my-finetune")
    assert models.picker_update("my-finetune")["value"] == "tiny-text"      # gone: back to one that exists


def test_continue_regenerate_and_stop(weights):
    """Continue appends to the text so far; Regenerate draws a new seed; Stop ends a running
    generation with a last update that says where it stopped, and with nothing running reports a
    miss (the page then cancels a queued run)."""
    import threading

    import gradio as gr

    from demo.text_tab import TextModels, build_text_tab

    with gr.Blocks():
        h = build_text_tab(TextModels(weights))
    args = (0.8, 0, 1.0, 1.0, 20, 7, "")
    first = list(h.generate("tiny-text", "To be", *args))[-1][0]
    text, seed, info = list(h.continue_("tiny-text", "To be", first, *args))[-1]
    assert text.startswith(first) and len(text) == 40 and seed == 7 and "40 characters" in info
    with pytest.raises(gr.Error, match="Continue reads at most"):
        list(h.continue_("tiny-text", "To be", "x" * (MAX_PROMPT_CHARS + 1), *args))
    seeds = {list(h.regenerate("tiny-text", "To be", *args))[-1][1] for _ in range(3)}
    assert 7 not in seeds and len(seeds) >= 2

    assert h.stop(0) == 1                                  # nothing running: a miss
    run = h.generate("tiny-text", "To be", 0.8, 0, 1.0, 1.0, MAX_NEW_CHARS, 7, "")
    out = [next(run)]
    assert h.stop(1) == 1                                  # found the run: no miss
    out += list(run)
    text, _, info = out[-1]
    assert f"stopped at {len(text)} characters" in info and len(text) < MAX_NEW_CHARS
    assert h._runs == {}
    ev = threading.Event()
    h._runs["other-session"] = {ev}                        # another person's run is not stopped
    assert h.stop(0) == 1 and not ev.is_set()


def test_examples_and_presets():
    from pathlib import Path

    from demo.text_examples import ARTICLE_FIRST_SENTENCE, PRESETS, preset_values, prompt_examples
    from demo.text_tab import preset_knobs

    root = Path(__file__).resolve().parents[1]
    assert (root / "data/text/article_example_zh.txt").read_text(encoding="utf-8").startswith(ARTICLE_FIRST_SENTENCE)
    rows = prompt_examples({"char-shakespeare": "shakespeare", "mine": None, "char-zh": "zh-modern"})
    assert ["char-zh", ARTICLE_FIRST_SENTENCE] in rows and all(r[0] != "mine" for r in rows)
    assert rows[0][0] == "char-shakespeare"
    assert not any(r[0] == "char-zh" for r in prompt_examples({"char-shakespeare": "shakespeare"}))
    assert set(PRESETS) == {"faithful", "balanced", "wild"}
    assert PRESETS["faithful"][0] < PRESETS["balanced"][0] < PRESETS["wild"][0]
    assert [u["value"] for u in preset_knobs("wild")] == list(preset_values("wild"))
    assert all("value" not in u for u in preset_knobs("custom"))
    with pytest.raises(ValueError, match="unknown preset"):
        preset_values("hot")
