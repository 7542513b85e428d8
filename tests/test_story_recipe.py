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
from aigc.finetune.textrecipe import (LIKE_MIN_CHARS, RehearsalData, heldout_span_bounds, layers_to_freeze,
                                      paragraph_scores, paragraphs_like, rehearsal_corpus, split_heldout_spans)
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


NIGHT = "月光洒在窗前，老人坐在院子里，猫轻轻地走过石板路，风吹动了门上的铁环。"
SHOP = "快递很快，价格便宜，质量不错，包装完好，客服态度好，下次还会再买。"


def _mixed_corpus(tok):
    """Paragraphs of two registers, interleaved, and some too short to judge."""
    paras = []
    for i in range(60):
        paras.append(f"{i:02d}" + (NIGHT if i % 2 else SHOP) * 2)
        if i % 10 == 0:
            paras.append(NIGHT[:10])                        # night-like but under LIKE_MIN_CHARS
    return TextData(name="mixed", text="".join(p + "\n" for p in paras), tokenizer=tok, block_size=16), paras


def test_rehearsal_keeps_the_paragraphs_most_like_the_story():
    tok = CharTokenizer.from_text(NIGHT + SHOP + "0123456789\n")
    corpus, paras = _mixed_corpus(tok)
    story = NIGHT[5:] + NIGHT[:5] + "老人笑了。"             # the story's register; one character the corpus lacks
    like, info = paragraphs_like(story, corpus, chars=400)
    kept = like.text.splitlines()
    assert kept and all(NIGHT in p for p in kept)             # only the night register
    assert info["chars"] == len(like.text) >= 400 and info["paragraphs"] == len(kept) < 30
    assert [p for p in paras if p in kept] == kept            # in corpus order
    assert all(len(p) >= LIKE_MIN_CHARS for p in kept)        # short paragraphs are passed over
    assert like.tokenizer is tok and like.block_size == 16 and like.split == "train"
    shop, _ = paragraphs_like(SHOP * 3, corpus, chars=400)
    assert all(SHOP in p for p in shop.text.splitlines())     # the other story, the other register
    everything, info = paragraphs_like(story, corpus, chars=10 ** 6)
    assert info["paragraphs"] == 60                           # all that can be judged, and no more
    scores = paragraph_scores(torch.tensor(tok.encode(story)), corpus.ids, [len(p) + 1 for p in paras],
                              tok.vocab_size)
    assert torch.isfinite(scores).all() and scores.shape == (len(paras),)
    night = torch.tensor([NIGHT in p for p in paras])
    shop = torch.tensor([SHOP in p for p in paras])
    assert scores[night].min() > scores[shop].max()           # every night paragraph above every shop one


def test_rehearsal_paragraphs_are_parted_by_blank_lines_where_a_corpus_has_them():
    """Poems (short lines, a blank line after each) are judged whole; a corpus of short lines only gives
    nothing to choose from, said in words (the caller then rehearses the whole corpus)."""
    tok = CharTokenizer.from_text(NIGHT + SHOP + "0123456789\n，。")
    poems = [((NIGHT if i % 2 else SHOP) * 2).replace("，", "，\n") for i in range(40)]
    corpus = TextData(name="poems", text="\n\n".join(poems) + "\n", tokenizer=tok, block_size=16)
    like, info = paragraphs_like(NIGHT, corpus, chars=200)
    assert info["of"] == 40 and info["paragraphs"] == 3      # whole poems: 3 x 76 characters reach 200
    assert all(p.strip() in [q.strip() for q in poems if NIGHT[:4] in q] for p in like.text.split("\n\n") if p.strip())
    lines = TextData(name="lines", text="短短的一行。\n" * 50, tokenizer=tok, block_size=16)
    none, why = paragraphs_like(NIGHT, lines, chars=200)
    assert none is None and f"no paragraph of {LIKE_MIN_CHARS} characters" in why


