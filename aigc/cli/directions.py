"""`aigc directions`: compute and store the latent directions of saved image models."""
from __future__ import annotations

from aigc.latent import NAMES_FILE, VECTORS_FILE, ensure_directions, training_images


def main(argv=None) -> int:
    """aigc directions [MODEL ...]: compute and store directions for saved image models."""
    import argparse

    from aigc.hub import list_models
    from aigc.pipelines.image import ImagePipeline

    ap = argparse.ArgumentParser(prog="aigc directions", description=main.__doc__)
    ap.add_argument("models", nargs="*", help="names under weights/ or paths (default: every image model)")
    ap.add_argument("-k", type=int, default=10, help="principal directions per model")
    ap.add_argument("--force", action="store_true", help="recompute even if stored")
    a = ap.parse_args(argv)
    names = a.models or [r["path"] for r in list_models() if r.get("modality") == "image" and not r.get("error")]
    for name in names:
        pipe = ImagePipeline.from_pretrained(name)
        if a.force:
            for f in (VECTORS_FILE, NAMES_FILE):
                (pipe.path / f).unlink(missing_ok=True)
        d = ensure_directions(pipe, training_images(pipe.model), k=a.k)
        top = ", ".join(f"{x:.2f}" for x in d.explained[:5].tolist())
        print(f"{pipe.name}: {len(d)} directions ({d.method}); explained {top}")
    return 0


