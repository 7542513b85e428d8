"""Inference objects (the diffusers pipeline idea): a loaded model plus the small amount of
logic a person needs to use it. `__call__(..., seed)` returns PIL images; the same seed and
arguments always give the same picture. No training code and no UI code lives here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aigc import checkpoint as ckpt
from aigc.data.grid import make_grid, to_pil, to_uint8
from aigc.hub import resolve_model_path
from aigc.limits import SEED_MAX



def seeded(seed: int) -> torch.Generator:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ValueError("seed must be an integer")
    if not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"seed must be between 0 and {SEED_MAX}")
    return torch.Generator().manual_seed(int(seed))


@dataclass
class Samples:
    images: np.ndarray              # uint8 N x H x W x C
    labels: np.ndarray | None       # int64 N, for conditional models
    latents: np.ndarray             # float32 N x D
    posterior: np.ndarray | None = None   # VaDE's encode: q(c|x), float32 N x K

    def pil(self) -> list:
        return [to_pil(im) for im in self.images]

    def grid(self, nrow: int | None = None, scale: int = 1):
        return make_grid(self.images, nrow=nrow, scale=scale)


class ImagePipeline:
    """Sampling, decoding and latent arithmetic for one image model."""

    max_batch = 1024

    def __init__(self, model, name: str = "", path: Path | None = None):
        self.model = model.eval()
        self.name = name or getattr(model, "name", model.kind)
        self.path = path

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str = "cpu", search=None) -> "ImagePipeline":
        path = resolve_model_path(name_or_path, search)
        return cls(ckpt.from_pretrained(path, device=device), name=path.name if path.name != "model" else path.parent.name, path=path)

    @property
    def kind(self) -> str:
        return self.model.kind

    @property
    def conditional(self) -> bool:
        return self.model.num_classes > 0

    @property
    def clustered(self) -> bool:
        """A VaDE: sampling takes a cluster and encoding gives the cluster posterior."""
        return callable(getattr(self.model, "cluster_posterior", None))

    @property
    def n_clusters(self) -> int:
        return int(self.model.n_clusters) if self.clustered else 0

    def cluster_index(self, cluster) -> int | None:
        """A cluster id given by a person -> int, or None; one clear line when it cannot be one."""
        if cluster is None:
            return None
        if not self.clustered:
            raise ValueError(f"{self.name} is a {self.kind}, not a VaDE; it has no clusters")
        if isinstance(cluster, str) and cluster.strip().lstrip("-").isdigit():
            cluster = int(cluster)
        return self.model.check_cluster(cluster)

    def cluster_weights(self) -> np.ndarray:
        """The mixture weights pi (K): each cluster's share of the data the model was trained on."""
        if not self.clustered:
            raise ValueError(f"{self.name} is a {self.kind}, not a VaDE; it has no clusters")
        return torch.softmax(self.model.prior_logits.detach().float().cpu(), 0).numpy()

    @torch.no_grad()
    def cluster_posterior(self, images, batch: int = 500) -> np.ndarray:
        """q(c|x) of each picture (uint8 N x H x W x C or float N x C x H x W): float32 N x K."""
        if not self.clustered:
            raise ValueError(f"{self.name} is a {self.kind}, not a VaDE; it cannot cluster pictures")
        x = self._image_tensor(images)
        return self.model.cluster_posterior(x, batch=batch).float().cpu().numpy()

    def label_index(self, label) -> int | None:
        """A class given by index or by name -> index (None if unconditional and label is None)."""
        if label is None:
            return None
        if not self.conditional:
            raise ValueError(f"{self.name} is not class-conditional; it takes no label")
        names = self.model.class_names
        if isinstance(label, str) and not label.lstrip("-").isdigit():
            if label not in names:
                raise ValueError(f"unknown class {label!r}; choose from: {', '.join(names)}")
            return names.index(label)
        i = int(label)
        if not 0 <= i < self.model.num_classes:
            raise ValueError(f"label must be in 0..{self.model.num_classes - 1}")
        return i

    def latents(self, n: int, seed: int, cluster=None, temperature: float = 1.0) -> torch.Tensor:
        """n prior latents from `seed`: N(0, I) x temperature; a VaDE draws from its mixture (one
        cluster when `cluster` is given), temperature scaling each component's spread."""
        g = seeded(seed)
        c = self.cluster_index(cluster)
        if self.clustered:
            return self.model.sample_latent(n, g, cluster=c, temperature=float(temperature)).cpu()
        return torch.randn(n, self.model.latent_dim, generator=g) * float(temperature)

    @torch.no_grad()
    def __call__(self, n: int = 16, seed: int = 0, label=None, temperature: float = 1.0, cluster=None) -> Samples:
        """n images from `seed`. Conditional models: `label` fixes the class (index or name);
        without it, classes cycle 0, 1, 2, ... so a grid shows every class. A VaDE: `cluster`
        draws from that mixture component (else from the whole mixture)."""
        if not 1 <= int(n) <= self.max_batch:
            raise ValueError(f"n must be between 1 and {self.max_batch}")
        if not (math.isfinite(temperature) and 0 <= temperature <= 3):
            raise ValueError("temperature (truncation) must be between 0 and 3")
        z = self.latents(int(n), seed, cluster, temperature)
        labels = None
        if self.conditional:
            i = self.label_index(label)
            labels = torch.full((n,), i) if i is not None else torch.arange(n) % self.model.num_classes
        return self.decode(z, labels)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels=None) -> Samples:
        z = torch.as_tensor(z, dtype=torch.float32)
        if z.dim() == 1:
            z = z[None]
        if z.shape[1] != self.model.latent_dim:
            raise ValueError(f"latent has {z.shape[1]} dimensions; {self.name} needs {self.model.latent_dim}")
        if not torch.isfinite(z).all():
            raise ValueError("latent holds NaN or infinite values")
        dev = self.model.device
        lab = None if labels is None else torch.as_tensor(labels, dtype=torch.long).reshape(-1).to(dev)
        lab = self.model.check_labels(lab, z.shape[0])
        images = self.model.decode(z.to(dev), lab)
        return Samples(to_uint8(images), None if lab is None else lab.cpu().numpy(), z.cpu().numpy())

    # -- the studio: encoding, editing, interpolation ---------------------------------------------
    def _image_tensor(self, images) -> torch.Tensor:
        """uint8 N x H x W x C (or H x W x C) arrays, or float N x C x H x W in [0, 1] -> float tensor."""
        if isinstance(images, np.ndarray) and images.dtype == np.uint8:
            a = images[None] if images.ndim == 3 else images
            x = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float().div_(255.0)
        else:
            x = torch.as_tensor(images, dtype=torch.float32)
            x = x[None] if x.dim() == 3 else x
        if tuple(x.shape[1:]) != tuple(self.model.image_shape):
            raise ValueError(f"pictures must be {tuple(self.model.image_shape)} (C, H, W) for {self.name}; "
                             f"got {tuple(x.shape[1:])}")
        return x.to(self.model.device)

    def encode(self, images, *, label=None, progress=None, steps: int = 150, starts: int = 8) -> Samples:
        """Pictures -> latents and their reconstructions. A VAE gives the posterior mean of
        q(z|x) (deterministic; a VaDE adds its cluster posterior q(c|x)); a GAN is projected by
        optimisation (aigc.latent.projection), with `progress(step, steps, error)` called as it
        goes and `label` fixing the class (else every class is tried)."""
        x = self._image_tensor(images)
        if self.kind in ("vae", "vade"):
            with torch.no_grad():
                mu, _ = self.model.encode(x)
                s = self.decode(mu.float().cpu())
                if self.clustered:
                    s.posterior = torch.softmax(self.model.log_joint(mu), -1).float().cpu().numpy()
            return s
        from aigc.latent.projection import project

        i = self.label_index(label) if self.conditional else None
        zs, labels = [], []
        for j in range(x.shape[0]):
            p = project(self.model, x[j:j + 1], label=i, steps=steps, starts=starts, seed=j, progress=progress)
            zs.append(p.latent)
            labels.append(p.label)
        return self.decode(torch.from_numpy(np.stack(zs)), labels if self.conditional else None)

    def edited_latent(self, z, coefficients=(), directions=None, dim_offsets=None) -> torch.Tensor:
        """z + sum_i c_i * scale_i * direction_i (+ per-dimension offsets {dim: value})."""
        z = torch.as_tensor(z, dtype=torch.float32).reshape(-1).clone()
        if z.numel() != self.model.latent_dim:
            raise ValueError(f"latent has {z.numel()} dimensions; {self.name} needs {self.model.latent_dim}")
        if directions is not None and len(coefficients):
            if directions.latent_dim != z.numel():
                raise ValueError("these directions belong to a model with another latent size")
            z += directions.offset(coefficients)
        for d, v in (dim_offsets or {}).items():
            d, v = int(d), float(v)
            if not 0 <= d < z.numel():
                raise ValueError(f"latent dimension {d} does not exist (0..{z.numel() - 1})")
            if not math.isfinite(v):
                raise ValueError("slider values must be finite numbers")
            z[d] += v
        return z

    def edit(self, z, coefficients=(), directions=None, dim_offsets=None, label=None) -> Samples:
        """Decode one latent moved along directions and dimensions (see `edited_latent`)."""
        return self.decode(self.edited_latent(z, coefficients, directions, dim_offsets)[None],
                           None if label is None else [label])

    def interpolate(self, z0, z1, steps: int = 8, method: str = "slerp", label=None) -> Samples:
        """`steps` images on the way from z0 to z1 (slerp suits Gaussian latents)."""
        from aigc.latent import path

        zs = path(torch.as_tensor(z0, dtype=torch.float32).reshape(-1),
                  torch.as_tensor(z1, dtype=torch.float32).reshape(-1), steps, method)
        return self.decode(zs, None if label is None else [label])
