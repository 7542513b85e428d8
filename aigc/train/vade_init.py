"""VaDE's initialisation (Jiang et al. 2017, section 3): pretrain the body as a plain autoencoder,
fit a diagonal Gaussian mixture to the codes, and start the prior from that fit.

The mixture is fitted by a small EM in torch (k-means++ seeds, Lloyd's k-means, then EM, as
sklearn's GaussianMixture does by default), seeded, in float64: no sklearn dependency.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from aigc.train.augment import random_affine


@dataclass
class GMMFit:
    weights: torch.Tensor       # K
    means: torch.Tensor         # K x D
    variances: torch.Tensor     # K x D
    log_likelihood: float       # mean log-density of the data under the fit (nats per point)
    n_iter: int                 # EM iterations run
    labels: torch.Tensor | None = None   # each point's group, when the fit was made from a partition

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable component of each row of x (N x D)."""
        x = torch.as_tensor(x).double()
        return _log_joint(x, self.weights.double(), self.means.double(), self.variances.double()).argmax(1)


def _float_batch(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(255.0) if images.dtype == torch.uint8 else images.float()


def _check_images(model, images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("images must be a tensor N x C x H x W (uint8, or float in [0, 1])")
    if tuple(images.shape[1:]) != tuple(model.image_shape):
        raise ValueError(f"images are {tuple(images.shape[1:])}; this model takes {tuple(model.image_shape)}")
    if images.shape[0] < model.n_clusters:
        raise ValueError(f"need at least {model.n_clusters} images to fit {model.n_clusters} clusters")


def pretrain_autoencoder(model, images: torch.Tensor, epochs: int, *, batch_size: int = 256, lr: float = 1e-3,
                         seed: int = 0, augment: float = 0.0,
                         on_epoch: Callable[[int, float], None] | None = None) -> list[float]:
    """Train encoder mean and decoder as a deterministic autoencoder (x -> mu -> x, Bernoulli
    reconstruction on [0, 1] pixels) for `epochs` passes; returns each epoch's mean loss.
    `augment` > 0: each batch rotated and shifted first (random_affine at that strength, as the
    vade objective's --pretrain-augment), the moved picture in and out."""
    _check_images(model, images)
    g = torch.Generator().manual_seed(seed)
    params = [p for n, p in model.named_parameters() if not n.startswith("prior_")]
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    losses = []
    for epoch in range(int(epochs)):
        order = torch.randperm(images.shape[0], generator=g)
        total, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            x = _float_batch(images[order[i:i + batch_size]]).to(model.device)
            if augment:
                x = random_affine(x, torch.rand(x.shape[0], 3, generator=g), 10.0 * augment, 0.1 * augment)
            mu, _ = model.encode(x)
            loss = F.binary_cross_entropy_with_logits(model.decode_logits(mu).float(), x,
                                                      reduction="none").flatten(1).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * x.shape[0]
            count += x.shape[0]
        losses.append(total / count)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    return losses


def guide_to_groups(model, images: torch.Tensor, labels: torch.Tensor, epochs: float, *, batch_size: int = 100,
                    lr: float = 2e-4, seed: int = 0) -> list[float]:
    """ELBO passes over `images` with q(c|x) fixed to each image's group `labels` (one-hot) instead of
    p(c|z): the codes of each group are drawn to its own Gaussian, so groups the graph found but a
    Gaussian in code space cannot draw (a fragment of 4s among the 9s) become separable before the
    ELBO's own q(c|x) takes over. The mixture is held; body only, Adam at `lr`. Returns each pass's
    mean loss (a last partial pass for a fractional `epochs`)."""
    _check_images(model, images)
    labels = torch.as_tensor(labels).long().cpu()
    if labels.shape != (images.shape[0],) or int(labels.min()) < 0 or int(labels.max()) >= model.n_clusters:
        raise ValueError(f"need one group in 0..{model.n_clusters - 1} per image")
    g = torch.Generator().manual_seed(seed)
    params = [p for n, p in model.named_parameters() if not n.startswith("prior_")]
    opt = torch.optim.Adam(params, lr=lr, eps=1e-4)
    model.train()
    steps, losses = int(math.ceil(float(epochs) * images.shape[0] / batch_size)), []
    per_pass = max(1, math.ceil(images.shape[0] / batch_size))
    total, count, order = 0.0, 0, None
    for step in range(steps):
        i = step % per_pass
        if i == 0:
            order = torch.randperm(images.shape[0], generator=g)
        idx = order[i * batch_size:(i + 1) * batch_size]
        x = _float_batch(images[idx]).to(model.device)
        eps = torch.randn(x.shape[0], model.latent_dim, generator=g).to(x.device)
        out = model(x, eps=eps, gamma=F.one_hot(labels[idx], model.n_clusters).float())
        loss = (out["rec"] + out["kl"]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * x.shape[0]
        count += x.shape[0]
        if i == per_pass - 1 or step == steps - 1:
            losses.append(total / count)
            total, count = 0.0, 0
    return losses


@torch.no_grad()
def encode_means(model, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """The mean of q(z|x) for every image, N x D (model left in the mode it was in)."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model.encode(_float_batch(images[i:i + batch]).to(model.device))[0].float().cpu()
                          for i in range(0, images.shape[0], batch)], 0)
    finally:
        model.train(was_training)


def kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeds (Arthur & Vassilvitskii 2007): each next centre drawn with probability
    proportional to the squared distance to the nearest centre chosen so far."""
    n = x.shape[0]
    centres = [x[torch.randint(n, (1,), generator=generator)].squeeze(0)]
    d2 = (x - centres[0]).pow(2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        c = x[torch.multinomial(p.float(), 1, generator=generator)].squeeze(0)
        centres.append(c)
        d2 = torch.minimum(d2, (x - c).pow(2).sum(1))
    return torch.stack(centres)


def kmeans(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 50) -> torch.Tensor:
    """Lloyd's k-means from k-means++ seeds; returns the assignment of each point."""
    centres = kmeans_pp(x, k, generator)
    assign = torch.cdist(x, centres).argmin(1)
    for _ in range(iters):
        for j in range(k):
            members = x[assign == j]
            if len(members):
                centres[j] = members.mean(0)
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
    return assign


def _m_step(x: torch.Tensor, resp: torch.Tensor, reg: float):
    nk = resp.sum(0) + 1e-10                                                 # K
    means = resp.T @ x / nk[:, None]
    var = resp.T @ x.pow(2) / nk[:, None] - means.pow(2)
    return nk / x.shape[0], means, var.clamp_min(0) + reg


def _log_joint(x, weights, means, var):
    """log w_k + log N(x; m_k, diag var_k): N x K."""
    d2 = (x.pow(2) @ (1 / var).T - 2 * x @ (means / var).T + (means.pow(2) / var).sum(1))
    return weights.log() - 0.5 * (x.shape[1] * math.log(2 * math.pi) + var.log().sum(1) + d2)


def fit_diag_gmm(x: torch.Tensor, k: int, *, iters: int = 300, tol: float = 1e-6, seed: int = 0,
                 n_init: int = 1, reg: float = 1e-6) -> GMMFit:
    """A K-component Gaussian mixture with diagonal covariances, fitted to x (N x D) by EM;
    the best of `n_init` seeded starts by log-likelihood. `reg` is added to every variance."""
    x = torch.as_tensor(x).detach().double().cpu()
    if x.dim() != 2 or x.shape[0] < k or k < 1:
        raise ValueError(f"need an N x D array with N >= k = {k} points")
    if not torch.isfinite(x).all():
        raise ValueError("the points hold NaN or infinite values")
    # variances are floored relative to the data's own scale (sklearn's reg_covar is absolute)
    reg = reg * float(x.var(0).mean().clamp_min(1e-12))
    g = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(max(1, n_init)):
        resp = F.one_hot(kmeans(x, k, g), k).double()
        prev, it = -math.inf, 0
        for it in range(1, iters + 1):
            weights, means, var = _m_step(x, resp, reg)
            lj = _log_joint(x, weights, means, var)
            ll = torch.logsumexp(lj, 1)
            resp = (lj - ll[:, None]).exp()
            cur = float(ll.mean())
            if abs(cur - prev) < tol:
                break
            prev = cur
        weights, means, var = _m_step(x, resp, reg)
        cur = float(torch.logsumexp(_log_joint(x, weights, means, var), 1).mean())
        if best is None or cur > best.log_likelihood:
            best = GMMFit(weights.float(), means.float(), var.float(), cur, it)
    return best


def gmm_from_partition(x: torch.Tensor, labels: torch.Tensor, k: int, reg: float = 1e-6) -> GMMFit:
    """The diagonal mixture whose components are the groups of a given partition of x (one M-step on
    hard assignments), e.g. a clustering found by other means; no EM, so the groups stay as given."""
    x = torch.as_tensor(x).detach().double().cpu()
    labels = torch.as_tensor(labels).long().cpu()
    if x.dim() != 2 or labels.shape != (x.shape[0],) or int(labels.min()) < 0 or int(labels.max()) >= k:
        raise ValueError(f"need N x D points and N labels in 0..{k - 1}")
    weights, means, var = _m_step(x, F.one_hot(labels, k).double(), reg * float(x.var(0).mean().clamp_min(1e-12)))
    ll = float(torch.logsumexp(_log_joint(x, weights, means, var), 1).mean())
    return GMMFit(weights.float(), means.float(), var.float(), ll, 0, labels)


def knn_graph(z: torch.Tensor, k: int, chunk: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Each point's k nearest other points (N x k indices) and squared distances (N x k), exactly."""
    z = z.float()
    sq = (z * z).sum(1)
    idx, dist = [], []
    for i in range(0, z.shape[0], chunk):
        d = sq[i:i + chunk, None] - 2 * z[i:i + chunk] @ z.T + sq[None]
        d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = math.inf      # not its own neighbour
        v, j = d.topk(k, largest=False)
        idx.append(j)
        dist.append(v.clamp_min(0))
    return torch.cat(idx), torch.cat(dist)


def spectral_min_points(n_clusters: int, neighbours: int = 15, over: int = 3) -> int:
    """The fewest points spectral_partition can group into n_clusters."""
    return max(neighbours, max(1, int(over)) * n_clusters) + 1


def spectral_partition(z: torch.Tensor, n_clusters: int, *, neighbours: int = 15, over: int = 3, starts: int = 5,
                       seed: int = 0) -> torch.Tensor:
    """Spectral clustering of the points z (N x D): their `neighbours`-nearest-neighbour graph with
    self-tuning Gaussian weights (Zelnik-Manor & Perona 2004: each point's scale is its distance to
    its k-th neighbour), the leading `over` x n_clusters eigenvectors of the normalised affinity (Ng,
    Jordan & Weiss 2001), k-means on their unit-length rows into as many groups (the best of `starts`
    seeded runs by inertia), then the smallest group absorbed by the one the graph joins it to most
    strongly until n_clusters are left (_merge_groups). Groups that are connected but
    not Gaussian blobs (a digit written slanted and upright) end as one, where a GMM fitted to the
    points splits them; over-clustering first keeps k-means from joining two digits to make room for
    such a split. Returns each point's group (N)."""
    import warnings

    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components
    from scipy.sparse.linalg import eigsh, lobpcg

    z = torch.as_tensor(z).detach().float().cpu()
    n, m = z.shape[0], max(1, int(over)) * n_clusters
    if z.dim() != 2 or n < spectral_min_points(n_clusters, neighbours, over) or neighbours < 1:
        raise ValueError(f"need more points than the {neighbours} neighbours and {m} groups")
    if not torch.isfinite(z).all():
        raise ValueError("the points hold NaN or infinite values")
    nb, d2 = (t.numpy() for t in knn_graph(z, neighbours))
    scale = np.sqrt(d2[:, -1]) + 1e-12
    w = np.exp(-d2.astype(np.float64) / (scale[:, None] * scale[nb]))
    a = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), neighbours), nb.ravel())), shape=(n, n))
    a = a.maximum(a.T)
    inv = sp.diags(1.0 / np.sqrt(np.maximum(np.asarray(a.sum(1)).ravel(), 1e-12)))   # an isolated point: no NaN
    mat, rng = inv @ a @ inv, np.random.default_rng(seed)          # seeded starts, so runs repeat
    if connected_components(a, directed=False)[0] > 1:
        # parts the graph does not join share the eigenvalue 1; one Lanczos start vector finds it
        # once (ARPACK), a block of starts finds every copy (LOBPCG)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)                # "not reaching the tolerance": near enough
            _, vecs = lobpcg(mat, rng.standard_normal((n, m)), largest=True, tol=1e-8, maxiter=1000)
    else:
        _, vecs = eigsh(mat, k=m, which="LA", tol=1e-6, v0=rng.standard_normal(n))
    e = torch.from_numpy(vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).float()
    g = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(max(1, starts)):
        lab = kmeans(e, m, g)
        inertia = sum(float((e[lab == j] - e[lab == j].mean(0)).pow(2).sum()) for j in range(m) if (lab == j).any())
        if best is None or inertia < best[0]:
            best = (inertia, lab)
    lab = torch.unique(best[1], return_inverse=True)[1].numpy()           # empty groups dropped
    return torch.from_numpy(_merge_groups(a, lab, n_clusters)).long()


def _merge_groups(a, lab, k: int):
    """Absorb the smallest group of `lab` (by graph volume) into the group it shares the most weight of
    the graph `a` with, until k are left. Over-clustering cuts a digit that is a continuum (1s from
    upright to slanted) into small fragments: each belongs with its strongest neighbour. Joining the
    two most strongly joined groups first instead joined two whole digits (4 with 9) while a fragment
    was left alone (bench/README.md, "The merge that joined 4 with 9")."""
    import numpy as np
    import scipy.sparse as sp

    m = int(lab.max()) + 1
    h = sp.csr_matrix((np.ones(len(lab)), (np.arange(len(lab)), lab)), shape=(len(lab), m))
    w = (h.T @ a @ h).toarray()
    np.fill_diagonal(w, 0.0)                   # a group's own weight is not a join
    vol = np.asarray(h.T @ np.asarray(a.sum(1)).ravel()).ravel()
    alive = list(range(m))
    owner = np.arange(m)
    while len(alive) > k:
        p = min(alive, key=lambda i: (vol[i], i))
        q = max((i for i in alive if i != p), key=lambda i: (w[p, i], -i))
        w[q] += w[p]
        w[:, q] += w[:, p]
        w[q, q] = 0.0
        w[p] = 0.0
        w[:, p] = 0.0
        vol[q] += vol[p]
        owner[owner == p] = q
        alive.remove(p)
    return np.searchsorted(np.array(alive), owner)[lab]


def init_prior(model, images: torch.Tensor, *, seed: int = 0, n_init: int = 1, iters: int = 300,
               method: str = "gmm", neighbours: int = 15, guide_epochs: float = 0.0) -> GMMFit:
    """The prior at the switch from pretraining to the ELBO: a diagonal mixture with the model's K
    components fitted to the encoder means of `images` (by EM or from spectral groups, then optionally
    guided passes), its weights, means and variances copied into the model's prior; returns the fit.

    method "gmm" (the paper's): EM on the codes. "spectral": the groups of spectral_partition of the
    codes, each one component (gmm_from_partition), for codes whose groups are not Gaussian blobs.

    The encoder's variance head, untouched by pretraining, is reset to a constant tenth of the
    mean component variance: a q(z|x) wider than the clusters would blur them apart on the first
    ELBO steps (with the conv body's small codes, into one cluster).

    guide_epochs > 0 (spectral only): then guide_to_groups for that many passes over `images`, and
    the mixture fitted again to the moved codes of the same groups."""
    _check_images(model, images)
    if guide_epochs and method != "spectral":           # refused before the fit, not after it
        raise ValueError("guiding the codes to their groups needs the spectral start's groups")
    z = encode_means(model, images)
    if method == "gmm":
        fit = fit_diag_gmm(z, model.n_clusters, iters=iters, seed=seed, n_init=n_init)
    elif method == "spectral":
        fit = gmm_from_partition(z, spectral_partition(z, model.n_clusters, neighbours=neighbours, seed=seed),
                                 model.n_clusters)
    else:
        raise ValueError(f"unknown prior initialisation {method!r} (gmm or spectral)")
    model.set_prior(fit.weights.clamp_min(1e-6), fit.means, fit.variances)
    head = model.body.to_logvar
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(math.log(0.1 * float(fit.variances.mean())))
    if guide_epochs:
        guide_to_groups(model, images, fit.labels, guide_epochs, seed=seed)
        fit = gmm_from_partition(encode_means(model, images), fit.labels, model.n_clusters)
        model.set_prior(fit.weights.clamp_min(1e-6), fit.means, fit.variances)
    return fit
