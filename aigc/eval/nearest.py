"""Memorisation check: the training image nearest to a generated one.

A generator that copies its training set produces samples whose nearest training image is
almost identical. The training set is flattened once per dataset and kept in memory as float32
(60,000 x 784 for MNIST, 188 MB) with its squared norms, so a query is one matrix product
(~10 ms on two cores). For scale, `reference()` gives the typical distance from held-out test
images to their nearest training image: a sample much closer than that deserves a look.
"""
from __future__ import annotations

import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aigc.data.images import ImageData, canonical_name, load_dataset

_LOCK = threading.Lock()
_INDEXES: dict = {}                        # dataset name or (model file, mtime, size) -> TrainingIndex
MAX_MODEL_INDEXES = 8                      # per-model indexes kept (least recently used dropped first)
TRAINING_IMAGES = "training_images.npz"   # beside a model trained on an upload: the images as prepared
MAX_SAVED_BYTES = 256 * 2 ** 20           # larger prepared sets are not copied into the model folder


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
        """Median distance from `n` test images to their nearest training image; with no test set
        (an upload), from `n` training images to their nearest *other* training image."""
        if self._reference is None and self._reference_data is not None:
            d, _ = self.distances(self._reference_data.images[:n])
            self._reference = float(d.median())
        elif self._reference is None and len(self) >= 2:
            d, _ = self.distances(self.data.images[:n], k=2)
            self._reference = float(d[:, 1].median())
        return self._reference

    @property
    def reference_is_test(self) -> bool:
        """True when reference() measures held-out test images, False when training images."""
        return self._reference_data is not None


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


def distinct(images: np.ndarray) -> np.ndarray:
    """Indices (in order) of the first occurrence of each distinct image: a balanced set repeats images."""
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    return np.sort(first)


def save_training_images(model_dir: str | Path, data: ImageData) -> Path | None:
    """Keep the images a model was trained on (as prepared, distinct, uint8) beside it, so that its
    samples can be checked against them later; atomic. None when the set is too large to copy."""
    from aigc.checkpoint import atomic_path
    keep = distinct(data.images)
    images = np.ascontiguousarray(data.images[keep])
    if images.nbytes > MAX_SAVED_BYTES:
        return None
    arrays = {"images": images, "class_names": np.array([str(c) for c in data.class_names], dtype=np.str_)}
    if data.labels is not None:
        arrays["labels"] = np.asarray(data.labels, dtype=np.int64)[keep]
    path = Path(model_dir) / TRAINING_IMAGES
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return path


def load_training_images(path: str | Path, name: str = "training images") -> ImageData:
    """Read a training_images.npz (never unpickles); ValueError when it is not what we wrote."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images = z["images"]
            labels = z["labels"] if "labels" in z.files else None
            names = [str(c) for c in z["class_names"]] if "class_names" in z.files else []
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{Path(path).name}: not a readable set of training images ({e})") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3) or len(images) < 1:
        raise ValueError(f"{Path(path).name}: expected uint8 images N x H x W x (1 or 3), got {images.dtype} {images.shape}")
    if labels is not None and (labels.shape != (len(images),) or labels.dtype.kind not in "iu"):
        raise ValueError(f"{Path(path).name}: labels do not match the images")
    return ImageData(name, images, None if labels is None else labels.astype(np.int64), names)


def index_for_model(model_dir: str | Path | None, dataset: str | None) -> TrainingIndex:
    """The index a model's samples should be compared with: the images it was trained on when they
    are saved beside it (a model trained on an upload), else its built-in dataset's training split."""
    path = Path(model_dir) / TRAINING_IMAGES if model_dir is not None else None
    if path is not None and path.is_file():
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        with _LOCK:
            if key in _INDEXES:
                _INDEXES[key] = _INDEXES.pop(key)          # most recently used last
                return _INDEXES[key]
            index = TrainingIndex(load_training_images(path, name=f"{Path(model_dir).name} training images"))
            # a rewritten file's old index, and the least recently used beyond the limit, go
            models = [k for k in _INDEXES if isinstance(k, tuple)]
            stale = [k for k in models if k[0] == key[0]]
            for k in stale + [k for k in models if k not in stale][:max(0, len(models) - len(stale) - MAX_MODEL_INDEXES + 1)]:
                _INDEXES.pop(k, None)
            _INDEXES[key] = index
            return index
    try:
        canonical_name(dataset or "")
    except ValueError:
        raise ValueError(f"{Path(model_dir).name if model_dir is not None else 'this model'} does not record its "
                         "training images, so there is nothing to compare with") from None
    return index_for(dataset)
