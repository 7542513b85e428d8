"""Evaluation of image generators: FID, KID, domain metrics and likelihood, by name (text models:
aigc.eval.text).

    from aigc.eval import evaluate
    evaluate(model, "mnist", metrics=("fid", "kid"), n=10000, device="cuda")
    -> {"fid": ..., "kid": ..., "kid_std": ..., "n": 10000, "dataset": "mnist", "protocol": "...", ...}

Why it is built this way:
- Every metric is a function in `aigc.eval.metrics` (or `aigc.eval.tracking`), registered by name in `METRICS`, so the
  CLI, training curves and model cards all ask for metrics by the same names and get the same
  numbers (StyleGAN2-ADA's metric_main pattern).
- `evaluate` fixes everything that changes a number: the seed of the latents, balanced labels
  for conditional models (0, 1, ..., C-1, 0, 1, ...), quantisation of samples to uint8 exactly
  as saving PNGs would, the real side (the dataset's full 10,000-image test split) and the
  feature network. The returned `protocol` string says all of that in one line, so a number is
  never separated from how it was measured.
- Checks run before any sampling: an unknown name, a metric that does not apply (nll of a GAN,
  label_acc of an unconditional model), a missing classifier or a resolution mismatch fail in a
  second with a ValueError, not after an hour of Inception.

FID/KID use the standard Inception network (`aigc.eval.inception`); its real statistics are
cached under cache/fid/. `domain_fd` and `label_acc` use small per-dataset classifiers
(`aigc.eval.classifier`, weights in data/eval/); they take seconds and suit tests and
training curves. `kid_randconv` (KID in an untrained conv net's features, aigc.eval.randfeat) and
`copy_rate` (share of samples that reproduce a training image) work against any image set
(`reference=`, e.g. an upload) in well under a second: the fine-tune jobs' quality curves. `nll` is the importance-weighted bound of a VAE on binarised test images.
`cluster_acc` and `nmi` score a VaDE's clusters of the test images against their labels (aigc.eval.cluster).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from aigc.data.images import canonical_name, load_dataset
from aigc.eval.frechet import feature_stats, frechet_distance, kernel_inception_distance
from aigc.eval.inception import inception_features, to_uint8_nhwc
from aigc.eval.metrics import METRICS, EvalContext, Metric, register, resolve
from aigc.eval import tracking  # noqa: F401  (registers kid_randconv and copy_rate after the metrics above)
from aigc.limits import SAMPLE_BATCH

__all__ = ["METRICS", "EvalContext", "Metric", "register", "evaluate", "evaluate_samples",
           "generate_samples", "inception_features", "frechet_distance", "feature_stats",
           "kernel_inception_distance"]


def _check(names: list[str], model, dataset: str, has_labels: bool) -> None:
    for name in names:
        METRICS[name].check(model, dataset, has_labels)


@torch.no_grad()
def generate_samples(model, n: int, seed: int = 0, device: str | torch.device = "cpu",
                     batch_size: int = SAMPLE_BATCH) -> tuple[np.ndarray, np.ndarray | None]:
    """n samples as uint8 N x H x W x C, plus the labels asked for (None if unconditional).

    All n latents are drawn first from one CPU generator seeded with `seed`, so the samples do
    not depend on the batch size; conditional models get labels cycling 0..C-1, so every class
    is equally represented (random labels would add class-imbalance noise to FID)."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(int(seed))
    z = model.sample_latent(n, generator=g)
    labels = np.arange(n) % model.num_classes if model.num_classes else None
    out = np.empty((n,) + tuple(model.image_shape[1:]) + (model.image_shape[0],), dtype=np.uint8)
    for i in range(0, n, batch_size):
        zb = z[i:i + batch_size].to(device)
        lb = None if labels is None else torch.from_numpy(labels[i:i + batch_size]).to(device)
        x = model.sample(len(zb), labels=lb, z=zb)
        out[i:i + len(zb)] = to_uint8_nhwc(x)
    return out, labels


def _run(ctx: EvalContext, names: list[str], extra: dict) -> dict:
    t0 = time.time()
    result = {"dataset": ctx.dataset, "n": int(ctx.n), "seed": int(ctx.seed)}
    result.update(extra)
    for name in names:
        if ctx.log:
            ctx.log(f"eval: {name}")
        result.update(METRICS[name](ctx))
    fragments = []
    for name in names:
        for frag in METRICS[name].describe(ctx):
            if frag not in fragments:
                fragments.append(frag)
    result["protocol"] = "; ".join(fragments)
    result["eval_seconds"] = round(time.time() - t0, 1)
    return result


def _check_shape(shape_hwc: tuple, dataset: str, who: str) -> None:
    c, h, w = load_dataset(dataset, "test").shape
    if tuple(shape_hwc) != (h, w, c):
        raise ValueError(f"{who} are {shape_hwc[0]}x{shape_hwc[1]}x{shape_hwc[2]} (HxWxC) but "
                         f"{dataset} images are {h}x{w}x{c}; metrics compare like with like")


