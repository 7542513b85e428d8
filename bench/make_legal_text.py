"""Issue 5, target 2: ~100 KB of a new kind of English (software licences: legal English) for
fine-tuning the Shakespeare character model, and held-out licences of the same kind to score.

Source: the licence texts Debian ships in /usr/share/common-licenses (package base-files), read
offline. Documents that are near copies of each other (GPL = GPL-3, GFDL = GFDL-1.3, LGPL = LGPL-3,
LGPL-2 ~ LGPL-2.1, GFDL-1.2 ~ GFDL-1.3, GPL-1 ~ GPL-2, MPL-1.1 ~ MPL-2.0 in parts) are kept on one
side only, so the held-out file shares no document with the training file:

  train   GPL-3, GPL-2, LGPL-2.1, GFDL-1.3                     (~100 KB; `aigc finetune` itself keeps
                                                               its last 10% out of training)
  heldout Apache-2.0, MPL-2.0, Artistic, CC0-1.0, BSD          (~43 KB; never seen in training)

    python bench/make_legal_text.py        # -> runs/text/legal-train.txt, runs/text/legal-heldout.txt
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = Path("/usr/share/common-licenses")
TRAIN = ("GPL-3", "GPL-2", "LGPL-2.1", "GFDL-1.3")
HELDOUT = ("Apache-2.0", "MPL-2.0", "Artistic", "CC0-1.0", "BSD")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "text"))
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, docs in (("legal-train.txt", TRAIN), ("legal-heldout.txt", HELDOUT)):
        missing = [d for d in docs if not (SRC / d).is_file()]
        if missing:
            print(f"missing in {SRC}: {', '.join(missing)} (Debian's base-files package ships them)", file=sys.stderr)
            return 2
        text = "\n\n".join((SRC / d).read_text(encoding="utf-8").strip("\n") for d in docs) + "\n"
        (out / name).write_text(text, encoding="utf-8")
        print(f"{out / name}: {len(text.encode()):,} bytes, {len(text):,} chars from {', '.join(docs)}; "
              f"sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
