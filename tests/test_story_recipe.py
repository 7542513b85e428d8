"""The text fine-tune's recipe: dropout while fine-tuning only, frozen layers that stay as they were,
rehearsal batches from the base's TRAINING paragraphs only, and held-out spans never trained on."""
import gzip
import json

import pytest
import torch

from aigc.checkpoint import from_pretrained, save_pretrained
from aigc.data.text import TextData
from aigc.data.zh import ZH_FILES, held_out
from aigc.finetune.run import FinetuneSpec, finetune
from aigc.finetune.textrecipe import (RehearsalData, heldout_span_bounds, layers_to_freeze, rehearsal_corpus,
                                      split_heldout_spans)
from aigc.kinds import build
from aigc.text.tokenizer import CharTokenizer
from aigc.train import adapt
from aigc.train.rng import StepRNG

LINES = [f"Line {i:02d}: the cat {'sat' if i % 2 else 'ran'} by window {i} and watched the moon rise.\n"
         for i in range(40)]
STORY = "".join(LINES)


def tiny_lm(text: str = STORY):
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    return build("char-lm", tiny=True, vocab_size=tok.vocab_size, dropout=0.0).set_tokenizer(tok)


@pytest.fixture
def base_dir(tmp_path):
    return save_pretrained(tiny_lm(), tmp_path / "base")


def _story(tmp_path):
    (tmp_path / "story.txt").write_text(STORY, encoding="utf-8")
    return tmp_path / "story.txt"


def test_dropout_is_for_the_fine_tune_only(base_dir, tmp_path):
    lm = tiny_lm()
    assert adapt.set_dropout(lm, 0.5) > 0 and lm.config.dropout == 0.0
    ids = torch.tensor([lm.tokenizer.encode(STORY[:20])])
    lm.train()
    assert not torch.equal(lm(ids)[0], lm(ids)[0])            # active while training
    lm.eval()
    assert torch.equal(lm(ids)[0], lm(ids)[0])                # off when measuring or sampling
    path = finetune(FinetuneSpec(base=str(base_dir), data=_story(tmp_path), out=tmp_path / "run", steps=2,
                                 batch_size=4, eval_every=1, progress=False, dropout=0.2))
    opts = json.loads((tmp_path / "run" / "options.json").read_text())
    assert opts["dropout"] == 0.2
    assert json.loads((path / "config.json").read_text())["config"]["dropout"] == 0.0   # the base's, saved
    assert from_pretrained(path).blocks[0].attn.dropout == 0.0
    assert "dropout 0.2 (while fine-tuning only)" in (path / "README.md").read_text()
    with pytest.raises(ValueError, match="dropout must be at least 0 and below 1"):
        finetune(FinetuneSpec(base=str(base_dir), data=_story(tmp_path), out=tmp_path / "r2", dropout=1.0))


def test_frozen_layers_do_not_change(base_dir, tmp_path):
    n_layer = from_pretrained(base_dir).config.n_layer
    assert layers_to_freeze("all", n_layer) == ""
    assert layers_to_freeze("top-1", 3) == "tok_emb,pos_emb,blocks.0,blocks.1"
    for bad in ("top-0", f"top-{n_layer + 1}", "middle"):
        with pytest.raises(ValueError, match="train layers"):
            layers_to_freeze(bad, n_layer)
    path = finetune(FinetuneSpec(base=str(base_dir), data=_story(tmp_path), out=tmp_path / "run", steps=3,
                                 batch_size=4, eval_every=0, progress=False, lr=1e-2, train_layers="top-1"))
    before, after = from_pretrained(base_dir).state_dict(), from_pretrained(path).state_dict()
    top = f"blocks.{n_layer - 1}."
    for name, w in before.items():
        moved = not torch.equal(w, after[name])
        assert moved == (name.startswith(top) or name.startswith("ln_f")) or "ln" in name and not moved, name
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith(top))
    with pytest.raises(ValueError, match="no parameter"):
        adapt.freeze(tiny_lm(), "decoder")