def test_rehearsal_is_chosen_by_the_training_text_only(tmp_path, monkeypatch):
    """The held-out spans of the upload must not choose what it rehearses: the selection sees data.text."""
    import aigc.finetune.run as run
    import aigc.finetune.textrecipe as recipe
    tok = CharTokenizer.from_text(NIGHT + SHOP + "0123456789\n")
    corpus, _ = _mixed_corpus(tok)
    seen = []
    monkeypatch.setattr(recipe, "rehearsal_corpus", lambda *a, **k: (corpus, None))
    real = recipe.paragraphs_like
    monkeypatch.setattr(recipe, "paragraphs_like", lambda sample, c, chars: seen.append(sample) or real(sample, c, chars))
    story = TextData(name="upload:s", text=NIGHT * 4, tokenizer=tok, block_size=16)
    report, rec = {}, {"rehearsal": 0.5, "rehearsal_like": 300}
    data, what = recipe.with_rehearsal(story, run.Base("b", "char-lm", tmp_path, {"dataset": "zh-modern"}), rec, report)
    assert seen == [story.text] and isinstance(data, RehearsalData)
    assert all(NIGHT in p for p in data.corpus.text.splitlines())
    assert "most like the upload" in what and report["rehearsal_selected"]["chars"] >= 300
    assert NIGHT[:20] in report["rehearsal_selected"]["nearest"]
    rec["rehearsal_like"] = 0                                 # 0: the whole corpus, at random
    data, what = recipe.with_rehearsal(story, run.Base("b", "char-lm", tmp_path, {"dataset": "zh-modern"}), rec, {})
    assert data.corpus is corpus and "most like" not in what and len(seen) == 1
    short = TextData(name="lines", text="短短的一行。\n" * 50, tokenizer=tok, block_size=16)
    monkeypatch.setattr(recipe, "rehearsal_corpus", lambda *a, **k: (short, None))
    rec["rehearsal_like"], report = 300, {}
    data, what = recipe.with_rehearsal(story, run.Base("b", "char-lm", tmp_path, {"dataset": "zh-modern"}), rec, report)
    assert data.corpus is short and "rehearsal from the whole corpus: no paragraph" in report["rehearsal_note"]


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
    from aigc.finetune.textrecipe import heldout_split
    assert len(heldout_split("line of text\n" * 100_000, 32)[1]) < 51_000  # the 50,000-character cap, as the tail's
    events = []
    finetune(FinetuneSpec(base=str(base_dir), data=_story(tmp_path), out=tmp_path / "run", steps=1, batch_size=4,
                          progress=False, rehearsal=0.5), on_progress=events.append)
    text = "\n".join(e.get("text", "") for e in events)
    assert "in 4 spans spread over the text" in text and "recipe: learning rate" in text
    assert "rehearsal off: the base's corpus (unrecorded)" in text    # this base records no built-in corpus
    from aigc.data.uploads import format_report                       # the tab's job details: the same lines
    assert format_report(json.loads((tmp_path / "run" / "report.json").read_text())) in text
    cfg = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert cfg["text_stats"]["chars"] == len(train)


def test_cli_recipe_flags_checked(base_dir, tmp_path, capsys):
    from aigc.cli import main
    args = ["finetune", str(base_dir), "--data", str(_story(tmp_path)), "--out", str(tmp_path / "r")]
    assert main(args + ["--dropout", "1"]) == 2 and "dropout must be at least 0 and below 1" in capsys.readouterr().err
    assert main(args + ["--rehearsal", "-0.1"]) == 2 and "the rehearsal share must be" in capsys.readouterr().err
    assert main(args + ["--rehearsal-like", "-1"]) == 2 and "rehearsal kept must be between 0" in capsys.readouterr().err
    for flags in (["--steps", "0"], ["--batch-size", "0"], ["--max-minutes", "-1"]):
        assert main(args + flags) == 2 and "must be" in capsys.readouterr().err
    assert main(args + ["--train-layers", "middle"]) == 2 and "train layers must be" in capsys.readouterr().err


def test_a_long_upload_trains_as_any_model_does(tmp_path):
    """The short-story recipe (low rate, dropout, rehearsal) is for uploads under SMALL_CORPUS_CHARS; a longer
    one on a saved base keeps the model's own rate and dropout and rehearses nothing, unless asked."""
    from aigc.data.uploads.text import SMALL_CORPUS_CHARS
    from aigc.finetune.run import Base
    from aigc.finetune.textrecipe import TEXT_FINETUNE_LR, TEXT_FINETUNE_REHEARSAL, recipe_line, text_recipe
    saved, scratch = Base("b", "char-lm", tmp_path, {}), Base("char-lm", "char-lm")
    spec = FinetuneSpec(base="b", data="x.txt", out=tmp_path / "r")
    short = text_recipe(spec, saved, SMALL_CORPUS_CHARS - 1)
    assert short["short_text"] and short["lr"] == TEXT_FINETUNE_LR and short["rehearsal"] == TEXT_FINETUNE_REHEARSAL
    assert "the short-text recipe" in recipe_line(short)
    long = text_recipe(spec, saved, SMALL_CORPUS_CHARS)
    assert not long["short_text"] and long["lr"] is None and long["dropout"] is None and long["rehearsal"] == 0.0
    assert "learning rate the model's default" in recipe_line(long) and "short-text" not in recipe_line(long)
    asked = text_recipe(FinetuneSpec(base="b", data="x.txt", out=tmp_path / "r", lr=3e-4, rehearsal=0.5, dropout=0.2),
                        saved, 10 ** 6)
    assert (asked["lr"], asked["rehearsal"], asked["dropout"]) == (3e-4, 0.5, 0.2)
    assert text_recipe(FinetuneSpec(base="b", data="x.txt", out=tmp_path / "r", rehearsal=0.5), scratch, 10)["rehearsal"] == 0
