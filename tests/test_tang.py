"""Tang poems: corpus preparation, the form checker, and form-constrained generation."""
from __future__ import annotations

import json

import pytest
import torch

from aigc.data.text import tang_documents
from aigc.models.charlm import CharLM, CharLMConfig
from aigc.text import forms
from aigc.text.tokenizer import CharTokenizer
from aigc.pipelines.charlm import TextPipeline

JINGYESI = "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
CHUNXIAO = "春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。"
QI_JUE = "朝辞白帝彩云间，千里江陵一日还。两岸猿声啼不住，轻舟已过万重山。"
LU = "国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。烽火连三月，家书抵万金。白头搔更短，浑欲不胜簪。"


def test_classify_and_layout():
    assert forms.classify(JINGYESI) == "五言绝句"
    assert forms.classify(CHUNXIAO) == "五言绝句"
    assert forms.classify(QI_JUE) == "七言绝句"
    assert forms.classify(LU) == "五言律诗"
    assert forms.classify(LU + LU) == "五言古诗"
    assert forms.classify("前不见古人，后不见来者。念天地之悠悠，独怆然而涕下。") == "杂言"
    assert forms.classify("白日依山尽，黄河入海流。欲穷千里目。") == "杂言"     # odd clause count
    assert forms.layout(JINGYESI) == "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。"
    doc = forms.document("五言绝句", "静夜思", JINGYESI)
    assert doc == "【五言绝句】静夜思\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n\n"


def test_check_form():
    poem = "静夜思\n" + forms.layout(JINGYESI)
    assert forms.check_form(poem, "五言绝句").ok
    assert forms.check_form(forms.layout(JINGYESI), "五言绝句").ok          # no title line
    assert not forms.check_form(poem, "七言绝句").ok
    assert not forms.check_form(poem, "五言律诗").ok
    assert forms.check_form("春望\n" + forms.layout(LU), "五言律诗").ok
    assert forms.check_form("早发白帝城\n" + forms.layout(QI_JUE), "七言绝句").ok
    bad_punct = "静夜思\n床前明月光。疑是地上霜，\n举头望明月，低头思故乡。"
    r = forms.check_form(bad_punct, "五言绝句")
    assert not r.ok and "punctuation" in r.reason
    short = "静夜思\n床前明月，疑是地上霜。\n举头望明月，低头思故乡。"
    assert "characters" in forms.check_form(short, "五言绝句").reason
    latin = "静夜思\n床前明月A，疑是地上霜。\n举头望明月，低头思故乡。"
    assert "hanzi" in forms.check_form(latin, "五言绝句").reason
    with pytest.raises(ValueError, match="unknown form"):
        forms.check_form(poem, "十四行诗")


def test_tang_documents_cleaning():
    poems = [
        {"title": "静夜思", "paragraphs": ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]},
        {"title": "重复", "paragraphs": ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"]},   # duplicate body
        {"title": "缺字", "paragraphs": ["床前□月光，疑是地上霜。"]},                               # lost character
        {"title": "注", "paragraphs": ["国破山河在（一作「存」），城春草木深。", "感时花溅泪，恨别鸟惊心。"]},
        {"title": "no end", "paragraphs": ["床前明月光"]},
        {"title": "囗", "paragraphs": ["春眠不觉囗，处处闻啼鸟。"]},                                # 囗 marks a lost character
    ]
    docs, counts = tang_documents(poems, convert=lambda s: s)
    assert counts == {"poems": 6, "dropped_unclean": 3, "dropped_duplicate": 1}
    assert [d.split("\n")[0] for d, _ in docs] == ["【五言绝句】静夜思", "【五言绝句】注"]
    assert docs[1][1] == "国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。"        # the note is gone


def _tiny_poet(seed=0) -> TextPipeline:
    """An untrained model on a poem vocabulary: the constraint alone must keep the form."""
    text = "".join(forms.document(forms.classify(b), t, b)
                   for t, b in [("静夜思", JINGYESI), ("早发白帝城", QI_JUE), ("春望", LU), ("春晓", CHUNXIAO)])
    tok = CharTokenizer.from_text(text + "？！")
    torch.manual_seed(seed)
    m = CharLM(CharLMConfig(vocab_size=tok.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=32, dropout=0.0))
    m.set_tokenizer(tok)
    return TextPipeline(m, name="tiny-poet")