def _corpus_dir(tmp_path):
    """A zh-modern look-alike: paragraphs of which some are held out (by content, as char-zh's are)."""
    paras = [f"〔{i:03d}〕今天天气很好，{'我们' if i % 3 else '他们'}去公园。〔{i:03d}〕" for i in range(400)]
    held = [p for p in paras if held_out(p)]
    assert 5 <= len(held) < len(paras) // 2
    root = tmp_path / "corpus"
    root.mkdir()
    for name, part in zip(ZH_FILES, (paras[:200], paras[200:])):
        with gzip.open(root / name, "wt", encoding="utf-8") as f:
            f.write("\n".join(part) + "\n")
    return root, paras, held


def test_rehearsal_draws_only_training_paragraphs(tmp_path):
    root, paras, held = _corpus_dir(tmp_path)
    tok = CharTokenizer.from_text("".join(paras) + "\n" + STORY)
    corpus, why = rehearsal_corpus("zh-modern", tok, 32, data_dir=root)
    assert why is None and corpus.split == "train"
    assert not any(p in corpus.text for p in held) and all(p in corpus.text for p in paras if not held_out(p))
    story = TextData(name="upload:s", text=STORY, tokenizer=tok, block_size=32)
    data = RehearsalData(story, corpus, 0.5)
    assert len(data) == len(story) and data.tokenizer is tok and data.stats()["rehearsal"]["share"] == 0.5
    src = data.source("cpu")
    for step in range(50):
        x, y = src.get(torch.arange(8), StepRNG(0, step, "cpu"))
        assert x.shape == (8, 32) and torch.equal(x[:, 1:], y[:, :-1])
        for row in x[4:]:                        # the rehearsal half: the corpus's training text only
            text = tok.decode(row.tolist())
            assert text in corpus.text and not any(p[:5] in text for p in held)   # markers: 32 chars hold one
        assert all(tok.decode(r.tolist()) in STORY for r in x[:4])
    assert rehearsal_corpus("no-such-set", tok, 32)[0] is None
    assert "not available" in rehearsal_corpus("zh-modern", tok, 32, data_dir=tmp_path / "nowhere")[1]


def test_heldout_spans_are_never_trained_on(base_dir, tmp_path):
    bounds = heldout_span_bounds(STORY, 32, 0.15, 4)
    assert len(bounds) == 4 and all(e - s >= 34 for s, e in bounds)
    assert all(b[1] <= c[0] for b, c in zip(bounds, bounds[1:]))          # in order, apart
    assert bounds[0][0] > 0 and bounds[-1][1] < len(STORY)                # from several places, not the tail
    train, held, note = split_heldout_spans(STORY, 32, 0.15, 4)
    assert len(train) + len(held) == len(STORY) and "4 spans" in note
    held_lines = [ln for ln in LINES if ln in held]
    assert held_lines and not any(ln in train for ln in held_lines)
    assert split_heldout_spans(STORY[:300], 32, 0.15, 4) is None           # too short: the caller uses the tail
    long_text = STORY * 40                                                  # a long upload keeps ~max_chars out
    _, capped, _ = split_heldout_spans(long_text, 32, 0.15, 4, max_chars=2_000)
    assert 2_000 <= len(capped) <= 2_500 < 0.15 * len(long_text)          # each span may run on to a line break
    from aigc.finetune.run import heldout_split
    assert len(heldout_split("line of text\n" * 100_000, 32)[1]) < 51_000  # the 50,000-character cap, as the tail's
    events = []
    finetune(FinetuneSpec(base=str(base_dir), data=_story(tmp_path), out=tmp_path / "run", steps=1, batch_size=4,
                          progress=False, rehearsal=0.5), on_progress=events.append)
    text = "\n".join(e.get("text", "") for e in events)
    assert "in 4 spans spread over the text" in text and "recipe: learning rate" in text
    assert "rehearsal off: the base's corpus (unrecorded)" in text    # this base records no built-in corpus
    cfg = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert cfg["text_stats"]["chars"] == len(train)


def test_cli_recipe_flags_checked(base_dir, tmp_path, capsys):
    from aigc.cli import main
    args = ["finetune", str(base_dir), "--data", str(_story(tmp_path)), "--out", str(tmp_path / "r")]
    assert main(args + ["--dropout", "1"]) == 2 and "--dropout must be at least 0" in capsys.readouterr().err
    assert main(args + ["--rehearsal", "-0.1"]) == 2 and "--rehearsal must be" in capsys.readouterr().err
    assert main(args + ["--train-layers", "middle"]) == 2 and "train layers must be" in capsys.readouterr().err
