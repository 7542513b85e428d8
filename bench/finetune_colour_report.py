"""Issue 5, target 1: what a model trained on the colour upload learned, in figures and a picture.

    python bench/finetune_colour_report.py RUN_FOLDER [--png bench/finetune_emoji_faces.png]

RUN_FOLDER is the run of the job (runs/serve/jobs/<id>/run, or a `python -m aigc finetune --out`
folder). Prints:
  - the quality the run measured while it trained (stats.jsonl: kid_randconv = KID in the features
    of a fixed *untrained* conv net, NOT Inception KID; copy_rate), at the start, along the way and
    at the end, with the step rate;
  - reference points on the same scale, measured here with the same metric code: 256 of the
    upload's own images (a perfect copier: the floor of the KID, copy rate 100%), 256 emoji of
    *other* kinds from the same package (food, objects, places, animals: the same style and
    palette, another subject);
  - the final model's figures again on 500 fresh samples (seed 1).
Writes a PNG: left, 64 images of the upload as the model sees them (32x32); right, 64 samples
of the final model (seed 0), both at 2x; with --extra MODEL_DIR, one more panel per model.
"""
from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

from aigc.checkpoint import from_pretrained  # noqa: E402
from aigc.data.images import ImageData  # noqa: E402
from aigc.data.uploads import prepare_image_zip  # noqa: E402
from aigc.eval import generate_samples  # noqa: E402
from aigc.eval.metrics import EvalContext  # noqa: E402
from aigc.eval.tracking import copy_rate, kid_randconv  # noqa: E402
from aigc.data.grid import make_grid  # noqa: E402
from make_colour_upload import flatten  # noqa: E402

OTHER = ("Food & Drink", "Objects", "Travel & Places", "Animals & Nature")


def measure(images: np.ndarray, ref: ImageData) -> dict:
    ctx = EvalContext(dataset=ref.name, device=torch.device("cpu"), n=len(images), images=images, reference=ref)
    return {**kid_randconv(ctx), **copy_rate(ctx)}


def other_emoji(tarball: Path, n: int, seed: int = 0) -> np.ndarray:
    t = tarfile.open(tarball)
    emoji = json.load(t.extractfile("package/emoji.json"))
    members = {m.name: m for m in t.getmembers()}
    files = sorted(e["image"] for e in emoji if e.get("category") in OTHER
                   and f"package/img/google/64/{e['image']}" in members)
    pick = np.sort(np.random.default_rng(seed).choice(len(files), n, replace=False))
    out = []
    for i in pick:
        out.append(flatten(t.extractfile(members[f"package/img/google/64/{files[i]}"]).read()))
    return np.stack(out)


def fmt(r: dict) -> str:
    return f"KID_randconv x1000 {1000 * r['kid_randconv']:8.2f}   copy rate {100 * r['copy_rate']:5.1f}%"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--zip", default=None, help="the upload (default: the one in the run's job folder)")
    ap.add_argument("--tarball", default=str(ROOT / "runs" / "colour" / "emoji-datasource-google-16.0.0.tgz"))
    ap.add_argument("--png", default=str(ROOT / "bench" / "finetune_emoji_faces.png"))
    ap.add_argument("--extra", action="append", default=[], metavar="MODEL_DIR",
                    help="another model whose 64 samples (seed 0) are added as a panel on the right (repeatable)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = Path(a.run)
    stats = [json.loads(ln) for ln in (run / "stats.jsonl").read_text().splitlines() if ln.strip()]
    opts = json.loads((run / "options.json").read_text())
    q = [r for r in stats if "kid_randconv" in r]
    rates = [r["img_per_s"] for r in stats if "img_per_s" in r]
    last = stats[-1]
    print(f"run {run}: {last['step']} steps, batch {opts.get('batch_size')}, "
          f"{last.get('time_s', 0):.0f} s of training; median {np.median(rates):.1f} img/s "
          f"({np.median(rates) / opts.get('batch_size', 32):.2f} steps/s)")
    print("quality measured during training (256 samples, fixed seed, against all upload images):")
    for r in q:
        print(f"  step {r['step']:>5}  t={r.get('time_s', 0):6.0f} s  {fmt(r)}")
    zip_path = Path(a.zip) if a.zip else next((run.parent / "data").glob("*.zip"), None)
    if zip_path is None:
        print("no upload found: pass --zip", file=sys.stderr)
        return 2
    prep = prepare_image_zip(zip_path, resolution=32)
    ref = prep.data
    ref = ImageData("upload", ref.images)
    rng = np.random.default_rng(0)
    own = ref.images[np.sort(rng.choice(len(ref), 256, replace=False))]
    print("\nreference points, same metric, against all upload images:")
    print(f"  256 of the upload's own images (perfect copies)   {fmt(measure(own, ref))}")
    if Path(a.tarball).is_file():
        oth = other_emoji(Path(a.tarball), 256)
        print(f"  256 emoji of other kinds ({', '.join(OTHER)})   {fmt(measure(oth, ref))}")
    model = from_pretrained(run / "model")
    fresh, _ = generate_samples(model, 500, seed=1)
    print(f"  500 fresh samples of the final model (seed 1)      {fmt(measure(fresh, ref))}")
    grid_s, _ = generate_samples(model, 64, seed=0)
    left = make_grid(np.ascontiguousarray(ref.images[np.sort(rng.choice(len(ref), 64, replace=False))]), nrow=8, scale=2)
    panels = [left, make_grid(grid_s, nrow=8, scale=2)]
    for m in a.extra:
        panels.append(make_grid(generate_samples(from_pretrained(m), 64, seed=0)[0], nrow=8, scale=2))
    gap = 16
    canvas = Image.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), max(p.height for p in panels)),
                       (255, 255, 255))
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width + gap
    canvas.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(a.png, optimize=True)
    print(f"\nwrote {a.png} ({Path(a.png).stat().st_size / 1024:.0f} KiB): left 64 upload images, then 64 samples "
          f"(seed 0) of the run's model" + "".join(f", of {m}" for m in a.extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
