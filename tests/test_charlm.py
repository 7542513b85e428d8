"""The character-level language model: tokenizer, text data, generation, checkpoints, training.

Everything runs on tiny configs in seconds on a CPU.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from aigc import checkpoint as ckpt
from aigc.data.text import (SHAKESPEARE_HELD_OUT, TEXT_DIR, TextData, load_text_corpus, load_text_dataset,
                            split_works, text_dataset_names)
from aigc.configs.charlm import PRESETS, TRAIN_PRESETS
from aigc.models.charlm import CharLM
from aigc.models.sampling import filter_logits, sample_next
from aigc.kinds import build, get_kind, make_config
from aigc.text.tokenizer import UNK, CharTokenizer
from aigc.train.loop import TrainOptions, train
from aigc.train.rng import StepRNG

EN = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"
ZH = "床前明月光，疑是地上霜。\n舉頭望明月，低頭思故鄉。"


pytestmark = pytest.mark.usefixtures("one_thread")   # small transformer ops: 1 thread is faster here


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer.from_text(EN + ZH)


def tiny_model(tok, seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=tok.vocab_size)
    cfg.update(kw)
    return build("char-lm", tiny=True, **cfg).set_tokenizer(tok).eval()


# -- tokenizer --------------------------------------------------------------------------------------
def test_tokenizer_round_trips_english_and_chinese(tok):
    for text in (EN, ZH, EN + ZH, ""):
        ids = tok.encode(text)
        assert len(ids) == len(text)                 # one token per character, Chinese included
        assert tok.decode(ids) == text
        assert tok.count_unknown(text) == 0
    assert tok.unk_id == 0 and tok.chars[0] == UNK
    assert tok.chars[1:] == sorted(set(EN + ZH))     # deterministic: sorted by code point


def test_tokenizer_unknown_chars_become_unk(tok):
    text = "to be 🙂 or Ωmen"
    ids = tok.encode(text)                           # never raises
    assert len(ids) == len(text)
    out = tok.decode(ids)
    assert out == "to be \ufffd or \ufffdmen"
    assert tok.count_unknown(text) == 2
    assert tok.unknown_chars(text) == {"🙂": 1, "Ω": 1}
    assert tok.encode(b"to\xff") == [tok.stoi["t"], tok.stoi["o"], 0]   # invalid UTF-8 bytes -> unk
    assert tok.decode([10_000, -1]) == UNK * 2


def test_tokenizer_json_round_trip_and_validation(tok):
    obj = json.loads(json.dumps(tok.to_json(), ensure_ascii=False))
    back = CharTokenizer.from_json(obj)
    assert back == tok and back.vocab_size == tok.vocab_size
    with pytest.raises(ValueError):
        CharTokenizer.from_json({"type": "char", "chars": ["a", "b"]})          # no UNK first
    with pytest.raises(ValueError):
        CharTokenizer.from_json({"type": "char", "chars": [UNK, "a", "a"]})     # duplicate
    with pytest.raises(ValueError):
        CharTokenizer.from_json({"type": "bpe", "chars": [UNK]})


def test_tokenizer_min_count_and_max_size():
    t = CharTokenizer.from_text("aaabbc", min_count=2)
    assert t.chars == [UNK, "a", "b"]
    t = CharTokenizer.from_text("aaabbc", max_size=2)
    assert t.chars == [UNK, "a"]


# -- text data --------------------------------------------------------------------------------------
def test_shakespeare_split_holds_out_whole_plays():
    train_text, val_text, info, tok = load_text_corpus("shakespeare")
    full = (TEXT_DIR / "shakespeare.txt").read_text(encoding="utf-8")
    works = dict(split_works(full))
    assert len(works) == 38 and "".join(w for _, w in split_works(full)) == full
    assert len(train_text) + len(val_text) == len(full)
    for title in SHAKESPEARE_HELD_OUT:
        play = works[title]
        assert play in val_text and play[:2000] not in train_text
        assert f"\n{title}\n\nby William Shakespeare" not in train_text
    assert 0.05 <= len(val_text) / len(full) <= 0.08
    assert info["held_out"] == list(SHAKESPEARE_HELD_OUT)
    assert "shakespeare" in text_dataset_names()
    assert tok.count_unknown(val_text) == 0          # the held-out plays need no new characters


def test_text_data_windows_and_source():
    d = load_text_dataset("shakespeare", "train", block_size=32)
    assert len(d) == (d.ids.numel() - 1) // 32
    assert d.model_overrides("char-lm") == {"vocab_size": d.tokenizer.vocab_size}
    meta = d.model_meta()
    assert meta["tokenizer"] == "tokenizer.json" and meta["text_stats"]["chars"] == len(d.text)
    src = d.source("cpu")
    rng = StepRNG(0, 5, "cpu")
    x, y = src.get(torch.arange(6), rng)
    assert x.shape == y.shape == (6, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    # the windows are real text, y the next character of x
    start = d.text.find(d.tokenizer.decode(x[0].tolist()))
    assert start >= 0 and d.text[start + 1:start + 33] == d.tokenizer.decode(y[0].tolist())
    # same step, same windows; two processes together draw what one process draws
    x2, _ = src.get(torch.arange(6), StepRNG(0, 5, "cpu"))
    assert torch.equal(x, x2)
    halves = [src.get(torch.arange(3), StepRNG(0, 5, "cpu", rank=r, world=2))[0] for r in (0, 1)]
    assert torch.equal(torch.cat(halves), x)


def test_text_data_from_any_string(tok):
    d = TextData("toy", EN * 3, tok, block_size=8)
    assert len(d) == (len(EN) * 3 - 1) // 8
    x, y = d.source("cpu").get(torch.tensor([0, 1]))            # no rng: non-overlapping windows
    assert tok.decode(x[1].tolist()) == (EN * 3)[8:16]
    with pytest.raises(ValueError):
        TextData("toy", "short", tok, block_size=8)


# -- the model ---------------------------------------------------------------------------------------
def test_registry_and_presets():
    k = get_kind("char-lm")
    assert k.modality == "text" and k.model_cls is CharLM
    for name, preset in PRESETS.items():
        cfg = make_config("char-lm", preset=name)
        assert all(getattr(cfg, f) == v for f, v in preset.items())
    assert make_config("char-lm", preset="cpu", n_layer=2).n_layer == 2    # explicit fields win
    assert set(TRAIN_PRESETS) == set(PRESETS)
    for name, opts in TRAIN_PRESETS.items():                                 # valid TrainOptions
        TrainOptions(**opts, model="char-lm", data="shakespeare", config={"preset": name})
    with pytest.raises(ValueError):
        make_config("char-lm", preset="tpu")


def test_forward_shapes_and_loss(tok):
    m = tiny_model(tok)
    x = torch.randint(0, tok.vocab_size, (3, 20))
    logits, loss = m(x, x)
    assert logits.shape == (3, 20, tok.vocab_size)
    assert loss.ndim == 0 and abs(loss.item() - math.log(tok.vocab_size)) < 0.5   # ~uniform at init
    assert m(x)[1] is None
    # causal: changing a later token leaves earlier logits untouched
    x2 = x.clone()
    x2[:, 10] = (x2[:, 10] + 1) % tok.vocab_size
    assert torch.allclose(m(x2)[0][:, :10], logits[:, :10], atol=1e-6)


def _gen(m, prompt, n, seed=None, **kw):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return list(m.generate(m.tokenizer.encode(prompt), n, generator=g, **kw))


def test_same_seed_same_text(tok):
    m = tiny_model(tok)
    a = _gen(m, "To be", 50, seed=3)
    assert a == _gen(m, "To be", 50, seed=3)
    assert a != _gen(m, "To be", 50, seed=4)
    assert len(a) == 50 and 0 not in a                      # the unknown symbol is never written
    assert m.generate_text("To be", 50, seed=3) == tok.decode(a)


@pytest.mark.parametrize("kw", [dict(temperature=0), dict(temperature=1.0), dict(temperature=0.7, top_k=5),
                                dict(temperature=1.2, top_p=0.9, repetition_penalty=1.3)])
def test_kv_cache_matches_no_cache(tok, kw):
    m = tiny_model(tok, seed=1)       # block_size 32: 100 new tokens slide the window several times
    cached = _gen(m, EN[:40], 100, seed=7, use_cache=True, **kw)
    plain = _gen(m, EN[:40], 100, seed=7, use_cache=False, **kw)
    assert cached == plain


def test_temperature_zero_is_greedy(tok):
    m = tiny_model(tok, seed=2)
    ids = tok.encode("To be")
    out = _gen(m, "To be", 10, seed=0, temperature=0)
    assert out == _gen(m, "To be", 10, seed=123, temperature=0)      # the seed does not matter
    ctx = list(ids)
    for t in out:                                                    # each step is the argmax
        logits, _ = m(torch.tensor([ctx]))
        last = logits[0, -1].clone()
        last[0] = float("-inf")
        assert t == int(last.argmax())
        ctx.append(t)


def test_streaming_iterator_can_stop_early(tok):
    m = tiny_model(tok)
    it = m.generate(tok.encode("To"), 1000, generator=torch.Generator().manual_seed(0))
    first = [next(it) for _ in range(3)]
    it.close()
    assert len(first) == 3 and not m.training
    assert first == _gen(m, "To", 3, seed=0)
    assert list(m.generate([], 5, generator=torch.Generator().manual_seed(0)))   # empty prompt works


def test_top_k_and_top_p_filtering():
    logits = torch.tensor([3.0, 1.0, 2.0, 0.0, -1.0])
    k2 = filter_logits(logits, top_k=2)
    assert torch.isfinite(k2).tolist() == [True, False, True, False, False]
    # probabilities 0.6364, 0.0861, 0.2341, 0.0317, 0.0117: the smallest set reaching top_p is kept
    p = filter_logits(logits, top_p=0.5)           # the top token alone reaches 0.5
    assert torch.isfinite(p).tolist() == [True, False, False, False, False]
    p = filter_logits(logits, top_p=0.8)           # 0.636 + 0.234 reaches 0.8
    assert torch.isfinite(p).tolist() == [True, False, True, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.999)).sum() == 5
    for top_p, kept in [(0.636, [0]), (0.637, [0, 2]), (0.870, [0, 2]), (0.871, [0, 1, 2])]:   # at the edges
        assert torch.isfinite(filter_logits(logits, top_p=top_p)).nonzero().flatten().tolist() == kept, top_p
    g = torch.Generator().manual_seed(0)
    draws = {sample_next(logits, [], 1.0, top_k=2, generator=g) for _ in range(200)}
    assert draws == {0, 2}
    draws = {sample_next(logits, [], 5.0, generator=g) for _ in range(300)}
    assert draws == {0, 1, 2, 3, 4}                  # high temperature reaches every token
    assert sample_next(logits, [0], 0, repetition_penalty=10.0) == 2   # the penalty demotes token 0


def test_save_load_round_trip_with_tokenizer(tok, tmp_path):
    m = tiny_model(tok, seed=5)
    ckpt.save_pretrained(m, tmp_path / "lm", meta={"dataset": "toy"})
    assert json.loads((tmp_path / "lm" / "tokenizer.json").read_text(encoding="utf-8"))["chars"] == tok.chars
    back = ckpt.from_pretrained(tmp_path / "lm")
    assert isinstance(back, CharLM) and back.tokenizer == tok
    x = torch.tensor([tok.encode(EN[:30])])
    assert torch.equal(back(x)[0], m(x)[0])
    assert _gen(back, "To", 20, seed=1) == _gen(m, "To", 20, seed=1)
    # a tokenizer of the wrong size is refused; so is a missing one
    bad = CharTokenizer.from_text("abc").to_json()
    (tmp_path / "lm" / "tokenizer.json").write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(ckpt.CheckpointError, match="vocab_size"):
        ckpt.from_pretrained(tmp_path / "lm")
    (tmp_path / "lm" / "tokenizer.json").unlink()
    with pytest.raises(ckpt.CheckpointError, match="tokenizer.json"):
        ckpt.from_pretrained(tmp_path / "lm")


def test_bits_per_char_of_tiny_text(tok):
    m = tiny_model(tok)
    ids = tok.encode(EN * 4)                               # 340 chars, block 32: many windows
    total, count = m.nll(ids)
    assert count == len(ids) - 1                           # every character after the first, once
    npc = m.nats_per_char(ids)
    assert math.isfinite(npc) and abs(npc - math.log(tok.vocab_size)) < 0.5
    assert m.bits_per_char(ids) == pytest.approx(npc / math.log(2))
    assert m.nll(ids, stride=32)[1] == len(ids) - 1        # non-overlapping windows: same count
    assert m.nll(ids[:10])[1] == 9                         # shorter than a window
    sub_total, sub_count = m.nll(ids, max_windows=3)
    assert 0 < sub_count < count and math.isfinite(sub_total)
    # a text that fits one window: the plain mean cross-entropy of forward()
    short = torch.tensor([ids[:33]])
    _, loss = m(short[:, :-1], short[:, 1:])
    assert m.nats_per_char(ids[:33]) == pytest.approx(loss.item(), rel=1e-5)
    assert m.nll(EN * 4)[1] == count                      # a string is encoded with the tokenizer


# -- training through the loop -----------------------------------------------------------------------
def test_three_step_training_run(tmp_path):
    out = tmp_path / "run"
    model_dir = train(TrainOptions(model="char-lm", data="shakespeare", tiny=True, max_steps=3, batch_size=8,
                                   out=str(out), log_every=1, sample_every=3, eval_every=3, progress=False))
    assert (model_dir / "tokenizer.json").is_file() and (model_dir / "model.safetensors").is_file()
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    assert cfg["kind"] == "char-lm" and cfg["modality"] == "text" and cfg["dataset"] == "shakespeare"
    assert cfg["tokenizer"] == "tokenizer.json" and cfg["text_stats"]["held_out"] == list(SHAKESPEARE_HELD_OUT)
    stats = [json.loads(ln) for ln in (out / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2, 3]
    assert math.isfinite(stats[-1]["nats_per_char"]) and all(math.isfinite(s["loss"]) for s in stats)
    preview = (out / "samples" / "step-0000003.txt").read_text(encoding="utf-8")
    assert "seed 0" in preview and len(preview) > 100
    m = ckpt.from_pretrained(model_dir)
    assert m.generate_text("ROMEO.", 10, seed=0)


def test_training_lowers_the_loss(tmp_path):
    out = tmp_path / "run"
    train(TrainOptions(model="char-lm", data="shakespeare", tiny=True, max_steps=30, batch_size=16, lr=3e-3,
                       out=str(out), log_every=5, sample_every=1000, progress=False))
    stats = [json.loads(ln) for ln in (out / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["loss"] < stats[0]["loss"] - 0.5


def test_bf16_cpu_training_step(tmp_path):
    """The cpu preset trains under bf16 autocast (attention then runs in fp32 on the CPU)."""
    out = tmp_path / "run"
    train(TrainOptions(model="char-lm", data="shakespeare", tiny=True, max_steps=2, batch_size=8,
                       precision="bf16", out=str(out), log_every=1, sample_every=1000, progress=False))
    stats = [json.loads(ln) for ln in (out / "stats.jsonl").read_text().splitlines()]
    assert all(math.isfinite(s["loss"]) for s in stats)
    m = build("char-lm", tiny=True, vocab_size=20).eval()
    x = torch.randint(0, 20, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = m(x)
    assert torch.allclose(low.float(), m(x)[0], atol=0.05)
