"""Principal directions and per-dimension usage of a latent space.

Directions are what the editor's sliders move along. They are computed once per model and kept
beside its weights, so a slider change only costs one decode:

  directions.safetensors   vectors (k x D, unit length), scales (k), explained (k), kl (D, VAEs)
  directions.json          names, how many are principal, the method, the weights hash they
                           were computed for, and the VAE's dimensions ordered by use

How they are found:
  GANs   GANSpace (Harkonen et al. 2020): sample many latents, take the activations of the
         generator's first layer, find their principal components, and regress the latents on
         the component coordinates to get the matching directions in z. Largest first.
  VAEs   principal components of the posterior means of training images (the directions in
         which real data varies most), plus the KL divergence of each dimension averaged over
         those images: dimensions the encoder does not use have KL ~ 0 and move nothing.

A slider at value a moves the latent by a * scale * direction: `scale` is the standard deviation
of the latents along that direction, so a = +-3 spans the range a model actually uses.
Users may name directions and save new ones (e.g. the difference an edit made); both files are
rewritten atomically.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from aigc import checkpoint as ckpt

FORMAT = "aigc-directions/1"
VECTORS_FILE = "directions.safetensors"
NAMES_FILE = "directions.json"
MAX_DIRECTIONS = 64
MAX_NAME = 40
_NAME_RE = re.compile(r"^[\w][\w .+\-()/#']*$", re.UNICODE)
_WRITE_LOCK = threading.Lock()


# -- directions ----------------------------------------------------------------------------------
@dataclass
class Directions:
    vectors: torch.Tensor            # k x D, unit rows
    scales: torch.Tensor             # k: std of latents along each direction (slider unit)
    explained: torch.Tensor          # k: fraction of variance (0 for user directions)
    names: list[str]
    n_principal: int
    method: str
    weights_hash: str = ""
    kl: torch.Tensor | None = None   # D: mean KL per dimension (VAEs)
    dim_order: list[int] = field(default_factory=list)   # dimensions, most used first (VAEs)

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def latent_dim(self) -> int:
        return int(self.vectors.shape[1])

    def offset(self, coefficients) -> torch.Tensor:
        """Latent offset for slider values (one per direction; missing ones count as 0)."""
        c = torch.zeros(len(self))
        vals = torch.as_tensor(list(coefficients), dtype=torch.float32).reshape(-1)[: len(self)]
        c[: vals.numel()] = vals
        if not torch.isfinite(c).all():
            raise ValueError("slider values must be finite numbers")
        return (c * self.scales) @ self.vectors

    def fingerprint(self) -> str:
        """Short hash of the vectors and scales: tells whether slider offsets still mean the same."""
        import hashlib

        h = hashlib.sha256(self.vectors.numpy().tobytes() + self.scales.numpy().tobytes())
        return h.hexdigest()[:12]


def _unit_rows(v: torch.Tensor) -> torch.Tensor:
    """Unit-length rows with a fixed sign (largest component positive): PCA's sign is arbitrary."""
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-8)
    sign = torch.sign(v.gather(1, v.abs().argmax(1, keepdim=True)))
    return v * torch.where(sign == 0, torch.ones_like(sign), sign)


