"""Tang poems: corpus preparation, the form checker, and form-constrained generation."""
from __future__ import annotations

import json

import pytest
import torch

from aigc.data.text import tang_documents
from aigc.models.charlm import CharLM, CharLMConfig
from aigc.text import forms
from aigc.text.tokenizer import CharTokenizer
from aigc.textgen import TextPipeline

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
    ]
    docs, counts = tang_documents(poems, convert=lambda s: s)
    assert counts == {"poems": 5, "dropped_unclean": 2, "dropped_duplicate": 1}
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
    from aigc.__main__ import main
    pipe = _tiny_poet()
    ckpt.save_pretrained(pipe.model, tmp_path / "poet", meta={"modality": "text"})
    assert main(["sample", str(tmp_path / "poet"), "--form", "七言绝句", "--n", "5", "--seed", "3", "--json"]) == 0
    poems = json.loads(capsys.readouterr().out)
    assert len(poems) == 5 and all(forms.check_form(p, "七言绝句").ok for p in poems)
    assert main(["sample", str(tmp_path / "poet"), "--form", "七言绝句", "--n", "5", "--seed", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == poems
    assert main(["sample", str(tmp_path / "poet"), "--form", "自由诗", "--json"]) == 2
    assert "unknown form" in capsys.readouterr().err