def evaluate(model, dataset: str, metrics=("fid", "kid"), n: int = 10000,
             device: str | torch.device = "cpu", seed: int = 0, batch_size: int | None = None, *,
             nll_k: int = 1000, nll_batch: int | None = None, kid_subsets: int = 100,
             kid_subset_size: int = 1000, log: Callable[[str], None] | None = None,
             reference=None) -> dict:
    """Measure `model` against `dataset`'s test split; returns one flat JSON-able dict.

    n: samples to generate (and, for 'nll', test images to score; the standard protocol is
    10,000). seed: fixes latents (and nll's binarisation and importance samples).
    batch_size: Inception batch (default 50 on CPU, 200 on CUDA). The model is moved to
    `device` for the evaluation and back afterwards; its train/eval mode is restored.
    `reference`: an ImageData (e.g. a prepared upload) to measure against instead of a built-in
    dataset (`dataset` then only names it); only metrics registered with reference_ok accept it
    (kid_randconv, copy_rate).
    Raises ValueError for unknown or inapplicable metrics before doing any work."""
    names = resolve(metrics)
    if getattr(model, "modality", "image") != "image":
        raise ValueError(f"aigc.eval measures image models; this '{getattr(model, 'kind', '?')}' "
                         f"model's modality is {model.modality!r}")
    n = int(n)
    if n < 2:
        raise ValueError("n must be at least 2")
    if reference is not None:
        bad = [m for m in names if not METRICS[m].reference_ok]
        if bad:
            ok = ", ".join(m for m, v in METRICS.items() if v.reference_ok)
            raise ValueError(f"metric(s) {', '.join(bad)} need a built-in dataset; against your own "
                             f"images use {ok}")
        dataset = str(dataset or getattr(reference, "name", "reference"))
        if tuple(model.image_shape) != tuple(reference.shape):
            raise ValueError(f"this {model.kind} model makes {model.image_shape} (C x H x W) images; the "
                             f"reference images are {reference.shape}")
        needs_samples = True
    else:
        dataset = canonical_name(dataset)
        _check(names, model, dataset, has_labels=bool(model.num_classes))
        needs_samples = any(METRICS[m].needs_samples for m in names)
        if needs_samples:
            c, h, w = model.image_shape
            _check_shape((h, w, c), dataset, f"this {model.kind} model's images")
    device = torch.device(device)
    original = model.device
    was_training = model.training
    model.to(device).eval()
    try:
        images = labels = None
        if needs_samples:
            t = time.time()
            images, labels = generate_samples(model, n, seed, device)
            if log:
                log(f"eval: {n} samples generated in {time.time() - t:.0f}s")
        ctx = EvalContext(dataset=dataset, device=device, seed=int(seed), n=n, images=images,
                          labels=labels, model=model, batch_size=batch_size, nll_k=nll_k,
                          nll_batch=nll_batch, kid_subsets=kid_subsets,
                          kid_subset_size=kid_subset_size, log=log, reference=reference)
        return _run(ctx, names, {"model_kind": model.kind})
    finally:
        model.to(original)
        model.train(was_training)


def evaluate_samples(images, dataset: str, metrics=("fid", "kid"), labels=None,
                     device: str | torch.device = "cpu", seed: int = 0, batch_size: int | None = None, *,
                     kid_subsets: int = 100, kid_subset_size: int = 1000,
                     log: Callable[[str], None] | None = None) -> dict:
    """Measure raw samples (uint8 N x H x W x C, e.g. from an .npz another tool wrote, or a
    float N x C x H x W tensor in [0, 1]) against `dataset`'s test split.

    `labels` are the classes the samples were generated for (needed by 'label_acc'). RGB
    samples whose three channels are identical count as grey for a grey dataset. Metrics that
    need the model ('nll') raise ValueError."""
    names = resolve(metrics)
    dataset = canonical_name(dataset)
    images = to_uint8_nhwc(images)
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labels) != len(images):
            raise ValueError(f"got {len(labels)} labels for {len(images)} images")
    _check(names, None, dataset, has_labels=labels is not None)
    c = load_dataset(dataset, "test").shape[0]
    if c == 1 and images.shape[-1] == 3 and (images == images[..., :1]).all():
        images = np.ascontiguousarray(images[..., :1])
    _check_shape(images.shape[1:], dataset, "the samples")
    if len(images) < 2:
        raise ValueError("need at least 2 samples")
    ctx = EvalContext(dataset=dataset, device=torch.device(device), seed=int(seed), n=len(images),
                      images=images, labels=labels, batch_size=batch_size, kid_subsets=kid_subsets,
                      kid_subset_size=kid_subset_size, log=log)
    return _run(ctx, names, {})
