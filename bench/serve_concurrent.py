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
import json
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def urls_in(value) -> list[str]:
    """Every file URL in an endpoint's output (the gallery's pictures), as a browser would fetch them."""
    if isinstance(value, dict):
        return ([value["url"]] if isinstance(value.get("url"), str) else []) + \
            [u for k, v in value.items() if k != "url" for u in urls_in(v)]
    if isinstance(value, list):
        return [u for v in value for u in urls_in(v)]
    return []


async def http_user(http, api: str, k: int, requests: int, model: str, lat: dict, errors: list, start) -> None:
    """One browser-like session over plain HTTP (Gradio's documented /call API for queued endpoints,
    one POST for the queue-free slider endpoint), sharing a keep-alive connection pool: a client
    that costs the server what a browser costs it, and this machine little besides."""
    import asyncio
    import secrets

    session = secrets.token_hex(8)

    async def call(name: str, data: list):
        if name == "edit":                                   # queue=False: one request, the answer in it
            r = await http.post(f"{api}/run/{name}", json={"data": [None, *data], "session_hash": session})  # None: the session state
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {r.text[:120]}")
            return r.json()["data"]
        r = await http.post(f"{api}/call/{name}", json={"data": data, "session_hash": session})
        if r.status_code == 503:
            raise RuntimeError("queue full")
        r.raise_for_status()
        event = None
        async with http.stream("GET", f"{api}/call/{name}/{r.json()['event_id']}") as resp:
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    if event == "error":
                        raise RuntimeError(line[5:].strip()[:200] or "error")
                    return json.loads(line[5:])
        raise RuntimeError(f"{name}: the event stream ended without a result")

    async def fetch(urls):
        if DOWNLOAD:
            await asyncio.gather(*(http.get(u) for u in urls))

    for attempt in range(100):                                     # set-up may meet a full queue too
        try:
            await fetch(urls_in(await call("sample", [model, "any", k, 4, 1.0])))
            await call("open", [0])
            break
        except Exception:  # noqa: BLE001 - a full queue: try again shortly
            await asyncio.sleep(0.2 + 0.05 * k)
    await start.wait()
    for i in range(requests):
        name = "edit" if i % 2 else "sample"
        t = time.perf_counter()
        try:
            if name == "sample":
                await fetch(urls_in(await call("sample", [model, "any", 1000 * k + i, 4, 1.0])))
            else:
                await fetch(urls_in(await call("edit", [f'{{"dir1": {(i % 7 - 3) / 2}}}'])))
            lat[name].append(time.perf_counter() - t)
        except Exception as e:  # noqa: BLE001 - counted and reported, the run goes on
            errors.append(f"{name}: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}")


def run_http_users(url: str, users: int, requests: int, model: str, lat: dict, errors: list,
                   server_pid: int) -> tuple[float, float, float]:
    """All users as coroutines of one event loop, set up first, then started at once; returns the
    measured span, and the server's and this process's CPU seconds over it."""
    import asyncio

    import httpx

    async def go() -> tuple[float, float, float]:
        limits = httpx.Limits(max_connections=6 * users, max_keepalive_connections=6 * users)
        async with httpx.AsyncClient(timeout=120, limits=limits) as http:
            gate = asyncio.Event()
            ready = asyncio.Semaphore(0)

            class Start:                                   # every user set up, then all start at once
                async def wait(self):
                    ready.release()
                    await gate.wait()

            tasks = [asyncio.create_task(http_user(http, url.rstrip("/") + "/gradio_api", k, requests, model,
                                                   lat, errors, Start())) for k in range(users)]
            for _ in range(users):
                await ready.acquire()
            t0, server0, client0 = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
            gate.set()
            await asyncio.gather(*tasks)
            return (time.perf_counter() - t0, cpu_seconds(server_pid) - server0, time.process_time() - client0)

    return asyncio.run(go())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=32)
    ap.add_argument("--requests", type=int, default=20, help="requests per user")
    ap.add_argument("--model", default="dcgan-mnist")
    ap.add_argument("--train", action="store_true", help="a one-thread nice-19 training runs meanwhile")
    ap.add_argument("--app-args", default="", help="extra arguments for app.py")
    ap.add_argument("--client", choices=["http", "gradio_client"], default="http",
                    help="http: browser-like sessions over plain HTTP in one event loop (light on this machine); "
                         "gradio_client: one Client per user in threads (~50 ms of client CPU a request)")
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
        if a.client == "http":
            span, server_cpu, client_cpu = run_http_users(url, a.users, a.requests, a.model, lat, errors, app.pid)
            return report(a, span, lat, errors, server_cpu, client_cpu)
        start = threading.Barrier(a.users + 1)
        threads = [threading.Thread(target=user, args=(url, k, a.requests, a.model, lat, errors, start), daemon=True)
                   for k in range(a.users)]
        for t in threads:
            t.start()
        start.wait()
        t0, server0, client0 = time.perf_counter(), cpu_seconds(app.pid), time.process_time()
        for t in threads:
            t.join()
        span = time.perf_counter() - t0
        server_cpu, client_cpu = cpu_seconds(app.pid) - server0, time.process_time() - client0
        return report(a, span, lat, errors, server_cpu, client_cpu)
    finally:
        for p in (trainer, app):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGINT)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()


def report(a, span: float, lat: dict, errors: list, server_cpu: float, client_cpu: float) -> int:
    full = sum(1 for e in errors if "queue" in e.lower() and "full" in e.lower())
    print(f"{a.users} users x {a.requests} requests ({'with' if a.train else 'no'} training alongside), "
          f"{span:.1f} s, {os.cpu_count()} CPUs, {a.client} clients, "
          f"{'with' if DOWNLOAD else 'without'} picture downloads")
    every = lat["sample"] + lat["edit"]
    for name, xs in [*lat.items(), ("all", every)]:
        ms = [1000 * x for x in xs]
        print(f"  {name:<7} n={len(ms):<5} p50 {pct(ms, 50):7.0f} ms   p95 {pct(ms, 95):7.0f} ms   "
              f"max {max(ms) if ms else float('nan'):7.0f} ms")
    print(f"  queue full: {full}   other errors: {len(errors) - full}")
    n = max(1, len(every))
    print(f"  CPU per answered request: server {1000 * server_cpu / n:.0f} ms, these clients "
          f"{1000 * client_cpu / n:.0f} ms ({len(every) / span:.1f} requests/s)")
    for e in sorted(set(errors))[:5]:
        print(f"    {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
