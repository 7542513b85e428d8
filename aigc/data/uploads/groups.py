"""What is in an image upload, seen by a VaDE base: the groups its pictures fall into, their sizes, a
few pictures of each, and the pictures that fit no group well.

A picture's group is its most probable mixture component q(c|x) (at the mean of q(z|x)). A picture
fits no group well when its posterior is split (the largest share below MIN_SHARE) or when its code
is less likely under the mixture than 99% of the mixture's own draws. Pictures of another size or
channel count are not resized to fit: the result then says why instead of guessing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

MIN_SHARE = 0.5          # a posterior whose largest share is below this sits between groups
RARE_QUANTILE = 0.01     # codes less likely than this share of the mixture's own draws are rare
GROUP_EXAMPLES = 6             # pictures shown per group and misfits listed


def _shape_text(h: int, w: int, c: int) -> str:
    return f"{h}x{w} {'grey' if c == 1 else 'colour' if c == 3 else f'{c}-channel'}"


@torch.no_grad()
def _rare_threshold(model, n: int = 4000) -> float:
    """The RARE_QUANTILE of log p(z) over n seeded draws from the model's own mixture."""
    z = model.sample_latent(n, generator=torch.Generator().manual_seed(0))
    return float(torch.quantile(model.log_prior(z).float().cpu(), RARE_QUANTILE))


@torch.no_grad()
def _posterior_and_density(model, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(q(c|x): N x K, log p(z = mean of q(z|x)) under the mixture: N) of uint8 N x H x W x C."""
    probs, dens = [], []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).permute(0, 3, 1, 2).float().div(255.0)
        mu, _ = model.encode(x.to(model.device))
        lj = model.log_joint(mu)
        probs.append(torch.softmax(lj, -1).cpu())
        dens.append(torch.logsumexp(lj, -1).cpu())
    return torch.cat(probs).numpy(), torch.cat(dens).numpy()


def group_upload(images: np.ndarray, base_model_dir, *, model=None) -> dict:
    """Group prepared upload pictures (uint8 N x H x W x C) with the VaDE saved in `base_model_dir`
    (or the already loaded `model`).

    Returns {"fits": True, "base", "images", "groups_used", "n_clusters", "groups": [{"group",
    "size", "share", "examples"}...] (largest first), "misfits": {"count", "split", "rare",
    "examples": [{"index", "max_share", "log_density", "why"}...]}}; or {"fits": False, "base",
    "reason"} when the pictures' size or channels are not the base's."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) == 0:
        raise ValueError("pictures to group must be uint8 N x H x W x C with N >= 1")
    base = Path(base_model_dir).name if base_model_dir is not None else getattr(model, "kind", "model")
    if model is None:
        from aigc.checkpoint import from_pretrained
        model = from_pretrained(base_model_dir)
    if not callable(getattr(model, "cluster_posterior", None)):
        raise ValueError(f"{base} is a {getattr(model, 'kind', '?')}, not a VaDE: it cannot group pictures")
    c, h, w = model.image_shape
    _, ih, iw, ic = images.shape
    if (ih, iw, ic) != (h, w, c):
        return {"fits": False, "base": base,
                "reason": f"your pictures are {_shape_text(ih, iw, ic)}; {base} groups {_shape_text(h, w, c)} "
                          f"pictures, so it cannot say what groups they fall into"}
    was_training = model.training
    model.eval()
    try:
        probs, dens = _posterior_and_density(model, images)
        threshold = _rare_threshold(model)
    finally:
        model.train(was_training)
    assign, top = probs.argmax(1), probs.max(1)
    groups = []
    for k in np.argsort(-np.bincount(assign, minlength=model.n_clusters), kind="stable"):
        members = np.flatnonzero(assign == k)
        if len(members):
            best = members[np.argsort(-top[members], kind="stable")[:GROUP_EXAMPLES]]
            groups.append({"group": int(k), "size": int(len(members)),
                           "share": round(len(members) / len(images), 4), "examples": [int(i) for i in best]})
    split, rare = top < MIN_SHARE, dens < threshold
    bad = np.flatnonzero(split | rare)
    bad = bad[np.lexsort((top[bad], dens[bad]))][:GROUP_EXAMPLES]     # least likely first, then most split
    examples = [{"index": int(i), "max_share": round(float(top[i]), 4), "log_density": round(float(dens[i]), 3),
                 "why": " and ".join(w for w, f in (("rare", rare[i]), ("between groups", split[i])) if f)}
                for i in bad]
    return {"fits": True, "base": base, "images": int(len(images)), "groups_used": len(groups),
            "n_clusters": int(model.n_clusters), "groups": groups,
            "misfits": {"count": int((split | rare).sum()), "split": int(split.sum()), "rare": int(rare.sum()),
                        "examples": examples}}
