"""The sentence VAE: model, training through the loop, checkpoints, the pipeline the Text tab
uses, and the CLI. Fast: a tiny model on a handful of lines, and the shipped textvae-tang."""
import io
import json
import os
import pickle
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from aigc import checkpoint as ckpt
from aigc.cli.commands import main
from aigc.data.lines import LineData, encode_lines, poem_clauses
from aigc.kinds import build
from aigc.text.tokenizer import CharTokenizer
from aigc.pipelines.textvae import TextVAEPipeline, well_formed
from aigc.train.loop import TrainOptions, train

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "weights" / "textvae-tang"
LINES = ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡", "白日依山尽", "黄河入海流",
         "欲穷千里目", "更上一层楼", "两个黄鹂鸣翠柳", "一行白鹭上青天", "窗含西岭千秋雪", "门泊东吴万里船"]


def _toy_data():
    tok = CharTokenizer.from_text("".join(LINES))
    return LineData("toy-lines", LINES, tok, val_lines=LINES[:4])


def _cli(args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(args)
    return rc, out.getvalue(), err.getvalue()


# -- data --------------------------------------------------------------------------------------------
def test_poem_clauses_take_body_clauses_of_5_or_7_hanzi():
    text = "【五言绝句】静夜思\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n\n【杂言】x\n一二三四，甲乙丙丁戊己庚。\n\n"
    assert poem_clauses(text) == ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡", "甲乙丙丁戊己庚"]
    ids, lengths = encode_lines(["床前明月光", "两个黄鹂鸣翠柳"], CharTokenizer.from_text("床前明月光两个黄鹂鸣翠柳"))
    assert ids.shape == (2, 7) and lengths.tolist() == [5, 7] and (ids[0, 5:] == -1).all()


# -- model and training ------------------------------------------------------------------------------
def test_tiny_text_vae_trains_through_the_loop_and_its_loss_falls(tmp_path, one_thread):
    data = _toy_data()
    path = train(TrainOptions(model="text-vae", data=data.name, out=str(tmp_path / "run"), max_steps=40,
                              batch_size=12, tiny=True, lr=1e-2, log_every=5, sample_every=1000,
                              eval_every=40, progress=False, config={"word_dropout": 0.0}), data=data)
    stats = [json.loads(ln) for ln in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["rec"] < 0.8 * stats[0]["rec"], stats
    assert "nll_per_line" in stats[-1] and stats[-1]["beta"] == 1.0
    m = ckpt.from_pretrained(path)
    assert m.kind == "text-vae" and m.tokenizer == data.tokenizer
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in path.iterdir()}
    # the saved model decodes the same ids as the trained one
    z = torch.randn(3, m.latent_dim, generator=torch.Generator().manual_seed(0))
    again = ckpt.from_pretrained(path)
    assert torch.equal(m.decode(z), again.decode(z))


def test_loss_terms_and_guards():
    torch.manual_seed(0)
    tok = CharTokenizer.from_text("".join(LINES))
    m = build("text-vae", tiny=True, vocab_size=tok.vocab_size, free_bits=0.5, kl_anneal_steps=100).set_tokenizer(tok)
    ids, lengths = m.batch(LINES)
    eps = torch.zeros(len(LINES), m.latent_dim)
    out = m.loss(ids, lengths, step=50, eps=eps, keep=None)
    assert out["beta"] == 0.5
    # free bits: the KL term is at least latent_dim * free_bits however small the real KL is
    assert out["loss"].item() >= out["rec"].item() + 0.5 * m.latent_dim * 0.5 - 1e-4
    # decode: characters then EOS then PAD, never UNK/BOS/PAD before the end
    d = m.decode(torch.randn(5, m.latent_dim), greedy=False, temperature=1.0,
                 generator=torch.Generator().manual_seed(1))
    assert d.shape == (5, m.config.block_size)
    for row in d.tolist():
        body = row[:row.index(m.eos_id)] if m.eos_id in row else row
        assert all(1 <= i < tok.vocab_size for i in body)


def test_save_load_round_trip_and_pickle_refused(tmp_path):
    tok = CharTokenizer.from_text("".join(LINES))
    m = build("text-vae", tiny=True, vocab_size=tok.vocab_size).set_tokenizer(tok)
    d = ckpt.save_pretrained(m, tmp_path / "m")
    assert (d / "tokenizer.json").is_file()
    back = ckpt.from_pretrained(d)
    for k, v in m.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    assert back.tokenizer == tok
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    (d / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ckpt.CheckpointError, match="pickle"):
        ckpt.from_pretrained(d)
    assert not marker.exists()


# -- the shipped model -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    if not (SHIPPED / "config.json").is_file():
        pytest.fail("weights/textvae-tang is missing")
    return TextVAEPipeline.from_pretrained("textvae-tang")


def test_shipped_model_encodes_samples_and_interpolates(pipe):
    assert pipe.name == "textvae-tang"
    size = (SHIPPED / "model.safetensors").stat().st_size
    assert size < 12 << 20
    e = pipe.encode("床前明月光")
    assert e["line"] == "床前明月光" and len(e["mu"]) == pipe.model.latent_dim
    assert e["kl"] > 0 and e["unknown_chars"] == 0 and isinstance(e["reconstruction"], str)
    assert pipe.encode(" 床前明月光，")["mu"] == e["mu"]          # whitespace and punctuation stripped
    s = pipe.sample(n=6, seed=3)
    assert len(s) == 6 and all(isinstance(x, str) for x in s) and s == pipe.sample(n=6, seed=3)
    assert pipe.sample(n=4, seed=0, temperature=0) == pipe.sample(n=4, seed=0, temperature=0)
    for steps in (2, 8):
        path = pipe.interpolate("白日依山尽", "春风又绿江南岸", steps=steps)
        assert len(path) == steps and all(isinstance(x, str) and x for x in path)
        assert well_formed(path[0]) and well_formed(path[-1])
    assert pipe.decode(e["mu"]) == e["reconstruction"]


def test_shipped_directions_edit_and_diagnostics(pipe):
    dirs = pipe.directions()
    assert len(dirs) >= 2 and dirs[0]["name"] == "PC1"
    assert dirs[0]["variance"] >= dirs[1]["variance"] > 0
    line = "黄河入海流"
    assert pipe.edit(line, [0.0] * len(dirs))["line"] == pipe.encode(line)["reconstruction"]
    assert pipe.edit(line, [])["line"] == pipe.encode(line)["reconstruction"]
    moved = pipe.edit(line, [3.0, -3.0])
    assert moved["line"] != pipe.encode(line)["reconstruction"]          # the edit moved the line
    far = pipe.edit(line, [10.0, 10.0, 10.0])
    for out in (moved, far):                  # the flag is 5 or 7 CJK ideographs, checked here by hand
        by_hand = len(out["line"]) in (5, 7) and all("\u4e00" <= c <= "\u9fff" for c in out["line"])
        assert out["well_formed"] is by_hand
    assert {moved["well_formed"], far["well_formed"]} == {True, False}   # both answers occur
    diag = pipe.diagnostics()
    for k in ("kl_per_line", "active_units", "latent_dim", "recon_acc", "interp_well_formed", "nll_per_line"):
        assert k in diag, k
    assert diag["latent_dim"] == pipe.model.latent_dim


def test_well_formed():
    assert well_formed("床前明月光") and well_formed("两个黄鹂鸣翠柳")
    for bad in ("床前明月", "床前明月光光", "床前明月光，", "床前明\ufffd光", "abcde", "", None, 12345):
        assert not well_formed(bad)


@pytest.mark.parametrize("call, match", [
    (lambda p: p.encode(""), "empty"),
    (lambda p: p.encode(" ，。 "), "empty"),
    (lambda p: p.encode("床" * 65), "at most 64"),
    (lambda p: p.encode("hello world"), "none of the characters"),
    (lambda p: p.encode(12345), "must be text"),
    (lambda p: p.encode(None), "must be text"),
    (lambda p: p.interpolate("床前明月光", "黄河入海流", steps=1), "steps"),
    (lambda p: p.interpolate("床前明月光", "黄河入海流", steps=33), "steps"),
    (lambda p: p.interpolate("床前明月光", "", steps=8), "empty"),
    (lambda p: p.sample(n=0), "n must be"),
    (lambda p: p.sample(n=65), "n must be"),
    (lambda p: p.sample(n=2, seed=-1), "seed"),
    (lambda p: p.sample(n=2, temperature=-1), "temperature"),
    (lambda p: p.decode([0.0, 1.0]), "exactly"),
    (lambda p: p.decode([float("nan")] * p.model.latent_dim), "finite"),
    (lambda p: p.edit("床前明月光", [1.0] * 99), "at most"),
    (lambda p: p.edit("床前明月光", [float("inf")]), "finite"),
    (lambda p: p.edit("床前明月光", "abc"), "numbers"),
])
def test_bad_inputs_raise_clear_errors(pipe, call, match):
    with pytest.raises(ValueError, match=match):
        call(pipe)


def test_unknown_characters_are_counted_not_refused(pipe):
    e = pipe.encode("床前明月😀")
    assert e["unknown_chars"] == 1


# -- CLI ---------------------------------------------------------------------------------------------
def test_cli_sample_interpolate_and_errors(pipe):
    rc, out, _ = _cli(["sample", "textvae-tang", "--interpolate", "床前明月光", "黄河入海流", "--steps", "5", "--json"])
    assert rc == 0
    lines = json.loads(out)
    assert lines == pipe.interpolate("床前明月光", "黄河入海流", steps=5)
    rc, out, _ = _cli(["sample", "textvae-tang", "--n", "10", "--seed", "0", "--json"])
    assert rc == 0 and json.loads(out) == pipe.sample(n=10, seed=0)
    rc, out, _ = _cli(["sample", "textvae-tang", "--n", "3", "--seed", "1"])
    assert rc == 0 and out.splitlines() == pipe.sample(n=3, seed=1)
    for bad in (["--interpolate", "床前明月光", "", "--json"], ["--interpolate", "床前明月光", "黄河入海流", "--steps", "40"],
                ["--n", "0"], ["--n", "100"]):
        rc, out, err = _cli(["sample", "textvae-tang"] + bad)
        assert rc == 2 and out == "" and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_cli_eval_json(tmp_path, monkeypatch):
    from aigc.eval import text as text_eval
    lines = ["床前明月光", "疑是地上霜", "举头望明月", "低头思故乡", "白日依山尽", "黄河入海流"]
    monkeypatch.setattr(text_eval, "heldout_lines", lambda pipe, dataset=None: lines)   # no corpus load in a unit test
    # a copy, so that --save writes into the copy's metrics.json, not the shipped one
    d = tmp_path / "tv"
    d.mkdir()
    for p in SHIPPED.iterdir():
        (d / p.name).write_bytes(p.read_bytes())
    rc, out, _ = _cli(["eval", str(d), "--json", "--n", "6", "--save"])
    assert rc == 0
    res = json.loads(out)
    assert res["lines"] == 6 and res["interp_paths"] == 3 and 0 <= res["active_units"] <= res["latent_dim"]
    assert 0 <= res["interp_well_formed"] <= 1 and res["kl_per_line"] > 0
    assert json.loads((d / "metrics.json").read_text())["lines"] == 6
    rc, _, err = _cli(["eval", str(d), "--json", "--n", "1"])
    assert rc == 2 and err.startswith("error:")


def test_finetune_refuses_a_text_vae(tmp_path, capsys):
    """An upload cannot train a sentence VAE (it needs poem lines): a clear refusal, nothing written."""
    from aigc.cli.commands import main
    f = tmp_path / "lines.txt"
    f.write_text("床前明月光\n" * 200, encoding="utf-8")
    assert main(["finetune", "text-vae", "--data", str(f), "--out", str(tmp_path / "job"), "--steps", "1"]) == 2
    assert "fine-tuning supports" in capsys.readouterr().err
    assert not (tmp_path / "job").exists()
