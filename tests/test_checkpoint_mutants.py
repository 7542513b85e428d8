"""Checkpoint saving and loading (aigc/checkpoint.py, aigc/fileio.py) pinned exactly: the files a save
writes and keeps, the refusals on load and their messages, the weights hash, the lineage walk over
run folders, and the training state."""
import hashlib
import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from aigc import checkpoint as ckpt
from aigc import fileio
from aigc.kinds import build


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build("vae", tiny=True)


def _refused(call, pattern: str) -> str:
    """The CheckpointError `call()` raises; its whole message must match `pattern`."""
    with pytest.raises(ckpt.CheckpointError) as e:
        call()
    assert re.fullmatch(pattern, str(e.value), re.DOTALL), str(e.value)
    return str(e.value)


def _state(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


# -- save --------------------------------------------------------------------------------------------
def test_a_save_writes_the_documented_files(vae, tmp_path):
    d = tmp_path / "deep" / "er" / "m"                   # parent folders are made
    assert ckpt.save_pretrained(vae, d, meta={"dataset": "mnist", "note": "x"}) == d
    cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
    assert cfg["format"] == "aigc-model/1" and cfg["kind"] == "vae" and cfg["modality"] == "image"
    assert cfg["aigc_version"] == ckpt.__version__ and cfg["config"] == ckpt.config_dict(vae)
    assert cfg["dataset"] == "mnist" and cfg["note"] == "x"
    with safe_open(str(d / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "aigc-model/1", "kind": "vae"}
    assert json.loads((d / "metrics.json").read_text()) == {}
    assert (d / "README.md").read_text(encoding="utf-8") == (
        "# m\n\nKind: `vae`, dataset: `mnist`.\n\n## Metrics\n\nNot evaluated yet.\n")
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "config.json", "metrics.json", "model.safetensors"]


def test_a_new_save_keeps_the_card_and_metrics_unless_given(vae, tmp_path):
    d = tmp_path / "m"
    ckpt.save_pretrained(vae, d, metrics={"fid": 12.5, "is": 2})
    assert json.loads((d / "metrics.json").read_text()) == {"fid": 12.5, "is": 2}
    assert (d / "README.md").read_text() == "# m\n\nKind: `vae`, dataset: `?`.\n\n## Metrics\n\n- fid: 12.5\n- is: 2\n"
    ckpt.save_pretrained(vae, d, card="# hand-written\n")          # saving again into the same folder
    assert (d / "README.md").read_text() == "# hand-written\n"
    assert json.loads((d / "metrics.json").read_text()) == {"fid": 12.5, "is": 2}
    ckpt.save_pretrained(vae, d)
    assert (d / "README.md").read_text() == "# hand-written\n"
    assert json.loads((d / "metrics.json").read_text()) == {"fid": 12.5, "is": 2}
    ckpt.save_pretrained(vae, d, metrics={}, card="")                 # empty ones are written too
    assert json.loads((d / "metrics.json").read_text()) == {} and (d / "README.md").read_text() == ""


def test_default_card_text():
    assert ckpt.default_card("n", {"kind": "k", "dataset": "d"}, {"a": 1}) == (
        "# n\n\nKind: `k`, dataset: `d`.\n\n## Metrics\n\n- a: 1\n")


# -- load --------------------------------------------------------------------------------------------
def test_a_loaded_model_carries_its_meta_name_and_is_in_eval_mode(vae, tmp_path):
    ckpt.save_pretrained(vae.train(), tmp_path / "named", meta={"dataset": "mnist"})
    m = ckpt.from_pretrained(tmp_path / "named")
    assert m.name == "named" and not m.training
    assert m.meta == {"format": "aigc-model/1", "kind": "vae", "modality": "image",
                      "aigc_version": ckpt.__version__, "dataset": "mnist"}
    assert all(torch.equal(v, _state(vae)[k]) for k, v in m.state_dict().items())


def _saved(vae, tmp_path):
    d = tmp_path / "m"
    ckpt.save_pretrained(vae, d)
    return d


def test_missing_or_unexpected_tensors_are_refused_naming_three(vae, tmp_path):
    d = _saved(vae, tmp_path)
    full = _state(vae)
    names = sorted(full)
    assert len(names) >= 4
    save_file({k: v for k, v in full.items() if k != names[0]}, str(d / "model.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match=rf"missing \['{names[0]}'\], unexpected \[\]"):
        ckpt.from_pretrained(d)
    save_file({**full, "zz.extra": torch.zeros(1)}, str(d / "model.safetensors"))
    with pytest.raises(ckpt.CheckpointError, match=r"missing \[\], unexpected \['zz.extra'\]"):
        ckpt.from_pretrained(d)
    save_file({f"x{i}": torch.zeros(1) for i in range(5)}, str(d / "model.safetensors"))
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.from_pretrained(d)
    assert str(e.value) == (f"{d}: weights do not match the config "
                            f"(missing {names[:3]}, unexpected ['x0', 'x1', 'x2'])")


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_weights_are_refused(vae, tmp_path, value):
    d = _saved(vae, tmp_path)
    sd = _state(vae)
    name = sorted(k for k, v in sd.items() if v.is_floating_point())[-1]
    sd[name].view(-1)[-1] = value
    save_file(sd, str(d / "model.safetensors"))
    _refused(lambda: ckpt.from_pretrained(d), re.escape(f"{d}: tensor {name} holds NaN or infinite values"))


def test_a_wrong_shape_names_the_tensor_and_both_shapes(vae, tmp_path):
    d = _saved(vae, tmp_path)
    save_file(_state(build("vae", tiny=True, latent_dim=6)), str(d / "model.safetensors"))
    msg = _refused(lambda: ckpt.from_pretrained(d), re.escape(str(d)) + r": tensor \S+ has shape \(.+\), config needs \(.+\)")
    name, got, need = re.fullmatch(r".*: tensor (\S+) has shape (\(.+\)), config needs (\(.+\))", msg).groups()
    assert got != need and need == str(tuple(vae.state_dict()[name].shape))


def test_a_bad_config_is_one_clear_error(vae, tmp_path):
    d = _saved(vae, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    for bad in ({**cfg, "kind": "no-such-kind"}, {**cfg, "config": {**cfg["config"], "no_such_field": 1}}):
        (d / "config.json").write_text(json.dumps(bad))
        _refused(lambda: ckpt.from_pretrained(d), re.escape(str(d)) + r": bad config \(.+\)")


def test_a_torch_zip_checkpoint_is_named_as_a_pickle(tmp_path):
    p = tmp_path / "w.safetensors"
    torch.save({"w": torch.zeros(2)}, p)
    _refused(lambda: ckpt.load_weights(p), re.escape(f"{p}: this is a pickled torch checkpoint, not safetensors; "
                                                     "refusing to unpickle it"))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_binary_pickle_is_named_as_such(tmp_path, protocol):
    p = tmp_path / "w.safetensors"
    p.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=protocol))
    with pytest.raises(ckpt.CheckpointError) as e:
        ckpt.load_weights(p)
    assert str(e.value) == (f"{p}: this is a pickled torch checkpoint, not safetensors; "
                            "refusing to unpickle it")


@pytest.mark.parametrize("head", [b"P", b"\x80", b"\x80\x01junk", b"PX", b"junkjunk", b"(lp0\nI1\na."])
def test_other_unreadable_files_are_not_called_pickles(tmp_path, head):
    p = tmp_path / "w.safetensors"
    p.write_bytes(head)
    msg = _refused(lambda: ckpt.load_weights(p), re.escape(str(p)) + r": not a readable safetensors file \(.+\)")
    assert "pickle" not in msg


def test_missing_weights(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match=r"w.safetensors: missing$"):
        ckpt.load_weights(tmp_path / "w.safetensors")
    (tmp_path / "w.safetensors").mkdir()
    with pytest.raises(ckpt.CheckpointError, match="missing"):
        ckpt.load_weights(tmp_path / "w.safetensors")


def test_weights_hash_is_the_sha256_prefix_of_the_whole_file(tmp_path):
    data = os.urandom((1 << 20) + 12345)          # more than one read block
    (tmp_path / "model.safetensors").write_bytes(data)
    assert ckpt.weights_hash(tmp_path) == hashlib.sha256(data).hexdigest()[:16]


# -- lineage -----------------------------------------------------------------------------------------
def _model(folder: Path, weights: bytes, train=None, **extra) -> Path:
    """A saved-model folder as the lineage code reads it: config.json and some weight bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"kind": "vae", "config": {}, **extra}
    if train is not None:
        cfg["train"] = train
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def _run(root: Path, name: str, weights: bytes, init_from=None, age=0) -> Path:
    """RUN/model beside RUN/options.json, the model written `age` seconds ago."""
    model = _model(root / name / "model", weights, train={"steps": 1})
    (root / name / "options.json").write_text(json.dumps({"init_from": init_from}))
    t = 1_700_000_000 - age
    os.utime(model / "model.safetensors", (t, t))
    return model


def _h(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()[:16]


def test_run_folders_give_an_old_model_its_chain(tmp_path):
    a = _run(tmp_path, "a", b"A", age=30)
    b = _run(tmp_path, "b", b"B", init_from=str(a), age=20)
    c = _run(tmp_path, "c", b"C", init_from=str(b), age=10)
    rec = ckpt.train_record(c)
    assert rec["steps"] == 1
    assert [(r["path"], r["kind"], r["weights"]) for r in ckpt.lineage(rec)] == [
        (str(b), "vae", _h(b"B")), (str(a), "vae", _h(b"A"))]
    assert ckpt.lineage(rec)[1]["train"] == {"steps": 1}


def test_the_chain_stops_where_it_cannot_be_trusted(tmp_path):
    a = _run(tmp_path, "a", b"A", age=10)
    same_age = _run(tmp_path, "b", b"B", init_from=str(a), age=10)
    assert "init_from" not in ckpt.train_record(same_age)          # base not older than the model
    twin = _run(tmp_path, "t", b"A", init_from=str(a), age=20)       # base holds the model's own weights
    os.utime(a / "model.safetensors", (1, 1))
    assert "init_from" not in ckpt.train_record(twin)
    (a / "config.json").write_text("{broken")
    assert ckpt.train_record(_run(tmp_path, "c", b"C", init_from=str(a), age=5)) == {"steps": 1}
    assert ckpt.train_record(_run(tmp_path, "d", b"D", init_from=str(tmp_path / "nowhere"))) == {"steps": 1}
    assert ckpt.train_record(_run(tmp_path, "e", b"E", init_from=None)) == {"steps": 1}


def test_a_recorded_chain_or_a_long_one_is_not_looked_up(tmp_path):
    a = _run(tmp_path, "a", b"A", age=30)
    b = _run(tmp_path, "b", b"B", init_from=str(a), age=20)
    recorded = {"steps": 2, "init_from": {"path": "elsewhere"}}
    _model(b, b"B", train=recorded)
    assert ckpt.train_record(b) == recorded
    _model(b, b"B", train={"steps": 3})
    assert "init_from" in ckpt.train_record(b, ("h",) * (ckpt.MAX_LINEAGE - 1))
    assert "init_from" not in ckpt.train_record(b, ("h",) * ckpt.MAX_LINEAGE)
    _model(b, b"B", train=["not", "a", "dict"])
    assert ckpt.train_record(b)["init_from"]["weights"] == _h(b"A")


def test_a_base_record_names_the_folder_as_given(tmp_path):
    base = _model(tmp_path / "base", b"W", train={"steps": 7})
    assert ckpt.base_record(base) == {"path": str(base), "kind": "vae", "weights": _h(b"W"),
                                      "train": {"steps": 7}}
    assert ckpt.base_record(base, as_given="runs/base")["path"] == "runs/base"


def test_find_base_looks_where_the_command_ran_then_at_the_repository(tmp_path, monkeypatch):
    _model(tmp_path / "here", b"W")
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    assert ckpt.find_base("here") == Path("here")
    assert ckpt.find_base("empty") is None and ckpt.find_base("nowhere") is None
    shipped = next(p for p in (ckpt.REPO_ROOT / "weights").iterdir() if (p / "config.json").is_file())
    assert ckpt.find_base(f"weights/{shipped.name}") == ckpt.REPO_ROOT / "weights" / shipped.name


def test_lineage_walks_nested_records_up_to_the_limit():
    rec = {"steps": 0}
    for i in range(ckpt.MAX_LINEAGE + 6):
        rec = {"init_from": {"path": str(i), "train": rec}}
    chain = ckpt.lineage(rec)
    assert len(chain) == 64 == ckpt.MAX_LINEAGE and chain[0]["path"] == str(ckpt.MAX_LINEAGE + 5)
    assert [r["path"] for r in ckpt.lineage({"init_from": {"path": "p", "train": "?"}})] == ["p"]
    assert ckpt.lineage({"steps": 3}) == [] and ckpt.lineage({"init_from": "a string"}) == []


# -- training state ----------------------------------------------------------------------------------
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_training_state_round_trips_and_never_unpickles_objects(tmp_path):
    state = {"step": 3, "opt": {"lr": 0.1}, "t": torch.arange(4), "names": ["a"]}
    ckpt.save_state(tmp_path / "state.pt", state)
    back = ckpt.load_state(tmp_path / "state.pt")
    assert back["step"] == 3 and back["names"] == ["a"] and torch.equal(back["t"], torch.arange(4))
    marker = tmp_path / "pwned"
    torch.save({"x": _Evil(marker)}, tmp_path / "evil.pt")
    _refused(lambda: ckpt.load_state(tmp_path / "evil.pt"),
             re.escape(str(tmp_path / "evil.pt")) + r": unreadable training state \(\w+: .+\)")
    assert not marker.exists()


# -- fileio ------------------------------------------------------------------------------------------
def test_atomic_writes_use_a_hidden_temporary_beside_the_target(tmp_path):
    target = tmp_path / "new" / "dir" / "f.json"
    with fileio.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".f.json.") and tmp.name.endswith(".tmp")
        tmp.write_text("x")
    assert target.read_text() == "x"
    fileio.atomic_write_json(target, {"b": "é", "a": [1]})
    assert target.read_bytes().decode("utf-8") == '{\n  "b": "é",\n  "a": [\n    1\n  ]\n}\n'
    with pytest.raises(KeyError):
        with fileio.atomic_path(target) as tmp:
            tmp.unlink()                          # the temporary already gone: the real error surfaces
            raise KeyError("boom")
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


def _config(tmp_path, text: str) -> Path:
    (tmp_path / "config.json").write_text(text, encoding="utf-8")
    return tmp_path


def test_read_config_refusals(tmp_path):
    _refused(lambda: fileio.read_config(tmp_path), re.escape(f"{tmp_path}: no config.json (not a saved aigc model)"))
    body = '{"kind": "vae", "config": {}}'
    pad = fileio.MAX_CONFIG_BYTES - len(body)
    assert fileio.read_config(_config(tmp_path, body + " " * pad))["kind"] == "vae"      # exactly 1 MiB
    _config(tmp_path, body + " " * (pad + 1))
    cfg_path = tmp_path / "config.json"
    _refused(lambda: fileio.read_config(tmp_path), re.escape(f"{cfg_path}: config.json is implausibly large"))
    assert fileio.MAX_CONFIG_BYTES == 1 << 20
    (tmp_path / "config.json").write_bytes(b"\xff\xfe")
    _refused(lambda: fileio.read_config(tmp_path), re.escape(f"{cfg_path}: config.json is not valid JSON (") + r".+\)")
    for bad in ('[1]', '{"config": {}}', '{"kind": "vae"}', '{"kind": "vae", "config": []}'):
        _config(tmp_path, bad)
        _refused(lambda: fileio.read_config(tmp_path), re.escape(f"{cfg_path}: config.json lacks 'kind' or 'config'"))
    assert fileio.read_config(_config(tmp_path, '{"kind": "é", "config": {}}'))["kind"] == "é"


def test_read_metrics_is_lenient(tmp_path):
    assert fileio.read_metrics(tmp_path) == {}
    for text, expected in [('{"fid": 1.5, "é": 2}', {"fid": 1.5, "é": 2}), ("[1, 2]", {}), ("{oops", {})]:
        (tmp_path / "metrics.json").write_text(text, encoding="utf-8")
        assert fileio.read_metrics(tmp_path) == expected


def test_a_text_model_keeps_its_tokenizer_and_a_broken_one_is_one_error(tmp_path):
    from aigc.text.tokenizer import CharTokenizer
    tok = CharTokenizer.from_text("to be or not to be")
    torch.manual_seed(0)
    m = build("char-lm", tiny=True, vocab_size=tok.vocab_size).set_tokenizer(tok)
    d = ckpt.save_pretrained(m, tmp_path / "lm")
    assert ckpt.from_pretrained(d).tokenizer == tok
    (d / "tokenizer.json").write_text(json.dumps({"chars": ["a"]}), encoding="utf-8")
    with pytest.raises((OSError, ValueError, KeyError, TypeError)) as inner:
        build("char-lm", tiny=True, vocab_size=tok.vocab_size).load_extra_files(d)
    _refused(lambda: ckpt.from_pretrained(d), re.escape(f"{d}: {inner.value}"))
