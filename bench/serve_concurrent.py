"""Many people at once: latency of `/sample` and `/edit` with N concurrent gradio_client users.

Starts `python app.py` on a free port (jobs and user models in a temporary folder), then N threads,
each its own gradio_client.Client (its own session, as N browsers), each making R requests in
turn: a 4x4 `/sample` of dcgan-mnist on a new seed, `/open` of its first picture once, then
alternately `/edit` (a slider move) and `/sample`. It prints p50 / p95 / max per endpoint, the
number of "queue full" answers (the app's bounded queue saying so is the expected refusal) and of
any other error. With --train, a training process runs meanwhile at the fine-tune worker's
setting (one torch thread, nice 19), as a fine-tune job would.

    python bench/serve_concurrent.py --users 32 --requests 20
    python bench/serve_concurrent.py --users 32 --requests 20 --train
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOWNLOAD = os.environ.get("BENCH_DOWNLOAD", "1") != "0"      # 0: measure the server alone


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs, float), q)) if xs else float("nan")


def wait_ready(url: str, proc, timeout: float = 180) -> None:
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the app did not answer within {timeout:.0f} s")


def user(url: str, k: int, requests: int, model: str, lat: dict, errors: list, start: threading.Barrier):
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=DOWNLOAD)
    for _ in range(100):                                                   # set-up may meet a full queue too
        try:
            client.predict(model, "any", k, 4, 1.0, api_name="/sample")   # this session's first grid
            client.predict(0, api_name="/open")
            break
        except Exception:  # noqa: BLE001 - a full queue: try again shortly
            time.sleep(0.2 + 0.05 * k)
    start.wait()
    for i in range(requests):
        name = "edit" if i % 2 else "sample"
        t = time.perf_counter()
        try:
            if name == "sample":
                client.predict(model, "any", 1000 * k + i, 4, 1.0, api_name="/sample")
            else:
                client.predict(f'{{"dir1": {(i % 7 - 3) / 2}}}', api_name="/edit")
            lat[name].append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001 - counted and reported, the run goes on
            errors.append(f"{name}: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--requests", type=int, default=20, help="requests per user")
    ap.add_argument("--model", default="dcgan-mnist")
    ap.add_argument("--train", action="store_true", help="a one-thread nice-19 training runs meanwhile")
    ap.add_argument("--app-args", default="", help="extra arguments for app.py")
    a = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="aigc-serve-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, AIGC_JOBS_DIR=str(work / "jobs"), AIGC_USER_MODELS=str(work / "user_models"),
               GRADIO_ANALYTICS_ENABLED="False")
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--no-warm",
                            *a.app_args.split()], cwd=ROOT, env=env, stdout=open(work / "app.log", "wb"),
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    trainer = None
    try:
        wait_ready(url, app)
        if a.train:
            tenv = dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            trainer = subprocess.Popen(["nice", "-n", "19", sys.executable, "-m", "aigc", "train", "--model", "dcgan",
                                        "--data", "mnist", "--out", str(work / "run"), "--max-minutes", "30",
                                        "--max-steps", "1000000", "--batch-size", "64"],
                                       cwd=ROOT, env=tenv, stdout=open(work / "train.log", "wb"),
                                       stderr=subprocess.STDOUT)
            time.sleep(15)                                  # past its data loading, into the steps
            if trainer.poll() is not None:
                raise SystemExit(f"the training process exited early; see {work / 'train.log'}")
        lat: dict[str, list[float]] = {"sample": [], "edit": []}
        errors: list[str] = []
        start = threading.Barrier(a.users + 1)
        threads = [threading.Thread(target=user, args=(url, k, a.requests, a.model, lat, errors, start), daemon=True)
                   for k in range(a.users)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        span = time.perf_counter() - t0
        full = sum(1 for e in errors if "queue" in e.lower() and "full" in e.lower())
        print(f"{a.users} users x {a.requests} requests ({'with' if a.train else 'no'} training alongside), "
              f"{span:.1f} s, {os.cpu_count()} CPUs")
        every = lat["sample"] + lat["edit"]
        for name, xs in [*lat.items(), ("all", every)]:
            ms = [1000 * x for x in xs]
            print(f"  {name:<7} n={len(ms):<5} p50 {pct(ms, 50):7.0f} ms   p95 {pct(ms, 95):7.0f} ms   "
                  f"max {max(ms) if ms else float('nan'):7.0f} ms")
        print(f"  queue full: {full}   other errors: {len(errors) - full}")
        for e in sorted(set(errors))[:5]:
            print(f"    {e}")
        return 0
    finally:
        for p in (trainer, app):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    sys.exit(main())
