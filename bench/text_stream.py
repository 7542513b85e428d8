"""Streaming text generation speed on this CPU: characters per second and first-character latency.

    .venv/bin/python bench/text_stream.py [--model char-shakespeare] [--chars 400] [--threads 1 2] [--json]

Runs aigc.pipelines.charlm.TextPipeline.stream (what the studio's Text tab calls) with the key/value cache
(the default) and without it (every character recomputes the whole window), at each thread count.
Targets (issue 4): >= 500 chars/s and the first character within 100 ms. The first character's
latency includes reading the prompt. Each figure is the median of --repeats runs after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROMPT = ("ROMEO.\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
          "JULIET.\n")


def measure(pipe, chars: int, use_cache: bool, repeats: int) -> dict:
    rates, firsts = [], []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        first = None
        n = 0
        for step in pipe.stream(PROMPT, max_new=chars, temperature=0.8, seed=r, use_cache=use_cache):
            if first is None:
                first = time.perf_counter() - t0
            n = step.new_chars
        dt = time.perf_counter() - t0
        if r:                       # the first run warms up
            rates.append(n / dt)
            firsts.append(first * 1000)
    return {"chars_per_s": round(statistics.median(rates), 1), "first_char_ms": round(statistics.median(firsts), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="char-shakespeare")
    ap.add_argument("--chars", type=int, default=400)
    ap.add_argument("--nocache-chars", type=int, default=150, help="fewer: the uncached path is slow")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    import torch

    from aigc.pipelines.charlm import TextPipeline

    pipe = TextPipeline.from_pretrained(a.model)
    rows = []
    for th in a.threads:
        torch.set_num_threads(th)
        for use_cache in (True, False):
            res = measure(pipe, a.chars if use_cache else a.nocache_chars, use_cache, a.repeats)
            rows.append({"threads": th, "kv_cache": use_cache, **res})
    info = {"model": a.model, "params": pipe.model.num_params(), "block_size": pipe.block_size,
            "prompt_chars": len(PROMPT), "torch": torch.__version__, "rows": rows,
            "targets": {"chars_per_s": 500, "first_char_ms": 100}}
    if a.json:
        print(json.dumps(info))
    else:
        print(f"{a.model}: {info['params'] / 1e6:.1f}M parameters, context {pipe.block_size}, "
              f"prompt {len(PROMPT)} chars, torch {torch.__version__}")
        print(f"{'threads':>7} {'kv cache':>8} {'chars/s':>9} {'first char':>11}")
        for r in rows:
            print(f"{r['threads']:>7} {'yes' if r['kv_cache'] else 'no':>8} {r['chars_per_s']:>9.1f} "
                  f"{r['first_char_ms']:>9.1f} ms")
        print("targets: >= 500 chars/s, first character <= 100 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
