"""`aigc cluster NAME --images X.npz`: a VaDE's cluster of each picture (and its posterior)."""
from __future__ import annotations

import json
from pathlib import Path

from aigc.cli.common import UsageError
from aigc.limits import SAMPLE_NPZ_MAX


def register(sub) -> None:
    s = sub.add_parser("cluster", help="cluster pictures with a saved VaDE model")
    s.add_argument("name", help="a VaDE model under weights/, or a path to a saved one")
    s.add_argument("--images", required=True, metavar="X.npz",
                   help="an .npz holding uint8 `images`, N x H x W or N x H x W x C (as `aigc sample --out x.npz` writes)")
    s.add_argument("--probs", action="store_true", help="also give each picture's posterior q(c|x) over the clusters")
    s.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    s.add_argument("--json", action="store_true", help="print one JSON object {\"clusters\": [...]}")
    s.set_defaults(func=cmd_cluster)


def read_images(path: str | Path):
    """The uint8 `images` of an .npz as N x H x W x C (a grey N x H x W gets C = 1)."""
    import numpy as np

    path = Path(path)
    if path.suffix.lower() != ".npz" or not path.is_file():
        raise UsageError(f"--images {path}: not an .npz file")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "images" not in f:
                raise UsageError(f"{path.name} has no 'images' array (found: {', '.join(f.files) or 'nothing'})")
            images = f["images"]
    except (OSError, ValueError) as e:
        raise UsageError(f"--images {path.name}: not a readable .npz ({str(e).splitlines()[0] if str(e) else e})")
    if images.dtype != np.uint8:
        raise UsageError(f"{path.name}: 'images' must be uint8 pixels, not {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or len(images) == 0:
        raise UsageError(f"{path.name}: 'images' must be N x H x W or N x H x W x C with N >= 1")
    if len(images) > SAMPLE_NPZ_MAX:
        raise UsageError(f"{path.name}: at most {SAMPLE_NPZ_MAX:,} images at a time")
    return images


def cmd_cluster(args) -> int:
    from aigc.checkpoint import read_config
    from aigc.hub import resolve_model_path
    from aigc.pipelines.image import ImagePipeline
    path = resolve_model_path(args.name)
    kind = read_config(path).get("kind")
    if kind != "vade":
        raise UsageError(f"{args.name} is a {kind}, not a vade: only a VaDE model clusters pictures")
    images = read_images(args.images)
    pipe = ImagePipeline.from_pretrained(path, device=args.device)
    c, h, w = pipe.model.image_shape
    if tuple(images.shape[1:]) != (h, w, c):
        got = "x".join(map(str, images.shape[1:]))
        raise UsageError(f"{Path(args.images).name}: images are {got} (H x W x C); {pipe.name} takes {h}x{w}x{c}")
    probs = pipe.cluster_posterior(images)
    clusters = probs.argmax(1)
    if args.json:
        out = {"clusters": [int(c) for c in clusters]}
        if args.probs:
            out["probs"] = [[round(float(p), 6) for p in row] for row in probs]
        print(json.dumps(out))
        return 0
    import numpy as np
    counts = np.bincount(clusters, minlength=pipe.n_clusters)
    print(f"{len(images)} pictures in {int((counts > 0).sum())} of {pipe.name}'s {pipe.n_clusters} clusters")
    for k, n in enumerate(counts):
        if n:
            print(f"  cluster {k}: {int(n)} ({n / len(images):.0%})")
    if args.probs:
        for i, row in enumerate(probs):
            print(f"  picture {i}: " + " ".join(f"{p:.3f}" for p in row))
    return 0
