"""`aigc sample NAME`: images into a grid (.png) or raw samples (.npz), drawn in batches; text models
print (aigc.cli.text)."""
from __future__ import annotations

from pathlib import Path

from aigc.cli.common import UsageError
from aigc.limits import SAMPLE_BATCH, SAMPLE_NPZ_MAX, SAMPLE_PNG_MAX

IMAGE_SUFFIXES = (".png", ".npz")


def register(sub) -> None:
    s = sub.add_parser("sample", help="draw samples from a saved model")
    s.add_argument("name", help="a model folder name under weights/, or a path to a saved model")
    s.add_argument("--n", type=int, default=16,
                   help=f"number of samples (default 16; up to {SAMPLE_PNG_MAX:,} in a .png, {SAMPLE_NPZ_MAX:,} in an .npz)")
    s.add_argument("--seed", type=int, default=0, help="random seed: same seed, same samples (default 0)")
    s.add_argument("--label", default=None, help="class index or name for class-conditional models")
    s.add_argument("--cluster", type=int, default=None, help="VaDE models: draw from this cluster (0..K-1)")
    s.add_argument("--temperature", type=float, default=None,
                   help="images: latent scale (truncation / prior temperature, default 1); text: sampling temperature (0 = greedy)")
    s.add_argument("--out", default=None, help="FILE.png writes a grid, FILE.npz raw uint8 samples (images, labels)")
    s.add_argument("--nrow", type=int, default=None, help="images per grid row (default: square)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    s.add_argument("--prompt", default="", help="text models: the text to continue")
    s.add_argument("--max-new", type=int, default=300, help="text models: characters to generate (default 300)")
    s.add_argument("--top-k", type=int, default=None, help="text models: keep the k most likely characters")
    s.add_argument("--top-p", type=float, default=None, help="text models: nucleus sampling mass in (0, 1]")
    s.add_argument("--json", action="store_true", help="text models: print a JSON list of strings")
    s.add_argument("--form", default=None, help="Tang poem models: 五言绝句, 七言绝句, 五言律诗 or 七言律诗 (keeps the form's lines)")
    s.add_argument("--title", default="", help="Tang poem models with --form: the poem's title (default: the model writes one)")
    s.add_argument("--first-line", default="", help="Tang poem models with --form: the first line (or clause) of the poem")
    s.add_argument("--interpolate", nargs=2, metavar=("LINE_A", "LINE_B"), default=None,
                   help="text VAE: decode every step of the latent path between two lines")
    s.add_argument("--steps", type=int, default=8, help="text VAE with --interpolate: steps including both ends (default 8)")
    s.set_defaults(func=cmd_sample)


def draw(pipe, n: int, seed: int, label=None, temperature: float = 1.0, cluster=None):
    """n samples of an image pipeline from one seed, decoded SAMPLE_BATCH at a time (the same
    latents and labels as one call of `pipe(n, seed)`); a VaDE's from one `cluster` if given."""
    import numpy as np

    from aigc.limits import IMAGE_TEMP_MAX, check_float
    from aigc.pipelines.image import Samples
    temperature = check_float(temperature, 0.0, IMAGE_TEMP_MAX, "--temperature")
    z = pipe.latents(n, seed, cluster, temperature)
    labels = None
    if pipe.conditional:
        i = pipe.label_index(label)
        labels = np.full(n, i) if i is not None else np.arange(n) % pipe.model.num_classes
    parts = [pipe.decode(z[a:a + SAMPLE_BATCH], None if labels is None else labels[a:a + SAMPLE_BATCH])
             for a in range(0, n, SAMPLE_BATCH)]
    return Samples(np.concatenate([p.images for p in parts]),
                   None if labels is None else np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.latents for p in parts]))


def cmd_sample(args) -> int:
    from aigc.checkpoint import atomic_path, read_config
    from aigc.hub import resolve_model_path
    if args.out is not None and Path(args.out).suffix.lower() not in (*IMAGE_SUFFIXES, ".txt", ".json"):
        raise UsageError("--out must end in .png (a grid) or .npz (raw uint8 samples)")
    path = resolve_model_path(args.name)
    cfg = read_config(path)
    if args.cluster is not None and cfg.get("kind") != "vade":
        raise UsageError(f"--cluster is for VaDE models; {args.name} is a {cfg.get('kind')}")
    if cfg.get("modality", "image") != "image":
        from aigc.cli.text import sample_text
        return sample_text(path, args)
    if args.out is None:
        raise UsageError("--out FILE.png or FILE.npz is required for image models")
    out = Path(args.out)
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError("--out must end in .png (a grid) or .npz (raw uint8 samples)")
    npz = out.suffix.lower() == ".npz"
    most = SAMPLE_NPZ_MAX if npz else SAMPLE_PNG_MAX
    if not 1 <= args.n <= most:
        raise UsageError(f"--n must be between 1 and {most:,} for {'an .npz' if npz else 'a .png grid'}")
    from aigc.pipelines.image import ImagePipeline
    pipe = ImagePipeline.from_pretrained(path, device=args.device)
    s = draw(pipe, args.n, args.seed, args.label, 1.0 if args.temperature is None else args.temperature,
             args.cluster)
    with atomic_path(out) as tmp:
        if npz:
            import numpy as np
            arrays = {"images": s.images}
            if s.labels is not None:
                arrays["labels"] = s.labels
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        else:
            s.grid(nrow=args.nrow).save(tmp, format="PNG")
    print(f"wrote {len(s.images)} samples of {pipe.name} (seed {args.seed}) to {out}")
    return 0
