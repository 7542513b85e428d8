"""Ship a trained image run as a model under weights/: weights, training record, measured metrics,
a sample grid on seed 0, latent directions and a model card with the commands that reproduce it.

    .venv/bin/python -m scripts.ship_image RUN NAME --eval-json FILE --title T --summary S \\
        --train-command C --hardware H [--extra-file F]

RUN is a training run folder (its model/ is copied), NAME the folder under weights/. FILE is the
JSON object printed by the evaluation command written into the card (`python -m aigc eval NAME
--metrics ... --json`, run on RUN/model before shipping): its numbers go into metrics.json as
printed, nothing is recomputed or rounded here. The copy is atomic: the new folder is built beside
weights/NAME and swapped in with os.replace.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from aigc import checkpoint as ckpt
    from scripts.shiputil import add_card_args, stage, swap_in
    from aigc.finetune.cards import write_card
    from aigc.hub import record_metrics
    from aigc.latent import ensure_directions, training_images
    from aigc.pipelines.image import ImagePipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_card_args(ap, title_required=False)
    ap.add_argument("--eval-json", required=True, help="the JSON printed by `python -m aigc eval ... --json`")
    ap.add_argument("--eval-command", default=None,
                    help="the evaluation command for the card (default: fid,kid,domain_fd,label_acc,diversity on 10,000 samples)")
    a = ap.parse_args(argv)

    result = json.loads(Path(a.eval_json).read_text())
    if not isinstance(result, dict) or "n" not in result:
        raise SystemExit(f"{a.eval_json}: not the JSON object `aigc eval --json` prints")
    tmp, dest = stage(Path(a.run), a.name, drop=("directions.json", "directions.safetensors", "README.md"))
    record_metrics(tmp, result)

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "aigc", "sample", str(tmp), "--n", "64", "--seed", "0",
                    "--out", str(tmp / "samples.png")], check=True, env=env, cwd=ROOT)
    pipe = ImagePipeline.from_pretrained(tmp)
    ensure_directions(pipe, training_images(pipe.model))

    eval_command = a.eval_command or (f"python -m aigc eval {a.name} --metrics fid,kid,domain_fd,label_acc,diversity "
                                      f"--n 10000 --json")
    extra = Path(a.extra_file).read_text(encoding="utf-8") if a.extra_file else ""
    write_card(tmp, title=a.title or a.name, summary=a.summary, train_command=a.train_command,
               eval_command=eval_command, hardware=a.hardware, extra=extra)
    swap_in(tmp, dest)
    print(json.dumps({k: v for k, v in ckpt.read_metrics(dest).items() if k != "protocol"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
