"""The VaDE on the command line: `aigc cluster`, `aigc sample --cluster`, `aigc eval --metrics
cluster_acc,nmi`, and one line with exit status 2 for each bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aigc.cli.commands import main


@pytest.fixture(scope="module")
def tiny_vade(tmp_path_factory):
    from aigc import checkpoint as ckpt
    from aigc.kinds import build
    torch.manual_seed(0)
    return ckpt.save_pretrained(build("vade", tiny=True), tmp_path_factory.mktemp("m") / "tiny-vade",
                                meta={"dataset": "mnist"})


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    from aigc import checkpoint as ckpt
    from aigc.kinds import build
    torch.manual_seed(0)
    return ckpt.save_pretrained(build("vae", tiny=True), tmp_path_factory.mktemp("m") / "tiny-vae",
                                meta={"dataset": "mnist"})


def npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def one_error(capsys, *words) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    return err


def test_sample_a_cluster_then_cluster_the_samples(tiny_vade, tmp_path, capsys, one_thread):
    out = tmp_path / "s.npz"
    assert main(["sample", str(tiny_vade), "--cluster", "1", "--n", "5", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["cluster", str(tiny_vade), "--images", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert list(res) == ["clusters"] and len(res["clusters"]) == 5 and set(res["clusters"]) <= {0, 1, 2}
    grey = npz(tmp_path / "grey.npz", images=np.load(out)["images"][..., 0])     # N x H x W works too
    assert main(["cluster", str(tiny_vade), "--images", grey, "--json", "--probs"]) == 0
    res2 = json.loads(capsys.readouterr().out)
    assert res2["clusters"] == res["clusters"]
    probs = np.array(res2["probs"])
    assert probs.shape == (5, 3) and np.allclose(probs.sum(1), 1, atol=1e-4)
    assert (probs.argmax(1) == res["clusters"]).all()
    assert main(["cluster", str(tiny_vade), "--images", grey]) == 0
    assert "5 pictures in" in capsys.readouterr().out


def test_eval_cluster_metrics(tiny_vade, capsys, one_thread):
    assert main(["eval", str(tiny_vade), "--metrics", "cluster_acc,nmi", "--n", "200", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0 < res["cluster_acc"] <= 1 and 0 <= res["nmi"] <= 1 and res["cluster_n"] == 200


def test_bad_input_exits_2_with_one_line(tiny_vade, tiny_vae, tmp_path, capsys):
    out = str(tmp_path / "x.npz")
    assert main(["sample", str(tiny_vade), "--cluster", "3", "--out", out]) == 2
    one_error(capsys, "cluster must be between 0 and 2")
    assert main(["sample", str(tiny_vae), "--cluster", "0", "--out", out]) == 2
    one_error(capsys, "--cluster is for VaDE models")
    ok = npz(tmp_path / "ok.npz", images=np.zeros((2, 28, 28, 1), np.uint8))
    assert main(["cluster", str(tiny_vae), "--images", ok]) == 2
    one_error(capsys, "not a vade")
    cases = [(npz(tmp_path / "size.npz", images=np.zeros((2, 32, 32, 1), np.uint8)), "32x32x1"),
             (npz(tmp_path / "rgb.npz", images=np.zeros((2, 28, 28, 3), np.uint8)), "28x28x3"),
             (npz(tmp_path / "none.npz", pictures=np.zeros((2, 28, 28), np.uint8)), "no 'images'"),
             (npz(tmp_path / "float.npz", images=np.zeros((2, 28, 28), np.float32)), "uint8"),
             (str(tmp_path / "missing.npz"), "not an .npz")]
    for path, words in cases:
        assert main(["cluster", str(tiny_vade), "--images", path]) == 2, path
        one_error(capsys, words)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert main(["cluster", str(tiny_vade), "--images", str(tmp_path / "junk.npz")]) == 2
    one_error(capsys, "not a readable .npz")
    assert main(["eval", str(tiny_vae), "--metrics", "cluster_acc", "--json"]) == 2
    one_error(capsys, "clustering model")
