"""Build the 500-image colour upload used by issue 5's benchmark (bench/README.md, "Fine-tune").

Source: the npm package `emoji-datasource-google` (version pinned below), whose 64x64 PNGs are
Google's Noto Color Emoji (images: Apache License 2.0; the package itself: MIT). Fetch it once at
preparation time with npm's own client, then run this script (nothing is downloaded here):

    mkdir -p runs/colour && (cd runs/colour && npm pack emoji-datasource-google@16.0.0)
    python bench/make_colour_upload.py            # -> runs/colour/emoji-faces-500.zip

The kind: **emoji faces and heads** -- every "face-*" smiley of the "Smileys & Emotion" category
(plus cat and monkey faces), and the "person" and "person-role" emoji of "People & Body" (heads and
busts, with their five skin tones). The candidates are flattened on white (as the upload checker
does), near duplicates are removed with the same check the upload checker uses at 32x32, and 500
are drawn with a fixed seed. The zip holds the 64x64 originals (PNG with alpha) at its root, so the
upload has no classes. The printed sha256 of the sorted file list makes the selection checkable.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
from aigc.data.uploads import _square, find_duplicates  # noqa: E402  (the upload checker's own steps)

VERSION = "16.0.0"
SUBCATS_PEOPLE = ("person", "person-role")


def wanted(e: dict) -> bool:
    sc = e.get("subcategory", "")
    if e.get("category") == "Smileys & Emotion":
        return sc.startswith("face-") or sc in ("cat-face", "monkey-face")
    return e.get("category") == "People & Body" and sc in SUBCATS_PEOPLE


def emoji_images(t: tarfile.TarFile):
    """Yield (emoji entry, file name, raw 64x64 PNG) for every Noto emoji of the package and each of
    its skin tones, in the package's sort order."""
    emoji = json.load(t.extractfile("package/emoji.json"))
    members = {m.name: m for m in t.getmembers()}
    for e in sorted(emoji, key=lambda e: e["sort_order"]):
        files = [e["image"]] + [v["image"] for _, v in sorted(e.get("skin_variations", {}).items())
                                if v.get("has_img_google")]
        for f in files:
            m = members.get(f"package/img/google/64/{f}")
            if m is not None:
                yield e, f, t.extractfile(m).read()


def flatten(raw: bytes, size: int = 32) -> np.ndarray:
    """A PNG with alpha -> size x size x 3 uint8, flattened on white and squared as the upload
    checker prepares images."""
    im = Image.open(io.BytesIO(raw)).convert("RGBA")
    bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return _square(np.asarray(Image.alpha_composite(bg, im).convert("RGB")), size)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tarball", default=str(ROOT / "runs" / "colour" / f"emoji-datasource-google-{VERSION}.tgz"))
    ap.add_argument("--out", default=str(ROOT / "runs" / "colour" / "emoji-faces-500.zip"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    tb = Path(a.tarball)
    if not tb.is_file():
        print(f"{tb}: missing; run `npm pack emoji-datasource-google@{VERSION}` in {tb.parent}", file=sys.stderr)
        return 2
    t = tarfile.open(tb)
    meta = json.load(t.extractfile("package/package.json"))
    names, raws, flat = [], [], []
    for e, f, raw in emoji_images(t):
        if wanted(e):
            flat.append(flatten(raw))
            names.append(f)
            raws.append(raw)
    keep, n_exact, n_near = find_duplicates(np.stack(flat))
    pool = np.flatnonzero(keep)
    if len(pool) < a.n:
        print(f"only {len(pool)} distinct candidates (< {a.n})", file=sys.stderr)
        return 2
    pick = np.sort(np.random.default_rng(a.seed).choice(pool, a.n, replace=False))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:       # PNGs are compressed already
        for i in pick:
            z.writestr(names[i], raws[i])
    listing = hashlib.sha256("\n".join(sorted(names[i] for i in pick)).encode()).hexdigest()
    print(f"source: npm {meta['name']}@{meta['version']} (package licence {meta.get('license')}; "
          f"Noto emoji images Apache-2.0)")
    print(f"candidates: {len(flat)} (faces + person + person-role, with skin tones); "
          f"duplicates at 32x32: {n_exact} exact, {n_near} near; distinct: {len(pool)}")
    print(f"wrote {out} ({out.stat().st_size / 2**20:.2f} MiB): {a.n} images drawn with seed {a.seed}; "
          f"sha256 of the sorted names: {listing[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
