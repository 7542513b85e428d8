"""Image datasets.

Everything an image model trains or is evaluated on arrives as an `ImageData`: a uint8 array
N x H x W x C (channels last, as images are stored) plus optional integer labels and class names.
The built-in sets are read from IDX files under `data/`; uploaded folders and zips (the fine-tune
issue) produce the same container, so the training loop and metrics never care where data came from.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from aigc.hub import DATA_DIR



def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array; validates the header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path.name}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path.name}: only unsigned-byte IDX files are supported (type 0x{raw[2]:02x})")
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"{path.name}: truncated IDX file ({len(raw)} bytes, header says {expected})")
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


@dataclass
class ImageData:
    """A set of images: uint8 `images` (N, H, W, C), optional int64 `labels` (N,)."""

    name: str
    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError("ImageData.images must be uint8 with shape (N, H, W, C)")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("ImageData.labels must have one label per image")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) as the models see it."""
        n, h, w, c = self.images.shape
        return c, h, w

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def model_overrides(self, kind: str) -> dict:
        """Config fields a model of `kind` must take from this data (shape, classes)."""
        c, h, w = self.shape
        if h != w:
            raise ValueError(f"images must be square, got {h}x{w}")
        out = {"resolution": h, "channels": c}
        if kind == "dcgan":
            out["num_classes"] = self.num_classes if self.labels is not None else 0
            out["class_names"] = list(self.class_names) if self.labels is not None else []
        return out

    def source(self, device) -> "ImageSource":
        return ImageSource(self, device)

    def tensor(self) -> torch.Tensor:
        """All images as float32 in [0, 1], N x C x H x W."""
        return torch.from_numpy(self.images).permute(0, 3, 1, 2).float().div_(255.0)

    def label_tensor(self) -> torch.Tensor | None:
        return None if self.labels is None else torch.from_numpy(self.labels.astype(np.int64))


MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# name -> (folder under data/, class names)
DATASETS = {
    "mnist": ("mnist", MNIST_CLASSES),
    "fashion-mnist": ("fashion-mnist", FASHION_CLASSES),
}
_ALIASES = {"fashion": "fashion-mnist"}
_CACHE: dict[tuple[str, str], ImageData] = {}


def dataset_names() -> list[str]:
    return list(DATASETS)


def canonical_name(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return name


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None) -> ImageData:
    """Load a built-in dataset split ('train' or 'test') as ImageData (cached per process)."""
    name = canonical_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")
    key = (name, split)
    if key in _CACHE and data_dir is None:
        return _CACHE[key]
    folder, classes = DATASETS[name]
    root = Path(data_dir) if data_dir is not None else DATA_DIR
    prefix = "train" if split == "train" else "t10k"
    img_path = root / folder / f"{prefix}-images-idx3-ubyte.gz"
    lab_path = root / folder / f"{prefix}-labels-idx1-ubyte.gz"
    if not img_path.exists():
        raise FileNotFoundError(f"dataset file missing: {img_path}")
    images = read_idx(img_path)[..., None]  # N, 28, 28, 1
    labels = read_idx(lab_path).astype(np.int64)
    data = ImageData(name=name, images=images, labels=labels, class_names=list(classes))
    if data_dir is None:
        _CACHE[key] = data
    return data


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarisation: each pixel is 1 with probability equal to its intensity.

    Drawn afresh each time it is called, which is the standard protocol for likelihood
    training and evaluation on MNIST (a fixed binarisation overfits)."""
    return torch.bernoulli(x, generator=generator)


class ImageSource:
    """The training view of an ImageData: all images on the device as uint8 (MNIST is 47 MB),
    so a batch is one index operation: no loader workers, no host-to-device copies."""

    def __init__(self, data: ImageData, device):
        self.images = torch.from_numpy(data.images.copy()).permute(0, 3, 1, 2).contiguous().to(device)
        labels = data.label_tensor()
        self.labels = None if labels is None else labels.to(device)

    def __len__(self) -> int:
        return self.images.shape[0]

    def get(self, idx: torch.Tensor, rng=None):
        """Examples at `idx` -> (images float [0, 1] N x C x H x W, labels or None)."""
        x = self.images[idx].float().div_(255.0)
        return x, (None if self.labels is None else self.labels[idx])
