"""Multi-process training through torchrun (gloo on CPU) and the CUDA code path on a CPU machine."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aigc import checkpoint as ckpt
from aigc.devices import autocast_dtype, cpu_has_native_bf16, resolve_device

ROOT = Path(__file__).resolve().parents[1]


def run(cmd, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, **kw)


@pytest.mark.slow          # a process of its own (interpreter + torch start-up): the full tier
@pytest.mark.parametrize("kind", ["vae", "seed-gan"])
def test_two_process_gloo_run_matches_single_process(kind, tmp_path):
    common = ["--model", kind, "--data", "mnist", "--tiny", "--max-steps", "3", "--batch-size", "16",
              "--log-every", "1", "--no-progress", "--seed", "5"]
    if kind == "seed-gan":
        common += ["--set", "dropout=0.0"]   # dropout draws from each process's own RNG stream
    single = run([sys.executable, "-m", "aigc", "train", "--out", str(tmp_path / "one"), *common])
    assert single.returncode == 0, single.stderr
    multi = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                 "-m", "aigc", "train", "--out", str(tmp_path / "two"), *common])
    assert multi.returncode == 0, multi.stderr[-3000:]
    # the 2-process checkpoint is an ordinary saved model: it loads and samples
    m = ckpt.from_pretrained(tmp_path / "two" / "model")
    assert m.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)
    assert m.meta["train"]["world_size"] == 2
    a = ckpt.load_weights(tmp_path / "one" / "model" / "model.safetensors")
    b = ckpt.load_weights(tmp_path / "two" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=lambda m: f"{k}: {m}")
    # only rank 0 wrote logs: one line per step
    steps = [json.loads(l)["step"] for l in (tmp_path / "two" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_native_bf16_probe(monkeypatch):
    """auto precision picks bf16 on a CPU only where bf16 is computed in hardware."""
    import aigc.devices as d
    monkeypatch.setattr(d, "cpu_has_native_bf16", lambda: True)
    assert d.autocast_dtype(torch.device("cpu"), "auto", "char-lm") == torch.bfloat16
    monkeypatch.setattr(d, "cpu_has_native_bf16", lambda: False)
    assert d.autocast_dtype(torch.device("cpu"), "auto", "char-lm") is None
    assert d.autocast_dtype(torch.device("cpu"), "auto", "dcgan") is None
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert cpu_has_native_bf16() is True


@pytest.mark.slow          # a process of its own (interpreter + torch start-up): the full tier
def test_cuda_path_on_a_cpu_machine(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    native = cpu_has_native_bf16()
    assert autocast_dtype(torch.device("cpu"), "auto", "dcgan") == (torch.bfloat16 if native else None)
    assert autocast_dtype(torch.device("cpu"), "auto", "char-lm") == (torch.bfloat16 if native else None)
    assert autocast_dtype(torch.device("cpu"), "bf16", "vae") == torch.bfloat16     # asked for: obeyed
    assert autocast_dtype(torch.device("cpu"), "auto", "vae") is None
    assert autocast_dtype(torch.device("cpu"), "fp32", "dcgan") is None
    with pytest.raises(ValueError):
        autocast_dtype(torch.device("cpu"), "fp8")
    never = tmp_path / "never"
    r = run([sys.executable, "-m", "aigc", "train", "--model", "vae", "--data", "mnist", "--out", str(never),
             "--max-steps", "1", "--device", "cuda"])
    assert r.returncode == 2 and "no CUDA" in r.stderr and not never.exists()


@pytest.mark.slow          # a process of its own (interpreter + torch start-up): the full tier
def test_nothing_touches_cuda_at_import():
    code = ("import torch, aigc, aigc.train.loop, aigc.eval, aigc.pipelines.image, aigc.cli.commands, aigc.hub; "
            "assert not torch.cuda.is_initialized(), 'CUDA initialised at import'; print('ok')")
    r = run([sys.executable, "-c", code])
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