def early_features(model, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Activations of a generator's first layer for latents z (N x F): where GANSpace looks."""
    kind = getattr(model, "kind", "")
    if kind == "dcgan":
        g = model.g_ema
        zin = torch.cat([z, g.embed(labels)], 1) if g.embed is not None else z
        return g.fc(zin)
    if kind == "seed-gan":
        return model.generator[1](model.generator[0](z))
    if kind == "vae":
        return model.from_z[1](model.from_z[0](z))
    if kind == "vade":        # its body is the conv VAE's (from_z) or the paper's MLP (decoder)
        first = getattr(model.body, "from_z", None) or model.body.decoder
        return first[1](first[0](z))
    return model.decode(z, labels).flatten(1)


@torch.no_grad()
def ganspace(model, n: int = 4096, k: int = 10, seed: int = 0) -> Directions:
    """Principal directions of a generator's first-layer activations, mapped back to z."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    d = model.latent_dim
    k = max(1, min(k, d, MAX_DIRECTIONS))
    z = torch.randn(n, d, generator=g)
    labels = torch.randint(0, model.num_classes, (n,), generator=g) if model.num_classes else None
    dev = model.device
    feats = []
    for i in range(0, n, 1024):
        lab = None if labels is None else labels[i:i + 1024].to(dev)
        feats.append(early_features(model, z[i:i + 1024].to(dev), lab).float().cpu())
    y = torch.cat(feats)
    y = y - y.mean(0, keepdim=True)
    q = min(k + 8, min(y.shape))
    with torch.random.fork_rng(devices=[]):      # randomised SVD: seeded, and the caller's RNG untouched
        torch.manual_seed(seed)
        _, s, v = torch.pca_lowrank(y, q=q, center=False, niter=4)
    var = s.pow(2)
    total = y.pow(2).sum().clamp_min(1e-12)
    x = y @ v[:, :k]                                  # N x k coordinates on the components
    x = x / x.std(0, keepdim=True).clamp_min(1e-8)
    u = torch.linalg.lstsq(x, z).solution            # k x D: z ~ x @ u
    vectors = _unit_rows(u)
    scales = (z @ vectors.T).std(0)                   # ~1 for a standard normal latent
    return Directions(vectors.contiguous(), scales.contiguous(), (var[:k] / total).contiguous(),
                      [f"PC{i + 1}" for i in range(k)], k, "ganspace-first-layer")


@torch.no_grad()
def posterior_stats(model, images: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """(posterior means N x D, mean KL per dimension D) of a VAE on images in [0, 1]."""
    model.eval()
    mus, kls = [], []
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(model.device)
        mu, logvar = model.encode(x)
        mu, logvar = mu.float().cpu(), logvar.float().cpu()
        mus.append(mu)
        kls.append((0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum(0))
    mu = torch.cat(mus)
    return mu, torch.stack(kls).sum(0) / len(mu)


def kl_order(kl: torch.Tensor) -> list[int]:
    """Dimensions by how much the encoder uses them (mean KL), largest first."""
    return [int(i) for i in torch.argsort(kl, descending=True, stable=True)]


@torch.no_grad()
def vae_directions(model, images: torch.Tensor, k: int = 10) -> Directions:
    """Principal components of the training set's posterior means, and KL per dimension."""
    mu, kl = posterior_stats(model, images)
    d = mu.shape[1]
    k = max(1, min(k, d, MAX_DIRECTIONS))
    c = mu - mu.mean(0, keepdim=True)
    _, s, vt = torch.linalg.svd(c, full_matrices=False)
    var = s.pow(2) / max(1, len(c) - 1)
    vectors = _unit_rows(vt[:k])
    return Directions(vectors.contiguous(), var[:k].sqrt().contiguous(), (var[:k] / var.sum()).contiguous(),
                      [f"PC{i + 1}" for i in range(k)], k, "pca-posterior-means",
                      kl=kl.contiguous(), dim_order=kl_order(kl))


def compute_directions(model, images: torch.Tensor | None = None, k: int = 10, seed: int = 0) -> Directions:
    """Directions for any image model. VAEs need training images (N x C x H x W in [0, 1]);
    without them they fall back to GANSpace on the decoder (and have no KL ordering)."""
    if model.kind in ("vae", "vade") and images is not None and len(images) > 1:
        return vae_directions(model, images, k)
    return ganspace(model, k=k, seed=seed)


# -- names -------------------------------------------------------------------------------------------
def check_name(name) -> str:
    """A direction name a person typed: 1-40 characters, letters/digits/space and simple marks."""
    if not isinstance(name, str):
        raise ValueError("a direction name must be text")
    name = " ".join(name.split())
    if not name:
        raise ValueError("give the direction a name")
    if len(name) > MAX_NAME:
        raise ValueError(f"a direction name has at most {MAX_NAME} characters")
    if not _NAME_RE.match(name):
        raise ValueError("a direction name may hold letters, digits, spaces and . + - ( ) / # ' only")
    return name


# -- files -----------------------------------------------------------------------------------------
def save_directions(folder: str | Path, d: Directions) -> None:
    """Write both files atomically (vectors first: names never point at missing vectors)."""
    folder = Path(folder)
    tensors = {"vectors": d.vectors.float().contiguous(), "scales": d.scales.float().contiguous(),
               "explained": d.explained.float().contiguous()}
    if d.kl is not None:
        tensors["kl"] = d.kl.float().contiguous()
    meta = {"format": FORMAT, "weights_hash": d.weights_hash, "count": str(len(d))}
    with ckpt.atomic_path(folder / VECTORS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    ckpt.atomic_write_json(folder / NAMES_FILE, {
        "format": FORMAT, "weights_hash": d.weights_hash, "method": d.method, "count": len(d),
        "n_principal": d.n_principal, "names": list(d.names), "dim_order": list(d.dim_order),
        "fingerprint": d.fingerprint()})


def load_directions(folder: str | Path, latent_dim: int, weights_hash: str | None = None) -> Directions | None:
    """Directions saved beside a model, or None when missing, unreadable, for other weights
    (hash differs) or for another latent size. Never raises for a bad file: it is recomputed."""
    folder = Path(folder)
    vpath, npath = folder / VECTORS_FILE, folder / NAMES_FILE
    if not vpath.is_file():
        return None
    try:
        t = load_file(str(vpath))
        vec, scales, explained = t["vectors"].float(), t["scales"].float(), t["explained"].float()
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError):
        return None
    k = vec.shape[0] if vec.dim() == 2 else 0
    if (vec.dim() != 2 or vec.shape[1] != latent_dim or not 1 <= k <= MAX_DIRECTIONS
            or scales.shape != (k,) or explained.shape != (k,)
            or not all(torch.isfinite(x).all() for x in (vec, scales, explained))):
        return None
    kl = t.get("kl")
    if kl is not None and (kl.shape != (latent_dim,) or not torch.isfinite(kl).all()):
        kl = None
    info = {}
    try:
        if npath.is_file() and npath.stat().st_size < (1 << 20):
            info = json.loads(npath.read_text(encoding="utf-8"))
            info = info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        info = {}
    stored_hash = str(info.get("weights_hash") or "")
    if weights_hash and stored_hash and stored_hash != weights_hash:
        return None
    names = info.get("names")
    default = [f"PC{i + 1}" for i in range(k)]
    if not (isinstance(names, list) and len(names) == k and all(isinstance(n, str) for n in names)):
        names = default
    n_principal = info.get("n_principal")
    if not (isinstance(n_principal, int) and 0 <= n_principal <= k):
        n_principal = k
    order = info.get("dim_order")
    if kl is not None:
        if not (isinstance(order, list) and sorted(order) == list(range(latent_dim))):
            order = kl_order(kl)
    else:
        order = []
    return Directions(vec, scales, explained, list(names), n_principal, str(info.get("method", "?")),
                      stored_hash or (weights_hash or ""), kl, [int(i) for i in order])


def rename_direction(folder: str | Path, d: Directions, index: int, name: str) -> Directions:
    name = check_name(name)
    if not 0 <= int(index) < len(d):
        raise ValueError(f"direction number must be between 1 and {len(d)}")
    if name in d.names and d.names.index(name) != int(index):
        raise ValueError(f"a direction named {name!r} exists already")
    with _WRITE_LOCK:
        names = list(d.names)
        names[int(index)] = name
        new = Directions(d.vectors, d.scales, d.explained, names, d.n_principal, d.method,
                         d.weights_hash, d.kl, d.dim_order)
        save_directions(folder, new)
    return new


def add_direction(folder: str | Path, d: Directions, vector, name: str) -> Directions:
    """Append a user direction (e.g. the offset an edit made). Its slider unit is the vector's
    own length, so the slider at 1 reproduces the edit exactly."""
    name = check_name(name)
    if name in d.names:
        raise ValueError(f"a direction named {name!r} exists already")
    v = torch.as_tensor(vector, dtype=torch.float32).reshape(-1)
    if v.numel() != d.latent_dim:
        raise ValueError(f"a direction needs {d.latent_dim} numbers, got {v.numel()}")
    if not torch.isfinite(v).all():
        raise ValueError("the direction holds NaN or infinite values")
    norm = float(v.norm())
    if norm < 1e-6:
        raise ValueError("the edit is empty: move a slider first, then save it as a direction")
    if len(d) >= MAX_DIRECTIONS:
        raise ValueError(f"at most {MAX_DIRECTIONS} directions per model")
    with _WRITE_LOCK:
        new = Directions(torch.cat([d.vectors, (v / norm)[None]]), torch.cat([d.scales, torch.tensor([norm])]),
                         torch.cat([d.explained, torch.zeros(1)]), list(d.names) + [name], d.n_principal,
                         d.method, d.weights_hash, d.kl, d.dim_order)
        save_directions(folder, new)
    return new


def ensure_directions(pipe, images: torch.Tensor | None = None, k: int = 10, save: bool = True) -> Directions:
    """Load the directions beside `pipe`'s weights, or compute and store them (once)."""
    folder = pipe.path
    h = ckpt.weights_hash(folder) if folder is not None else ""
    if folder is not None:
        d = load_directions(folder, pipe.model.latent_dim, h)
        if d is not None:
            return d
    d = compute_directions(pipe.model, images, k=k)
    d.weights_hash = h
    if save and folder is not None:
        try:
            with _WRITE_LOCK:
                save_directions(folder, d)
        except OSError:
            pass            # a read-only weights folder: keep them in memory
    return d


def training_images(model, limit: int = 5000) -> torch.Tensor | None:
    """The first `limit` training images of the model's dataset (from config.json's `dataset`),
    or None when the dataset is unknown or absent."""
    from aigc.data.images import load_dataset

    name = (getattr(model, "meta", {}) or {}).get("dataset")
    if not name:
        return None
    try:
        data = load_dataset(str(name), "train")
    except (ValueError, FileNotFoundError, OSError):
        return None
    if data.shape != tuple(model.image_shape):
        return None
    return torch.from_numpy(data.images[:limit].copy()).permute(0, 3, 1, 2).float().div_(255.0)

