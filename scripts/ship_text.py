"""Ship a trained char-lm run as a model under weights/: weights, training record, held-out score,
samples on fixed seeds and a model card with the commands that reproduce it.

    .venv/bin/python -m scripts.ship_text RUN NAME --title T --summary S --train-command C \\
        --hardware H [--extra-file F] [--prompts P ...] [--poems]

RUN is a training run folder (its model/ is copied), NAME the folder under weights/. The
held-out cross-entropy is computed exactly as `python -m aigc eval NAME --heldout --json` does
and stored in metrics.json, along with the run's time-to-target if it reached one. The copy is
atomic: the new folder is built beside weights/NAME and swapped in with os.replace.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from aigc import checkpoint as ckpt
    from scripts.shiputil import add_card_args, stage, swap_in
    from aigc.finetune.cards import write_card
    from aigc.hub import record_metrics
    from aigc.data.text import load_text_corpus
    from aigc.cli.text import score_text
    from aigc.pipelines.charlm import TextPipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_card_args(ap)
    ap.add_argument("--prompts", nargs="*", default=["\n"], help="prompts for samples.txt")
    ap.add_argument("--poems", action="store_true", help="samples.txt: one poem of every form (Tang models)")
    a = ap.parse_args(argv)

    tmp, dest = stage(Path(a.run), a.name)
    run = Path(a.run)

    model = ckpt.from_pretrained(tmp)
    dataset = model.meta.get("dataset")
    _, val, _, _ = load_text_corpus(dataset)
    res = score_text(model, val)
    res.update({"dataset": dataset, "split": "held-out", "params": sum(p.numel() for p in model.parameters())})
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    if summary.get("time_to_target"):
        res["time_to_target"] = summary["time_to_target"]
    record_metrics(tmp, res)

    pipe = TextPipeline(model, name=a.name)
    parts = []
    if a.poems and pipe.forms:
        for i, form in enumerate(pipe.forms):
            poem = list(pipe.stream_poem(form, seed=i, temperature=0.8))[-1].text
            parts.append(f"--- {form}, seed {i}, temperature 0.8 (python -m aigc sample {a.name} --form {form} "
                         f"--n 1 --seed {i}) ---\n{poem}\n")
    for i, p in enumerate(a.prompts):
        text = pipe.generate(p, max_new=300, temperature=0.8, seed=i).text
        parts.append(f"--- prompt {p!r}, seed {i}, temperature 0.8 ---\n{p}{text}\n")
    ckpt.atomic_write_text(tmp / "samples.txt", "\n".join(parts))

    extra = Path(a.extra_file).read_text(encoding="utf-8") if a.extra_file else ""
    write_card(tmp, title=a.name, summary=a.summary, train_command=a.train_command,
               eval_command=f"python -m aigc eval {a.name} --heldout --json", hardware=a.hardware, extra=extra)
    swap_in(tmp, dest)
    print(json.dumps(res, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
