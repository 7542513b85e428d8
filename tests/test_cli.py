"""The one command line (aigc.cli): subcommands, many samples drawn in batches, one-line errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from aigc.cli.commands import build_parser, main
from aigc.limits import SAMPLE_BATCH, SAMPLE_NPZ_MAX, SAMPLE_PNG_MAX


@pytest.fixture(scope="module")
def tiny_gan(tmp_path_factory):
    import torch

    from aigc import checkpoint as ckpt
    from aigc.kinds import build
    torch.manual_seed(0)
    return ckpt.save_pretrained(build("dcgan", tiny=True, num_classes=3, class_names=["a", "b", "c"]),
                                tmp_path_factory.mktemp("m") / "tiny", meta={"dataset": "upload:x"})


def test_sample_many_into_an_npz_in_batches(tiny_gan, tmp_path, capsys, one_thread):
    out = tmp_path / "s.npz"
    assert main(["sample", str(tiny_gan), "--n", "1500", "--seed", "3", "--out", str(out)]) == 0
    with np.load(out) as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (1500, 28, 28, 1) and images.dtype == np.uint8 and 1500 > SAMPLE_BATCH
    assert labels.tolist() == [i % 3 for i in range(1500)]
    # batching does not change what a seed draws: the first samples equal a small draw's
    small = tmp_path / "small.npz"
    assert main(["sample", str(tiny_gan), "--n", "4", "--seed", "3", "--out", str(small)]) == 0
    with np.load(small) as f:
        assert np.array_equal(f["images"], images[:4]) or np.abs(f["images"].astype(int) - images[:4]).max() <= 1


def test_sample_bounds_exit_2_with_one_line(tiny_gan, tmp_path, capsys):
    assert main(["sample", str(tiny_gan), "--n", str(SAMPLE_PNG_MAX + 1), "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --n must be between 1 and 1,024") and err.count("\n") == 1
    assert main(["sample", str(tiny_gan), "--n", str(SAMPLE_NPZ_MAX + 1), "--out", str(tmp_path / "g.npz")]) == 2
    assert "50,000" in capsys.readouterr().err
    assert main(["sample", str(tiny_gan), "--temperature", "1e300", "--out", str(tmp_path / "g.png")]) == 2
    assert "temperature" in capsys.readouterr().err


def test_one_parser_holds_every_subcommand():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"list", "sample", "train", "finetune", "eval", "directions", "classifier"} <= set(sub.choices)


@pytest.mark.slow          # a process of its own (interpreter + torch start-up): the full tier
def test_bad_flags_exit_2_with_one_line():
    r = subprocess.run([sys.executable, "-m", "aigc", "sample", "x", "--no-such-flag"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    r = subprocess.run([sys.executable, "-m", "aigc", "directions", "no-such-model"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("error: no saved model"), r.stderr


@pytest.mark.slow          # a process of its own (interpreter + torch start-up): the full tier
def test_installed_command_works_from_any_folder(tmp_path):
    """`pip install -e .` gives an `aigc` command beside the interpreter; from a folder that is not the
    repository it lists the shipped models (found through the package, not the working folder)."""
    import json
    import os
    from pathlib import Path

    exe = Path(sys.executable).with_name("aigc")
    if not exe.exists():
        pytest.skip("the package is not installed in this environment (make setup installs it)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0 and "list" in r.stdout and "finetune" in r.stdout
    r = subprocess.run([str(exe), "list", "--json"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert {"dcgan-mnist", "char-zh", "vade-mnist"} <= {row["name"] for row in json.loads(r.stdout)}
