"""Who owns a published model: `owner.json` {"owner": ID, "shared": bool} in its folder.

An owner ID is a string ("user:NAME", "token:HASH", "session:HASH" or "local"). A folder without
owner.json (shipped weights, models published before owners existed) belongs to nobody and is
visible to all. No torch import: the server reads these on every listing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from aigc.fileio import atomic_write_json

OWNER_FILE = "owner.json"


UNREADABLE = "?unreadable"      # owns a folder whose owner.json cannot be read: hidden from everyone


def read_owner(model_dir: str | Path) -> dict | None:
    """{"owner": ID, "shared": bool}; None for a folder without owner.json (nobody's, public). An
    owner.json that exists but cannot be read hides the model (fails closed)."""
    path = Path(model_dir) / OWNER_FILE
    if not path.exists():
        return None
    try:
        o = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        o = None
    if not isinstance(o, dict) or not isinstance(o.get("owner"), str):
        return {"owner": UNREADABLE, "shared": False}
    return {"owner": o["owner"], "shared": o.get("shared") is True}


def write_owner(model_dir: str | Path, owner: str, shared: bool = False) -> None:
    if not isinstance(owner, str) or not owner:
        raise ValueError("an owner must be a non-empty string")
    atomic_write_json(Path(model_dir) / OWNER_FILE, {"owner": owner, "shared": bool(shared)})


def visible_to(model_dir: str | Path, owner: str | None) -> bool:
    """A model folder is visible to `owner` when it has no owner, is shared, or is theirs."""
    o = read_owner(model_dir)
    return o is None or o["shared"] or o["owner"] == owner


def set_shared(model_dir: str | Path, owner: str, shared: bool) -> dict:
    """Share (or stop sharing) a published model; only its owner may. Another owner's model answers
    like a missing one (ValueError "no such model")."""
    d = Path(model_dir)
    o = read_owner(d) if (d / "config.json").is_file() else None
    if o is None or o["owner"] != owner:
        raise ValueError(f"no such model {d.name!r} among your fine-tuned models")
    write_owner(d, owner, shared)
    return {"owner": owner, "shared": bool(shared)}


def folder_bytes(path: str | Path) -> int:
    """Bytes of the files under `path` (links not followed; 0 when it is missing)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total
