"""Text streaming as the browser sees it: Generate click -> first character, characters/s, the longest
gap between two updates of the page, and Stop click -> the status says "stopped".

    .venv/bin/python -m bench.text_stream_browser [--model char-shakespeare-small] [--lengths 500 5000]

(from the repository root: `-m` finds app.py and demo/ there)

Launches the studio (app.create on --weights) on a free port, drives Debian chromium through
Playwright, and records in the page (a 10 ms timer) every change of the output's length, so a
page too busy to run its timers shows up as a long gap. For each length: one full run, then one
run stopped half-way (the Stop button's answer time). Targets (issue 21): updates <= 10 a second
that stay fluent at 5,000 characters, Stop answered within 300 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
CHROMIUM = os.environ.get("AIGC_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

RECORD_JS = """() => {
  const el = document.querySelector('#text-output');
  const read = () => { const t = el.querySelector('textarea'); return t ? t.value.length : el.innerText.length; };
  window.__rec = []; let last = -1;
  clearInterval(window.__iv);
  window.__iv = setInterval(() => { const n = read();
    if (n !== last) { window.__rec.push([performance.now(), n]); last = n; } }, 10);
  window.__long = [];
  if (!window.__lo) { window.__lo = new PerformanceObserver(l => l.getEntries().forEach(
      e => window.__long.push(e.duration))); window.__lo.observe({entryTypes: ['longtask']}); }
  window.__t0 = performance.now();
}"""


def launch(weights: Path):
    import socket

    import app
    from demo import CSS

    app.configure_runtime()
    demo, _ = app.create(weights, warm=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    return demo, f"http://127.0.0.1:{port}/"


def one_run(page, length: int, stop_after_s: float | None) -> dict:
    page.fill("#text-max-length input[type=number]", str(length))
    page.press("#text-max-length input[type=number]", "Enter")
    page.evaluate(RECORD_JS)
    t_click = time.perf_counter()
    page.click("#text-generate")
    out = {"length": length}
    if stop_after_s is None:
        page.wait_for_function(f"""() => {{ const i = document.querySelector('#text-info');
            return window.__rec.length && window.__rec[window.__rec.length - 1][1] >= {length}
                   && i && !i.innerText.includes('writing'); }}""", timeout=600_000)
    else:
        page.wait_for_timeout(stop_after_s * 1000)
        t0 = time.perf_counter()
        page.click("#text-stop-btn", timeout=120_000)
        out["stop_click_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        try:
            page.wait_for_function("document.querySelector('#text-info').innerText.includes('stopped at')",
                                   timeout=60_000)
            out["stop_status_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        except Exception:  # noqa: BLE001 - older pages never say "stopped"; a short run may end first
            out["stop_status_ms"] = None
        out["status"] = page.locator("#text-info").inner_text()
    rec = page.evaluate("[window.__t0, window.__rec, window.__long]")
    out["longest_task_ms"] = round(max(rec[2], default=0.0), 1)
    out["busy_ms"] = round(sum(rec[2]), 1)
    t0, rows = rec[0], [r for r in rec[1][1:] if r[1] > 0]     # [0]: the page before the click
    if not rows:
        return {**out, "first_char_ms": None}
    gaps = [b[0] - a[0] for a, b in zip(rows, rows[1:])]
    span = (rows[-1][0] - rows[0][0]) / 1000
    out.update(first_char_ms=round(rows[0][0] - t0, 1), chars=rows[-1][1],
               chars_per_s=round((rows[-1][1] - rows[0][1]) / span, 1) if span > 0 else None,
               updates=len(rows), max_gap_ms=round(max(gaps), 1) if gaps else 0.0,
               click_to_last_s=round(time.perf_counter() - t_click, 2))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(ROOT / "weights"))
    ap.add_argument("--model", default="char-shakespeare-small")
    ap.add_argument("--lengths", type=int, nargs="+", default=[500, 5000])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    demo, url = launch(Path(a.weights))
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("tab", name="Text").first.click()
            page.wait_for_selector("#text-generate")
            page.select_option("#text-model select", a.model) if page.locator("#text-model select").count() \
                else _pick(page, a.model)
            for n in a.lengths:
                full = one_run(page, n, None)
                stopped = one_run(page, n, max(0.5, 0.5 * full["click_to_last_s"]))
                rows.append({"full": full, "stopped": stopped})
                print(f"{a.model} {n:>5} chars: first char {full['first_char_ms']} ms, "
                      f"{full['chars_per_s']} chars/s in the page, {full['updates']} updates, longest gap "
                      f"{full['max_gap_ms']} ms, longest page task {full['longest_task_ms']} ms; Stop: click {stopped.get('stop_click_ms')} ms, status "
                      f"'stopped at' after {stopped.get('stop_status_ms')} ms", flush=True)
            browser.close()
    finally:
        demo.close()
    if a.json:
        print(json.dumps(rows, indent=1))
    return 0


def _pick(page, name: str) -> None:
    page.click("#text-model input")
    page.get_by_role("option", name=name, exact=True).click()


if __name__ == "__main__":
    sys.exit(main())
