"""Training-step throughput of the dcgan (images/s) against a plain fp32 run of the same
network in the same process, plus sampling latency for 1 and 64 images.

    python bench/train_throughput.py [--device cpu|cuda] [--batch-size 128] [--steps 20] [--set ngf=64 ...]

The "plain" figure is the same objective with fp32 everywhere (no autocast); the ratio is
what the precision choice buys on this machine. Prints one JSON line per measurement and a
summary line; figures go into bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


import torch  # noqa: E402

from aigc.cli.commands import UsageError, _parse_set  # noqa: E402
from aigc.data import load_dataset  # noqa: E402
from aigc.devices import resolve_device  # noqa: E402
from aigc.kinds import build  # noqa: E402
from aigc.train.loop import Run, TrainOptions  # noqa: E402
from aigc.train.rng import StepRNG  # noqa: E402


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def step_rate(kind: str, precision: str, device: str, batch: int, steps: int, warmup: int = 3,
              config: dict | None = None) -> float:
    run = Run(TrainOptions(model=kind, data="mnist", out="/nonexistent-never-written", max_steps=10 ** 6,
                           batch_size=batch, device=device, precision=precision, progress=False,
                           config=dict(config or {})))
    dev = run.device
    for i in range(warmup):
        x, y = run.batch(i, None)
        run.objective.step(x, y, StepRNG(0, i, dev), i)
    sync(dev)
    t = time.perf_counter()
    for i in range(warmup, warmup + steps):
        x, y = run.batch(i, None)
        run.objective.step(x, y, StepRNG(0, i, dev), i)
    sync(dev)
    return batch * steps / (time.perf_counter() - t)


def sample_latency(device: str, n: int, reps: int = 30) -> dict:
    dev = resolve_device(device)
    m = build("dcgan", num_classes=10).to(dev).eval()
    z = torch.randn(n, m.latent_dim, device=dev)
    labels = torch.arange(n, device=dev) % 10
    times = []
    with torch.no_grad():
        for i in range(reps + 3):
            sync(dev)
            t = time.perf_counter()
            m.decode(z, labels)
            sync(dev)
            if i >= 3:
                times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"n": n, "p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=128, help="training batch (default 128)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement (default 20)")
    p.add_argument("--kind", default="dcgan", help="model kind (default dcgan)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a model config field, as `python -m aigc train --set` (repeatable), e.g. ngf=64")
    a = p.parse_args()
    try:
        config = _parse_set(a.set)
    except UsageError as e:
        p.error(str(e))
    load_dataset("mnist")
    fast_prec = "auto"
    fast = step_rate(a.kind, fast_prec, a.device, a.batch_size, a.steps, config=config)
    plain = step_rate(a.kind, "fp32", a.device, a.batch_size, a.steps, config=config)
    res = {"device": a.device, "kind": a.kind, "batch": a.batch_size, "config": config,
           "threads": torch.get_num_threads(),
           "img_per_s_auto_precision": round(fast, 1), "img_per_s_plain_fp32": round(plain, 1),
           "ratio": round(fast / plain, 2), "torch": torch.__version__}
    if a.device.startswith("cuda"):
        res["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(res))
    for n in (1, 64):
        print(json.dumps({"sample_latency": sample_latency(a.device, n), "device": a.device}))


if __name__ == "__main__":
    main()
