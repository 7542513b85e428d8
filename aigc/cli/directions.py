"""`aigc directions`: compute and store the latent directions of saved models (image models:
principal directions of their training images' latents; a text VAE: of n training lines' posterior
means)."""
from __future__ import annotations

import json


def register(sub) -> None:
    s = sub.add_parser("directions", help="compute and store latent directions of saved image models or a text VAE",
                       description=__doc__)
    s.add_argument("models", nargs="*", help="names under weights/ or paths (default: every image model)")
    s.add_argument("-k", type=int, default=10, help="image models: principal directions per model")
    s.add_argument("--force", action="store_true", help="image models: recompute even if stored")
    s.add_argument("--n", type=int, default=10000, help="text VAE: training lines to encode (seeded choice)")
    s.add_argument("--seed", type=int, default=0, help="text VAE: seed of the choice of lines")
    s.set_defaults(func=cmd_directions)


def _text_vae(path, n: int, seed: int) -> None:
    import torch

    from aigc.data.lines import load_line_corpus
    from aigc.pipelines.textvae import TextVAEPipeline, store_directions
    pipe = TextVAEPipeline.from_pretrained(path)
    train, _, _, _ = load_line_corpus(pipe.model.meta.get("dataset") or "tang-lines")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    d = store_directions(pipe, [train[i] for i in order])
    print(json.dumps({"model": pipe.name, "lines": min(n, len(train)), "directions": pipe.directions(),
                      "dim_order": d.dim_order}, ensure_ascii=False))


def _image(name, k: int, force: bool) -> None:
    from aigc.latent import NAMES_FILE, VECTORS_FILE, ensure_directions, training_images
    from aigc.pipelines.image import ImagePipeline
    pipe = ImagePipeline.from_pretrained(name)
    if force:
        for f in (VECTORS_FILE, NAMES_FILE):
            (pipe.path / f).unlink(missing_ok=True)
    d = ensure_directions(pipe, training_images(pipe.model), k=k)
    top = ", ".join(f"{x:.2f}" for x in d.explained[:5].tolist())
    print(f"{pipe.name}: {len(d)} directions ({d.method}); explained {top}")


def cmd_directions(args) -> int:
    from aigc.checkpoint import read_config
    from aigc.hub import list_models, resolve_model_path
    from aigc.cli.common import UsageError
    if args.n < 1 or args.k < 1:
        raise UsageError("-k and --n must be at least 1")
    names = args.models or [r["path"] for r in list_models() if r.get("modality") == "image" and not r.get("error")]
    for name in names:
        path = resolve_model_path(name)
        if read_config(path).get("kind") == "text-vae":
            _text_vae(path, args.n, args.seed)
        else:
            _image(path, args.k, args.force)
    return 0
