"""Fine-tuning a char-lm on one short story: new characters added, the best held-out checkpoint kept,
the text copy rate tracked, and the notes for text that does not suit the base."""
import json

import pytest
import torch

from aigc.checkpoint import from_pretrained, save_pretrained
from aigc.eval.textcopy import TextCopyMeter, copied_share, spans, story_prompts
from aigc.finetune.run import FinetuneSpec, finetune
from aigc.kinds import build
from aigc.text.tokenizer import CharTokenizer

pytestmark = pytest.mark.slow          # training runs and worker processes: the full tier (make test)

ENGLISH = ("The cat sat by the window at night and watched the moon. It was quiet, and the street below "
           "was empty; only the wind moved the leaves.\n")


def tiny_lm(text: str):
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    return build("char-lm", tiny=True, vocab_size=tok.vocab_size).set_tokenizer(tok)


@pytest.fixture
def base_dir(tmp_path):
    return save_pretrained(tiny_lm(ENGLISH), tmp_path / "base")


def test_tokenizer_extended_keeps_old_ids():
    tok = CharTokenizer.from_text("abc")
    grown = tok.extended("cab月z\ufffd")
    assert grown.chars[:tok.vocab_size] == tok.chars and grown.chars[tok.vocab_size:] == ["z", "月"]
    assert grown.extends(tok) and not tok.extends(grown) and tok.extended("ab") is tok


def test_grow_vocab_keeps_old_logits():
    lm = tiny_lm(ENGLISH).eval()
    ids = torch.tensor([lm.tokenizer.encode("The cat sat")])
    before, _ = lm(ids)
    old = lm.tokenizer
    added = lm.grow_vocab(old.extended("猫月光é"))
    after, _ = lm(ids)
    assert added == 4 and lm.config.vocab_size == old.vocab_size + 4
    assert torch.allclose(after[..., :old.vocab_size], before, atol=1e-6)   # old characters' logits unchanged
    mean = lm.tok_emb.weight[:old.vocab_size].mean(0)
    assert torch.allclose(lm.tok_emb.weight[-1], mean)
    assert (after[0, -1, old.vocab_size:] < after[0, -1, :old.vocab_size].max()).all()   # not predicted at once
    with pytest.raises(ValueError, match="first symbols"):
        lm.grow_vocab(CharTokenizer.from_text("xyz"))


def test_copy_rate():
    ref = spans("abcdefghijklmnopqrstuvwxyz")
    assert copied_share(["abcdefghijklmn"], ref) == (1.0, 3)
    assert copied_share(["ABCDEFGHIJKLmn"], ref) == (0.0, 3)
    assert copied_share(["short"], ref) == (0.0, 0)
    assert story_prompts("one line\ntwo lines\nthree lines\nfour lines\n", k=2, length=4) == ["one ", "four"]
    res = TextCopyMeter(ENGLISH * 3, samples=2, length=20)(tiny_lm(ENGLISH))
    assert 0 <= res["text_copy_rate"] <= 1 and res["text_copy_spans"] == 2 * 9


def test_finetune_adds_characters_and_keeps_the_best(base_dir, tmp_path):
    story = (ENGLISH + "猫在窗前，月光洒在地上。Café — «naïve»!\n") * 6
    (tmp_path / "story.txt").write_text(story, encoding="utf-8")
    events = []
    # lr 1 wrecks the model: the start is the best held-out score, kept; patience 1 stops it early
    spec = FinetuneSpec(base=str(base_dir), data=tmp_path / "story.txt", out=tmp_path / "run", steps=40,
                        batch_size=4, eval_every=1, progress=False, lr=1.0, patience=1)
    path = finetune(spec, on_progress=events.append)
    text = "\n".join(e.get("text", "") for e in events)
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["added_chars"] == len(set(story) - set(ENGLISH)) and f"added {report['added_chars']} characters" in text
    lm = from_pretrained(path)
    assert lm.tokenizer.count_unknown(story) == 0 and lm.config.vocab_size == report["vocab_size"]
    assert json.loads((path / "config.json").read_text())["config"]["vocab_size"] == report["vocab_size"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stopped_early"] and summary["best"]["step"] == 0 and summary["steps"] == 1
    assert "kept the weights of step 0" in text and "stopped early" in text
    stats = [json.loads(ln) for ln in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    rows = [r for r in stats if "nats_per_char" in r]
    assert all("text_copy_rate" in r for r in rows) and rows[0]["step"] == 0
    metrics = json.loads((path / "metrics.json").read_text())
    assert metrics["measured_at_step"] == 0 and metrics["nats_per_char"] == pytest.approx(rows[0]["nats_per_char"], rel=1e-5)
    assert "text_copy_rate" in metrics and metrics["at_last_step"]["step"] == 1
    card = (path / "README.md").read_text()
    assert "Text copy rate" in card and "step 0" in card
    base = from_pretrained(base_dir)      # the old characters' weights are the base's (step 0 kept)
    assert torch.equal(lm.tok_emb.weight[:base.config.vocab_size], base.tok_emb.weight)


def test_script_note_and_short_text(base_dir, tmp_path):
    (tmp_path / "zh.txt").write_text("猫在窗前，月光洒在地上，风吹过树叶，街上很安静。我们站着看。\n" * 20, encoding="utf-8")
    events = []
    finetune(FinetuneSpec(base=str(base_dir), data=tmp_path / "zh.txt", out=tmp_path / "run", steps=1,
                          batch_size=2, progress=False), on_progress=events.append)
    text = "\n".join(e.get("text", "") for e in events)
    assert "different script: this text is mostly Cjk" in text or "mostly CJK" in text.upper()
    (tmp_path / "short.txt").write_text("A short note about the cat.", encoding="utf-8")
    with pytest.raises(ValueError, match="too short; a text upload needs at least 500 characters"):
        finetune(FinetuneSpec(base=str(base_dir), data=tmp_path / "short.txt", out=tmp_path / "r2", steps=1))


def test_cli_flags_checked(base_dir, tmp_path, capsys):
    from aigc.cli import main
    (tmp_path / "s.txt").write_text(ENGLISH * 6, encoding="utf-8")
    args = ["finetune", str(base_dir), "--data", str(tmp_path / "s.txt"), "--out", str(tmp_path / "r")]
    assert main(args + ["--lr", "0"]) == 2 and "the learning rate must be more than 0" in capsys.readouterr().err
    assert main(args + ["--patience", "-1"]) == 2 and "patience must be between 0 and" in capsys.readouterr().err
