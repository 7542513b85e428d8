"""Memorisation check: the training image nearest to a generated one.

A generator that copies its training set produces samples whose nearest training image is
almost identical. The training set is flattened once per dataset and kept in memory as float32
(60,000 x 784 for MNIST, 188 MB) with its squared norms, so a query is one matrix product
(~10 ms on two cores). For scale, `reference()` gives the typical distance from held-out test
images to their nearest training image: a sample much closer than that deserves a look.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch

from .data.images import ImageData, canonical_name, load_dataset

_LOCK = threading.Lock()
_INDEXES: dict[str, "TrainingIndex"] = {}


@dataclass
class Match:
    index: int                  # position in the training split
    distance: float             # Euclidean distance, pixels in [0, 1]
    rms: float                  # distance / sqrt(pixels): a per-pixel figure
    label: int | None
    label_name: str | None
    image: np.ndarray           # uint8 H x W x C


class TrainingIndex:
    def __init__(self, data: ImageData, reference_data: ImageData | None = None):
        self.data = data
        self.shape = data.images.shape[1:]
        self.flat = torch.from_numpy(data.images.reshape(len(data), -1).astype(np.float32)).div_(255.0)
        self.norms = self.flat.pow(2).sum(1)
        self._reference_data = reference_data
        self._reference: float | None = None

    def __len__(self) -> int:
        return len(self.data)

    def _as_flat(self, images) -> torch.Tensor:
        a = np.asarray(images)
        if a.ndim == 3:
            a = a[None]
        if a.shape[1:] != self.shape:
            raise ValueError(f"images have shape {a.shape[1:]}; the training set has {self.shape}")
        t = torch.from_numpy(np.array(a, dtype=np.float32).reshape(len(a), -1))
        return t.div_(255.0) if a.dtype == np.uint8 else t

    @torch.no_grad()
    def distances(self, images, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances N x k, indices N x k) of the k nearest training images."""
        q = self._as_flat(images)
        d2 = q.pow(2).sum(1, keepdim=True) + self.norms[None] - 2.0 * (q @ self.flat.T)
        vals, idx = torch.topk(d2, k, dim=1, largest=False)
        return vals.clamp_min(0).sqrt(), idx

    def query(self, images, k: int = 1) -> list[list[Match]]:
        dist, idx = self.distances(images, k)
        p = float(np.prod(self.shape)) ** 0.5
        out = []
        for row_d, row_i in zip(dist.tolist(), idx.tolist()):
            matches = []
            for dv, iv in zip(row_d, row_i):
                lab = None if self.data.labels is None else int(self.data.labels[iv])
                name = self.data.class_names[lab] if lab is not None and lab < len(self.data.class_names) else None
                matches.append(Match(int(iv), float(dv), float(dv) / p, lab, name, self.data.images[iv]))
            out.append(matches)
        return out

    def reference(self, n: int = 200) -> float | None:
        """Median distance from `n` test images to their nearest training image."""
        if self._reference is None and self._reference_data is not None:
            d, _ = self.distances(self._reference_data.images[:n])
            self._reference = float(d.median())
        return self._reference


def index_for(dataset: str) -> TrainingIndex:
    """The (cached, per process) index of a built-in dataset's training split."""
    name = canonical_name(dataset)
    with _LOCK:
        if name not in _INDEXES:
            train = load_dataset(name, "train")
            try:
                test = load_dataset(name, "test")
            except (OSError, ValueError):
                test = None
            _INDEXES[name] = TrainingIndex(train, test)
        return _INDEXES[name]
