"""Issue 5: does the web server keep answering while a fine-tune job trains?

Starts `python app.py` as a subprocess (its own jobs and user-models folders under runs/, so the
repository's jobs/ and user_models/ are untouched), measures request latency on the idle server,
then submits a fine-tune job *through the app* (the Fine-tune tab's `/start_job` endpoint, as the
browser does; the app's JobManager runs it in a one-thread worker process) and, while it trains,
measures the same requests again:

  config      HTTP GET /config (the page's config, what a browser fetches on load; one keep-alive
              httpx client)
  sample      gradio_client `/sample` (dcgan-mnist, a new seed each time, 3x3 grid, image downloaded;
              one shared SSLContext, as README's client example)
  job_status  gradio_client `/job_status` (what the Fine-tune tab asks while a job runs)

Then (with --wait) it waits for the job to finish and prints where its run folder is, so that
bench/finetune_colour_report.py can report the quality and draw the samples.

    python bench/make_colour_upload.py
    python bench/serve_under_load.py --zip runs/colour/emoji-faces-500.zip --base new:dcgan \
        --resolution 32 --steps 1100 -n 100 --interval 5 --wait

The app subprocess (and the job's worker, its child) are ended at the end: the job is cancelled
first if it is still running.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, q):
    return float(np.percentile(np.asarray(xs, float), q)) if xs else float("nan")


def summary(name, xs) -> str:
    ms = [1000 * x for x in xs]
    return (f"{name:<11} n={len(ms):<4} p50 {pct(ms, 50):7.1f} ms   p95 {pct(ms, 95):7.1f} ms   "
            f"max {max(ms) if ms else float('nan'):7.1f} ms")


def job_json(jobs_dir: Path, job_id: str) -> dict:
    try:
        return json.loads((jobs_dir / job_id / "job.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", default=str(ROOT / "runs" / "colour" / "emoji-faces-500.zip"), help="the upload")
    ap.add_argument("--base", default="new:dcgan", help="Fine-tune tab's base value (new:KIND trains from scratch)")
    ap.add_argument("--resolution", default="32")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=0, help="the job's time limit in minutes (0: steps only)")
    ap.add_argument("--name", default="emoji-faces-bench")
    ap.add_argument("-n", type=int, default=60, help="requests of each kind, idle and under load")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between rounds under load")
    ap.add_argument("--idle-n", type=int, default=None, help="requests of each kind on the idle server (default -n)")
    ap.add_argument("--workdir", default=str(ROOT / "runs" / "serve"), help="jobs/, user_models/, app.log go here")
    ap.add_argument("--wait", action="store_true", help="after measuring, wait for the job to finish")
    ap.add_argument("--model", default="dcgan-mnist", help="model for /sample")
    a = ap.parse_args(argv)

    import certifi
    from gradio_client import Client, handle_file

    work = Path(a.workdir).resolve()
    jobs_dir, users = work / "jobs", work / "user_models"
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = dict(os.environ, AIGC_JOBS_DIR=str(jobs_dir), AIGC_USER_MODELS=str(users),
               GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(ROOT))
    log = open(work / "app.log", "ab")
    t0 = time.time()
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port)], cwd=ROOT, env=env,
                           stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    print(f"app pid {app.pid} on {url}; jobs in {jobs_dir}", flush=True)
    job_id = None
    try:
        http = httpx.Client(timeout=30)
        while True:
            if app.poll() is not None:
                print(f"the app exited with status {app.returncode}; see {work / 'app.log'}", file=sys.stderr)
                return 1
            try:
                if http.get(url).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() - t0 > 120:
                print("the app did not answer within 120 s", file=sys.stderr)
                return 1
            time.sleep(0.2)
        client = Client(url, ssl_verify=ssl.create_default_context(cafile=certifi.where()), verbose=False)
        client.predict(a.model, "any", 0, 3, 0.8, api_name="/sample")      # waits for the weights
        print(f"app ready (first /sample answered) {time.time() - t0:.1f} s after start", flush=True)
        cfg_bytes = len(http.get(url + "config").content)

        def one_round(seed: int, lat: dict, job: str | None):
            t = time.perf_counter()
            r = http.get(url + "config")
            r.raise_for_status()
            lat["config"].append(time.perf_counter() - t)
            t = time.perf_counter()
            client.predict(a.model, "any", seed, 3, 0.8, api_name="/sample")
            lat["sample"].append(time.perf_counter() - t)
            if job:
                t = time.perf_counter()
                client.predict(job, api_name="/job_status")
                lat["job_status"].append(time.perf_counter() - t)

        idle = {"config": [], "sample": []}
        for i in range(a.idle_n if a.idle_n is not None else a.n):
            one_round(1000 + i, idle, None)
        print(f"\nidle server (no job), GET /config is {cfg_bytes / 1024:.0f} KiB:")
        for k, v in idle.items():
            print("  " + summary(k, v))
        sys.stdout.flush()

        out = client.predict(handle_file(a.zip), a.base, a.resolution, a.steps, a.minutes, a.name, [],
                             api_name="/start_job")
        job_id = out[0] if isinstance(out, (list, tuple)) else out
        print(f"\nsubmitted job {job_id} through /start_job ({a.base}, {a.steps} steps, resolution {a.resolution})",
              flush=True)
        while job_json(jobs_dir, job_id).get("state") not in ("running", "done", "failed", "cancelled"):
            time.sleep(0.5)
        j = job_json(jobs_dir, job_id)
        if j.get("state") != "running":
            print(f"job is {j.get('state')}: {j.get('error') or j.get('message')}", file=sys.stderr)
            return 1
        print(f"job running at {time.strftime('%H:%M:%S')}; measuring {a.n} rounds every {a.interval:g} s", flush=True)
        load = {"config": [], "sample": [], "job_status": []}
        steps_seen = []
        t_load = time.time()
        for i in range(a.n):
            t_next = time.time() + a.interval
            one_round(2000 + i, load, job_id)
            j = job_json(jobs_dir, job_id)
            steps_seen.append(j.get("step", 0))
            if j.get("state") != "running":
                print(f"  (the job left 'running' after {i + 1} rounds: {j.get('state')})")
                break
            time.sleep(max(0.0, t_next - time.time()))
        span = time.time() - t_load
        print(f"\nwhile the job trained ({span:.0f} s, job steps {steps_seen[0]} -> {steps_seen[-1]}):")
        for k, v in load.items():
            print("  " + summary(k, v))
        over = sum(1 for k in ("config", "sample", "job_status") for x in load[k] if x > 1.0)
        worst = max(pct([1000 * x for x in v], 95) for v in load.values())
        print(f"  requests over 1 s: {over} of {sum(len(v) for v in load.values())}; worst p95 {worst:.0f} ms "
              f"(target p95 <= 1000 ms: {'met' if worst <= 1000 else 'MISSED'})")
        sys.stdout.flush()
        if a.wait:
            while job_json(jobs_dir, job_id).get("state") in ("queued", "preparing", "running"):
                time.sleep(2)
            j = job_json(jobs_dir, job_id)
            print(f"\njob {job_id} {j.get('state')}: {j.get('message')}")
            print(f"run folder: {jobs_dir / job_id / 'run'}")
            try:
                wl = (jobs_dir / job_id / "worker.log").read_text(encoding="utf-8", errors="replace")
                started = [ln for ln in wl.splitlines() if ln.startswith("--- worker started")]
                print(f"worker log: {started[:1]}")
            except OSError:
                pass
            if j.get("started") and j.get("updated"):
                print(f"job wall time (worker start -> last update): {j['updated'] - j['started']:.0f} s")
        return 0
    finally:
        if job_id is not None:
            j = job_json(jobs_dir, job_id)
            if j.get("state") in ("queued", "preparing", "running"):
                try:
                    client.predict(job_id, api_name="/cancel_job")
                    t = time.time()
                    while job_json(jobs_dir, job_id).get("state") in ("preparing", "running") and time.time() - t < 60:
                        time.sleep(0.5)
                except Exception as e:  # noqa: BLE001
                    print(f"cancel failed: {e}", file=sys.stderr)
        if app.poll() is None:
            app.send_signal(signal.SIGINT)
            try:
                app.wait(20)
            except subprocess.TimeoutExpired:
                app.kill()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