@pytest.mark.parametrize("form", list(forms.FORMS))
def test_constrained_generation_keeps_the_form(form):
    pipe = _tiny_poet()
    assert pipe.forms == list(forms.FORMS)
    for seed in range(3):
        steps = list(pipe.stream_poem(form, seed=seed, temperature=1.0))
        poem = steps[-1].text
        assert steps[-1].done and forms.check_form(poem, form).ok, poem
        assert all(s.text for s in steps)
        # the title is the model's own: a first line without clause punctuation
        assert not any(p in poem.split("\n")[0] for p in forms.CLAUSE_END)
    again = pipe.stream_poem(form, seed=1, temperature=1.0)
    assert list(again)[-1].text == list(pipe.stream_poem(form, seed=1, temperature=1.0))[-1].text


def test_title_and_first_line():
    pipe = _tiny_poet()
    poem = list(pipe.stream_poem("五言绝句", title="静夜思", first_line="床前明月光", seed=0))[-1].text
    assert poem.startswith("静夜思\n床前明月光，") and forms.check_form(poem, "五言绝句").ok
    poem = list(pipe.stream_poem("五言律诗", title="春望", first_line="国破山河在，城春草木深。", seed=0))[-1].text
    assert poem.startswith("春望\n国破山河在，城春草木深。\n") and forms.check_form(poem, "五言律诗").ok
    greedy = list(pipe.stream_poem("七言绝句", title="山", temperature=0, seed=0))[-1].text
    assert forms.check_form(greedy, "七言绝句").ok


@pytest.mark.parametrize("kwargs, message", [
    ({"form": "十四行诗"}, "unknown form"),
    ({"form": "五言绝句", "title": "x" * 40}, "title"),
    ({"form": "五言绝句", "title": "【】"}, "title"),
    ({"form": "五言绝句", "title": "静夜思", "first_line": "床前明月光太长了"}, "does not fit"),
    ({"form": "五言绝句", "title": "静夜思", "first_line": "Moonlight"}, "does not fit"),
    ({"form": "五言绝句", "first_line": "床前明月光"}, "title"),
    ({"form": "五言绝句", "temperature": -1}, "temperature"),
    ({"form": "五言绝句", "top_p": 2}, "top_p"),
])
def test_bad_poem_requests(kwargs, message):
    pipe = _tiny_poet()
    with pytest.raises(ValueError, match=message):
        pipe.stream_poem(**kwargs)


