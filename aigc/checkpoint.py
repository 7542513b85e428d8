"""Safe, self-describing checkpoints (the diffusers layout).

A saved model is a folder:
  config.json         {"kind", "config", "format", "aigc_version", ...meta}: enough to rebuild the module
  model.safetensors   the weights; loaded with safetensors only, never unpickled
  README.md           the model card (measured metrics and the commands that reproduce them)
  metrics.json        the measured metrics, machine-readable
Resumable training state (optimizers, step, RNG) lives apart in `state.pt`, written by this
program and read back with `torch.load(weights_only=True)`.

Every write goes to a temporary file in the same folder and is moved into place with os.replace,
so a crash never leaves a half-written file behind; a refused load changes nothing on disk.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from aigc import __version__, legacy
from aigc.kinds import get_kind, make_config
from aigc.fileio import (MAX_CONFIG_BYTES, CheckpointError, atomic_path, atomic_write_json,  # noqa: F401 (re-exported)
                         atomic_write_text, read_config, read_metrics)
from aigc.hub import REPO_ROOT

FORMAT = "aigc-model/1"


def atomic_torch_save(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# -- save ----------------------------------------------------------------------------------------
def config_dict(model) -> dict:
    return dataclasses.asdict(model.config)


def save_pretrained(model, directory: str | Path, *, meta: dict | None = None,
                    card: str | None = None, metrics: dict | None = None) -> Path:
    """Write config.json, model.safetensors, README.md and metrics.json into `directory`.

    Existing metrics/card are kept unless new ones are given."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "kind": model.kind})
    for name, obj in getattr(model, "extra_files", lambda: {})().items():
        atomic_write_json(directory / name, obj)   # e.g. a text model's tokenizer.json
    cfg = {"format": FORMAT, "kind": model.kind, "modality": model.modality,
           "aigc_version": __version__, "config": config_dict(model)}
    cfg.update(meta or {})
    atomic_write_json(directory / "config.json", cfg)
    if metrics is not None or not (directory / "metrics.json").exists():
        atomic_write_json(directory / "metrics.json", metrics or {})
    if card is not None:
        atomic_write_text(directory / "README.md", card)
    elif not (directory / "README.md").exists():
        atomic_write_text(directory / "README.md", default_card(directory.name, cfg, metrics or {}))
    return directory


def default_card(name: str, cfg: dict, metrics: dict) -> str:
    lines = [f"# {name}", "", f"Kind: `{cfg['kind']}`, dataset: `{cfg.get('dataset', '?')}`.", "",
             "## Metrics", ""]
    lines += [f"- {k}: {v}" for k, v in metrics.items()] or ["Not evaluated yet."]
    return "\n".join(lines) + "\n"


# -- load ----------------------------------------------------------------------------------------
def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; anything else (a pickle, a truncated file) is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == b"PK" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
            raise CheckpointError(f"{path}: this is a pickled torch checkpoint, not safetensors; "
                                  "refusing to unpickle it") from None
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def from_pretrained(directory: str | Path, device: str | torch.device = "cpu"):
    """Rebuild a model from a saved folder. Validates kind, config fields, tensor names, shapes
    and finiteness before anything is loaded into the module."""
    directory = Path(directory)
    cfg = read_config(directory)
    try:
        kind = get_kind(cfg["kind"])
        config = make_config(cfg["kind"], **legacy.upgrade_model_config(cfg["kind"], cfg["config"]))
        model = kind.model_cls(config)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{directory}: bad config ({e})") from None
    state = load_weights(directory / "model.safetensors")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{directory}: weights do not match the config "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for name, t in state.items():
        if t.shape != expected[name].shape:
            raise CheckpointError(f"{directory}: tensor {name} has shape {tuple(t.shape)}, "
                                  f"config needs {tuple(expected[name].shape)}")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{directory}: tensor {name} holds NaN or infinite values")
    model.load_state_dict(state)
    if hasattr(model, "load_extra_files"):
        try:
            model.load_extra_files(directory)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{directory}: {e}") from None
    model.meta = {k: v for k, v in cfg.items() if k != "config"}
    model.name = directory.name
    return model.to(device).eval()


def weights_hash(directory: str | Path) -> str:
    """Short content hash of model.safetensors: names a model exactly in recipes and cards."""
    h = hashlib.sha256()
    with open(Path(directory) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


# -- lineage: what a fine-tuned model was trained from ------------------------------------------
MAX_LINEAGE = 64    # the most generations a card tells; a longer history is cut, and says so


def find_base(path: str) -> Path | None:
    """A base named as it was typed: relative to where the command ran, which for the shipped
    models and runs/ is the repository root; None when neither place has it."""
    for p in (Path(path), REPO_ROOT / path):
        if (p / "config.json").is_file():
            return p
    return None


def train_record(directory: str | Path, _seen: tuple[str, ...] = ()) -> dict:
    """A saved model's `train` record with its `init_from` chain filled in. A model saved before
    the record existed is looked up through the run folder around it (`RUN/model` beside
    `RUN/options.json`), but only while that can be trusted: the base must still hold weights
    older than the model's own, and no weights may appear twice in the chain. A base folder that
    has been replaced since (say, by shipping this very model there) ends the chain instead."""
    directory = Path(directory)
    raw = read_config(directory).get("train")
    train = dict(raw) if isinstance(raw, dict) else {}
    if "init_from" in train or len(_seen) >= MAX_LINEAGE:
        return train
    as_given = legacy.run_folder_base(directory)
    base = find_base(as_given) if as_given is not None else None
    if base is None:
        return train
    try:
        seen = _seen or (weights_hash(directory),)
        newer = (base / "model.safetensors").stat().st_mtime >= (directory / "model.safetensors").stat().st_mtime
        if newer or weights_hash(base) in seen:
            return train
        train["init_from"] = base_record(base, seen, as_given=as_given)
    except (CheckpointError, OSError):
        pass
    return train


def base_record(directory: str | Path, _seen: tuple[str, ...] = (), as_given: str | None = None) -> dict:
    """What a model trained with `--init-from directory` starts from: the folder as given, its
    kind, its weights hash and its own train record (which names its base in turn). Stored in the
    new model's config, it keeps the history even after the base folder is replaced."""
    directory = Path(directory)
    cfg = read_config(directory)
    h = weights_hash(directory)
    return {"path": as_given or str(directory), "kind": cfg["kind"], "weights": h,
            "train": train_record(directory, _seen + (h,))}


def lineage(train: dict) -> list[dict]:
    """The bases of a train record, nearest first (at most MAX_LINEAGE)."""
    chain, rec = [], train.get("init_from")
    while isinstance(rec, dict) and len(chain) < MAX_LINEAGE:
        chain.append(rec)
        t = rec.get("train")
        rec = t.get("init_from") if isinstance(t, dict) else None
    return chain


# -- resumable training state ---------------------------------------------------------------------
def save_state(path: str | Path, state: dict) -> None:
    """Training state (tensors, numbers, strings, lists, dicts only) for exact resumption."""
    atomic_torch_save(state, path)


def load_state(path: str | Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read means the same thing here
        raise CheckpointError(f"{path}: unreadable training state ({type(e).__name__}: {e})") from None
