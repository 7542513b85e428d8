"""How often char-tang keeps a poem form: with the decoding constraint (what the product does) and
without it (what the model has learned on its own).

    .venv/bin/python bench/tang_forms.py [--model char-tang] [--n 200] [--forms 五言绝句 七言绝句] [--json]

Constrained: `TextPipeline.stream_poem(form, seed=i)` for seeds 0..n-1 (the same call as
`python -m aigc sample char-tang --form F --n N --seed 0 --json`), each poem checked with
aigc.text.forms.check_form. Free: the model continues the bare header 【form】 with no constraint
until it writes a blank line (or 200 characters), and the same checker judges the result. Also
reported: the share of generated clauses that occur verbatim in the training poems (copying), and
the distinct-clause rate. Target (issue 4): >= 95% of 200 poems of each quatrain form well-formed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    import torch
    from aigc.data.text import load_text_corpus
    from aigc.text import forms as F
    from aigc.pipelines.charlm import TextPipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="char-tang", help="a Tang poem model (name under weights/ or path)")
    ap.add_argument("--n", type=int, default=200, help="poems per form and mode (default 200)")
    ap.add_argument("--forms", nargs="+", default=["五言绝句", "七言绝句"], help="forms to test")
    ap.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    pipe = TextPipeline.from_pretrained(a.model)
    train, _, _, _ = load_text_corpus("tang")
    seen = {c for line in train.split("\n") if line and not line.startswith(F.HEADER_OPEN)
            for c, _ in F.clauses(line)}
    out = {"model": a.model, "n": a.n, "temperature": a.temperature, "forms": {}}
    for form in a.forms:
        res = {}
        for mode in ("constrained", "free"):
            t0 = time.perf_counter()
            ok, copied, total, distinct, reasons, example = 0, 0, 0, set(), {}, None
            for i in range(a.n):
                if mode == "constrained":
                    poem = list(pipe.stream_poem(form, seed=i, temperature=a.temperature))[-1].text
                else:
                    step = pipe.generate(F.header(form), max_new=200, temperature=a.temperature, seed=i,
                                         stop=["\n\n"])
                    poem = step.text
                r = F.check_form(poem, form)
                ok += r.ok
                if not r.ok:
                    key = r.reason.split(" ")[0] + " " + r.reason.split(" ")[-1]
                    reasons[key] = reasons.get(key, 0) + 1
                body = "\n".join(poem.split("\n")[1:])
                cl = [c for c, _ in F.clauses(body)]
                total += len(cl)
                copied += sum(c in seen for c in cl)
                distinct.update(cl)
                if example is None:
                    example = poem
            res[mode] = {"well_formed": round(ok / a.n, 4), "clauses": total,
                         "clauses_copied_from_training": round(copied / max(total, 1), 4),
                         "distinct_clauses": round(len(distinct) / max(total, 1), 4),
                         "seconds": round(time.perf_counter() - t0, 1), "failures": reasons,
                         "example": example}
        out["forms"][form] = res
    if a.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        for form, res in out["forms"].items():
            for mode, r in res.items():
                print(f"{form} {mode:11}: {100 * r['well_formed']:5.1f}% well-formed of {a.n}; "
                      f"{100 * r['clauses_copied_from_training']:.1f}% of clauses copied from training; "
                      f"{100 * r['distinct_clauses']:.1f}% distinct; {r['seconds']} s")
            print("  e.g.", res["constrained"]["example"].replace("\n", " / "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