def test_english_model_has_no_forms():
    tok = CharTokenizer.from_text("To be, or not to be.\n")
    m = CharLM(CharLMConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
    m.set_tokenizer(tok)
    pipe = TextPipeline(m, name="en")
    assert pipe.forms == []
    with pytest.raises(ValueError, match="does not write poem forms"):
        pipe.stream_poem("五言绝句")


def test_cli_form_sampling(tmp_path, capsys):
    from aigc import checkpoint as ckpt
    from aigc.cli.commands import main
    pipe = _tiny_poet()
    ckpt.save_pretrained(pipe.model, tmp_path / "poet", meta={"modality": "text"})
    assert main(["sample", str(tmp_path / "poet"), "--form", "七言绝句", "--n", "5", "--seed", "3", "--json"]) == 0
    poems = json.loads(capsys.readouterr().out)
    assert len(poems) == 5 and all(forms.check_form(p, "七言绝句").ok for p in poems)
    assert main(["sample", str(tmp_path / "poet"), "--form", "七言绝句", "--n", "5", "--seed", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == poems
    assert main(["sample", str(tmp_path / "poet"), "--form", "自由诗", "--json"]) == 2
    assert "unknown form" in capsys.readouterr().err


# -- the Poem view -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def poet_weights(tmp_path_factory):
    from aigc import checkpoint as ckpt
    root = tmp_path_factory.mktemp("poetweights")
    pipe = _tiny_poet()
    ckpt.save_pretrained(pipe.model, root / "tiny-poet",
                         meta={"dataset": "tang", "text_stats": {"poem_forms": list(forms.FORMS)}})
    tok = CharTokenizer.from_text("To be, or not to be.\n")
    m = CharLM(CharLMConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
    ckpt.save_pretrained(m.set_tokenizer(tok), root / "tiny-en", meta={"dataset": "tiny"})
    return root


def test_poem_handler_streams_a_checked_poem(poet_weights):
    import gradio as gr

    from demo.text_tab import TextModels, build_text_tab

    models = TextModels(poet_weights)
    assert models.names() == ["tiny-en", "tiny-poet"] and models.poem_models() == ["tiny-poet"]
    with gr.Blocks() as demo:
        h = build_text_tab(models)
    apis = {fn.api_name for fn in demo.fns.values()}
    assert {"generate_text", "generate_poem", "text_interpolate", "text_encode", "text_edit"} <= apis
    outs = list(h.poem("tiny-poet", "七言绝句", "", "", 0.8, 0, 1.0, 1.0, 11))
    poem, seed, info = outs[-1]
    assert seed == 11 and forms.check_form(poem, "七言绝句").ok and "form kept" in info
    assert all(b[0].startswith(a[0]) for a, b in zip(outs, outs[1:]))
    for args, msg in [(("tiny-poet", "俳句", "", "", 0.8, 0, 1.0, 1.0, 1), "unknown form"),
                      (("tiny-en", "五言绝句", "", "", 0.8, 0, 1.0, 1.0, 1), "does not write poem forms"),
                      (("tiny-poet", "五言绝句", "题", "abc", 0.8, 0, 1.0, 1.0, 1), "does not fit"),
                      (("tiny-poet", "五言绝句", "", "", 0.8, 0, 1.0, 1.0, -1), "seed")]:
        with pytest.raises(gr.Error, match=msg):
            list(h.poem(*args))


def test_gradio_client_generate_poem(poet_weights):
    import os

    import gradio as gr
    from gradio_client import Client

    from demo.text_tab import TextModels, build_text_tab
    from studio_helpers import free_port

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    with gr.Blocks() as demo:
        build_text_tab(TextModels(poet_weights))
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        args = dict(model="tiny-poet", form="五言律诗", title="春望", first_line="", temperature=0.8, top_k=0,
                    top_p=1.0, repetition_penalty=1.0, seed=3)
        poem, seed, info = client.predict(**args, api_name="/generate_poem")
        assert seed == 3 and poem.startswith("春望\n") and forms.check_form(poem, "五言律诗").ok
        with pytest.raises(Exception, match="title"):
            client.predict(**{**args, "title": "x" * (5 << 20)}, api_name="/generate_poem")
        with pytest.raises(Exception, match="not in the list of choices"):     # the Dropdown's own check
            client.predict(**{**args, "form": "sonnet"}, api_name="/generate_poem")
        assert client.predict(**args, api_name="/generate_poem")[0] == poem          # still serving, same seed
    finally:
        demo.close()


# -- every shipped text model ----------------------------------------------------------------------------
def _shipped_text_models():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "weights"
    out = []
    for d in sorted(root.iterdir()):
        cfg = d / "config.json"
        if cfg.is_file() and json.loads(cfg.read_text()).get("modality") == "text":
            out.append(d)
    return out


@pytest.mark.parametrize("path", _shipped_text_models(), ids=lambda p: p.name)
def test_every_shipped_text_model_loads_and_generates(path, one_thread):
    from aigc import checkpoint as ckpt
    kind = ckpt.read_config(path)["kind"]
    if kind == "text-vae":
        from aigc.pipelines.textvae import TextVAEPipeline
        pipe = TextVAEPipeline.from_pretrained(path)
        lines = pipe.sample(n=4, seed=0)
        assert len(lines) == 4 and all(isinstance(x, str) and x for x in lines)
        assert pipe.sample(n=4, seed=0) == lines
        return
    pipe = TextPipeline.from_pretrained(path)
    a = pipe.generate("", max_new=40, temperature=0.8, seed=1)
    assert a.new_chars == 40 and a.text == pipe.generate("", max_new=40, temperature=0.8, seed=1).text
    assert (card := (path / "README.md").read_text(encoding="utf-8")) and "Reproduce" in card
    if pipe.forms:                                     # the Tang model keeps every form it offers
        for form in pipe.forms:
            poem = list(pipe.stream_poem(form, seed=0))[-1].text
            assert forms.check_form(poem, form).ok, poem
