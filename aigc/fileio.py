"""Files that matter, written atomically (a temporary file in the same folder, then os.replace),
and a saved model's JSON read defensively. The bottom layer: no torch, no other aigc module."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

MAX_CONFIG_BYTES = 1 << 20


class CheckpointError(ValueError):
    """A saved model that cannot be loaded; the message says why."""


# -- atomic writes -------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success move it into place atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def read_config(directory: str | Path) -> dict:
    directory = Path(directory)
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{directory}: no config.json (not a saved aigc model)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path}: config.json is implausibly large")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: config.json is not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or "kind" not in cfg or not isinstance(cfg.get("config"), dict):
        raise CheckpointError(f"{path}: config.json lacks 'kind' or 'config'")
    return cfg


def read_metrics(directory: str | Path) -> dict:
    path = Path(directory) / "metrics.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
