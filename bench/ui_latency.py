"""How immediate the studio feels: slider change -> new image.

Measures, on this machine:
  render    server-side time of one slider change (the /edit handler: one decode, enlargement,
            recipe) and of the PNG encoding Gradio adds, in process
  client    round trip through gradio_client: predict(api_name="/edit") until the image file
            is on disk here
  browser   Debian chromium (Playwright): from the slider's input event until the new image is
            decoded in the page
  start     `python app.py` started -> the page answers HTTP 200, and -> the first /sample
            comes back (torch and the weights load on a thread while the page is served)

Usage (from the repository root, so that app.py is found): python -m bench.ui_latency [--weights weights] [--model dcgan-mnist] [-n 100] [--json out.json]
Without shipped models under --weights it builds full-size untrained ones of the same
architectures in a temporary folder (the timings depend on the architecture, not on the training).
gradio_client itself waits in steps of 50 ms for the server's messages (its SSE reader polls),
so ~50 ms of every client figure is the client's own.
Targets: p95 <= 150 ms through gradio_client and in the browser, render <= 10 ms, start <= 8 s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
CHROMIUM = os.environ.get("AIGC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHIPPED = ["vae-mnist", "dcgan-mnist", "seed-gan-mnist", "vae-fashion", "dcgan-fashion", "seed-gan-fashion"]


def stats(ms: list[float]) -> dict:
    s = sorted(ms)
    pick = lambda q: s[min(len(s) - 1, int(round(q * (len(s) - 1))))]  # noqa: E731
    return {"n": len(s), "p50": round(statistics.median(s), 2), "p95": round(pick(0.95), 2),
            "max": round(s[-1], 2)}


def stand_in_weights(folder: Path) -> Path:
    """Full-size, untrained models with the shipped architectures (dataset mnist)."""
    import torch

    from aigc import checkpoint as ckpt
    from aigc.kinds import build

    torch.manual_seed(0)
    for kind in ("vae", "dcgan", "seed-gan"):
        kw = {"class_names": [str(i) for i in range(10)]} if kind == "dcgan" else {}
        ckpt.save_pretrained(build(kind, **kw), folder / f"{kind}-mnist", meta={"dataset": "mnist"})
    return folder


def values(n: int) -> list[float]:
    """Slider positions a hand might visit: a sweep back and forth, never the same twice in a row."""
    out, v, step = [], 0.0, 0.15
    for _ in range(n):
        v += step
        if abs(v) > 2.9:
            step = -step
            v += 2 * step
        out.append(round(v, 2))
    return out


def bench_render(demo, model: str, n: int) -> dict:
    from gradio import processing_utils

    from demo.image_handlers import new_state

    st = demo.studio
    _, _, s = st.sample(model, "any", 1, 1, 1.0, new_state())
    s = st.open_sample(s, 0)[-1]
    for v in values(5):
        st.edit(s, {"dir1": v})
    handler, encode = [], []
    cache = tempfile.mkdtemp(prefix="bench-png-")
    for v in values(n):
        t = time.perf_counter()
        img, _ = st.edit(s, {"dir1": v, "dir2": -v / 2})
        t1 = time.perf_counter()
        processing_utils.save_pil_to_cache(img, cache, format="png")
        t2 = time.perf_counter()
        handler.append((t1 - t) * 1000)
        encode.append((t2 - t) * 1000)
    shutil.rmtree(cache, ignore_errors=True)
    return {"handler": stats(handler), "handler+png": stats(encode)}


def bench_client(url: str, model: str, n: int) -> dict:
    """Ways a script can call /edit. gradio_client opens a new httpx client for every request and
    every file it downloads, and httpx loads the certificate store each time (~30 ms on this
    machine, even for an http:// URL). So: its defaults; one shared ssl.SSLContext passed as
    ssl_verify (certificates still verified, loaded once); download_files=False (the rendered
    image's URL comes back, nothing is fetched)."""
    import ssl

    import certifi
    from gradio_client import Client

    ctx = ssl.create_default_context(cafile=certifi.where())
    out = {}
    for name, kw in [("download", {}), ("download_shared_ssl_context", {"ssl_verify": ctx}),
                     ("url_only", {"download_files": False}),
                     ("url_only_shared_ssl_context", {"download_files": False, "ssl_verify": ctx})]:
        c = Client(url, verbose=False, **kw)
        c.predict(model, "any", 1, 1, 1.0, api_name="/sample")
        c.predict(0, api_name="/open")
        for v in values(5):
            c.predict({"dir1": v}, api_name="/edit")
        ms = []
        for v in values(n):
            t = time.perf_counter()
            res = c.predict({"dir1": v}, api_name="/edit")
            ms.append((time.perf_counter() - t) * 1000)
            assert (Path(res).is_file() if "download" in name else bool(res))
        out[name] = stats(ms)
    return out


JS_MOVE = """async (v) => {
  const img = document.querySelector('#editor img');
  const old = img ? img.src : '';
  const r = document.querySelector('#dir1 input[type=range]');
  const t0 = performance.now();
  r.value = String(v);
  r.dispatchEvent(new Event('input', {bubbles: true}));
  return await new Promise((resolve, reject) => {
    const check = () => {
      const i = document.querySelector('#editor img');
      if (i && i.src !== old && i.complete && i.naturalWidth > 0) resolve(performance.now() - t0);
      else if (performance.now() - t0 > 10000) reject(new Error('no new image within 10 s'));
      else setTimeout(check, 1);
    };
    check();
  });
}"""


def bench_browser(url: str, model: str, n: int) -> dict | None:
    if not os.path.exists(CHROMIUM):
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_selector("#sample")
        page.click("#model input")
        page.click(f"ul[role=listbox] >> text={model}")
        page.click("#sample")
        page.wait_for_function("(() => { const i = document.querySelector('#gallery img');"
                               " return i && i.complete && i.naturalWidth > 0; })()")
        box = page.locator("#gallery img").bounding_box()          # the grid is one picture: its first tile
        page.mouse.click(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.1)
        page.wait_for_selector("#editor img")
        page.wait_for_timeout(300)
        for v in values(5):
            page.evaluate(JS_MOVE, v)
        ms = [page.evaluate(JS_MOVE, v) for v in values(n)]
        b.close()
    return stats(ms)


def bench_start(weights: Path, runs: int, model: str) -> dict:
    """`python app.py` -> page answers HTTP 200 (serving), and -> first /sample answered (the
    weights load on a thread meanwhile, so this is later)."""
    from gradio_client import Client

    serving, first = [], []
    for _ in range(runs):
        port = free_port()
        env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), "--weights", str(weights)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("app.py exited before serving")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.perf_counter() - t > 60:
                    raise RuntimeError("app.py did not serve within 60 s")
                time.sleep(0.05)
            serving.append(time.perf_counter() - t)
            Client(f"http://127.0.0.1:{port}/", verbose=False, ssl_verify=False).predict(
                model, "any", 1, 1, 1.0, api_name="/sample")
            first.append(time.perf_counter() - t)
        finally:
            proc.terminate()
            proc.wait(10)
    rnd = lambda d: {k: (round(v, 2) if k != "n" else v) for k, v in d.items()}  # noqa: E731
    return {"serving_s": rnd(stats(serving)), "first_sample_s": rnd(stats(first))}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(ROOT / "weights"))
    ap.add_argument("--model", default=None, help="model to edit (default: dcgan-mnist, the slowest decoder)")
    ap.add_argument("-n", type=int, default=100, help="slider changes per measurement")
    ap.add_argument("--start-runs", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma list of: render,client,browser,start")
    ap.add_argument("--json", default=None, help="write the figures here too")
    a = ap.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))

    import app

    weights = Path(a.weights)
    tmp = None
    have = [m for m in SHIPPED if (weights / m / "config.json").is_file()]
    if not have:
        tmp = Path(tempfile.mkdtemp(prefix="bench-weights-"))
        weights = stand_in_weights(tmp)
        print(f"no shipped models under {a.weights}: using full-size untrained stand-ins in {weights}")
    model = a.model or ("dcgan-mnist" if (weights / "dcgan-mnist").is_dir() else (have or ["dcgan-mnist"])[0])
    result = {"model": model, "weights": str(a.weights if not tmp else "stand-ins"), "cores": os.cpu_count(),
              "load_avg_before": round(os.getloadavg()[0], 2)}
    demo, registry = app.create(weights, warm=False)
    import torch

    result["torch_threads"] = torch.get_num_threads()
    for name in registry.image_models():
        registry.get(name).directions()        # computed once and stored, as the warm-up would
    if "render" not in skip:
        result["render_ms"] = bench_render(demo, model, a.n)
        print("render ms", result["render_ms"], flush=True)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        if "client" not in skip:
            result["client_ms"] = bench_client(url, model, a.n)
            print("gradio_client ms", result["client_ms"], flush=True)
        if "browser" not in skip:
            result["browser_ms"] = bench_browser(url, model, a.n)
            print("browser ms", result["browser_ms"], flush=True)
    finally:
        demo.close()
    if "start" not in skip:
        result["start_s"] = bench_start(weights, a.start_runs, model)
        print("start s", result["start_s"], flush=True)
    result["load_avg_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
