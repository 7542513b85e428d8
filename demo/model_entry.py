"""One saved model as the studio sees it: what its JSON files say (config, metrics, card, owner),
its pipeline once loaded, and its slider directions. Reading these needs no torch."""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aigc.finetune.owners import OWNER_FILE, UNREADABLE, read_owner
from aigc.hub import KEY_METRICS, model_name, resolve_model_path

log = logging.getLogger("aigc.demo")
MAX_JSON = 1 << 20


def read_json(path: Path):
    """A small JSON file's value; None when it is missing, too big or not JSON."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_JSON:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def model_folder(d: Path) -> Path | None:
    """A saved model folder, or a training run folder's model/ (aigc.hub's rule); None otherwise."""
    try:
        return resolve_model_path(Path(d).resolve())
    except FileNotFoundError:
        return None


def _mtime(path: Path):
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


@dataclass
class ModelEntry:
    name: str
    path: Path
    kind: str
    modality: str
    dataset: str | None
    metrics: dict
    config: dict = field(default_factory=dict)     # the model's config fields (from config.json)
    card: str = ""
    error: str | None = None
    pipe: object | None = None                     # the model's pipeline once loaded
    weights_hash: str = ""
    user: bool = False                             # found in the user-models folder
    text_stats: dict = field(default_factory=dict)
    owner: str | None = None                       # None: everyone's (shipped, or made before owners)
    shared: bool = True
    _owner_mtime: int | None = -1              # owner.json's mtime when read (-1: never read)
    _directions: object | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- what config.json says (available before the weights load) -----------------------------------
    @property
    def class_names(self) -> list[str]:
        names = self.config.get("class_names") or []
        n = int(self.config.get("num_classes") or 0)
        return [str(x) for x in names][:n] if names else [str(i) for i in range(n)]

    @property
    def conditional(self) -> bool:
        return int(self.config.get("num_classes") or 0) > 0

    @property
    def latent_dim(self) -> int:
        return int(self.config.get("latent_dim") or 0)

    @property
    def ready(self) -> bool:
        return self.pipe is not None

    # -- who may use it ---------------------------------------------------------------------------
    def read_owner(self) -> bool:
        """Re-read owner.json when it changed on disk (shared or unshared since) -> changed?"""
        f = self.path / OWNER_FILE
        m = _mtime(f)
        if m == self._owner_mtime:
            return False
        before = (self.owner, self.shared)
        self._owner_mtime = m
        if m is None:
            self.owner, self.shared = None, True
        else:
            o = read_owner(self.path) or {"owner": UNREADABLE, "shared": False}   # vanished meanwhile
            if o["owner"] == UNREADABLE:
                log.warning("model %s: %s is unreadable; the model is shown to nobody", self.name, f)
            self.owner, self.shared = o["owner"], o["shared"]
        return (self.owner, self.shared) != before

    def visible_to(self, who: str | None) -> bool:
        """May `who` (an owner id; None: the server itself) use this model?"""
        self.read_owner()
        return who is None or self.owner is None or self.shared or self.owner == who

    def owned_by_other(self, who: str | None) -> bool:
        """A model someone else made (shared or not): its training pictures are theirs."""
        self.read_owner()
        return who is not None and self.owner is not None and self.owner != who

    # -- directions -----------------------------------------------------------------------------------
    def directions(self):
        """This model's slider directions: stored ones, or computed once (under a lock)."""
        from aigc import latent

        if self._directions is None:
            with self._lock:
                if self._directions is None:
                    images = latent.training_images(self.pipe.model)
                    self._directions = latent.ensure_directions(self.pipe, images)
        return self._directions

    def _store_directions(self, change, what: str):
        """Apply `change(path, directions)` (which writes beside the weights) under the lock."""
        d = self.directions()
        with self._lock:
            try:
                self._directions = change(self.path, self._directions or d)
            except OSError as err:
                raise ValueError(f"could not store the {what} beside {self.name}'s weights ({err.strerror})") from None
            return self._directions

    def add_direction(self, vector, name: str):
        """Store a user's direction beside the weights (shared by every session from now on)."""
        from aigc import latent

        return self._store_directions(lambda path, d: latent.add_direction(path, d, vector, name), "direction")

    def rename_direction(self, index: int, name: str):
        from aigc import latent

        return self._store_directions(lambda path, d: latent.rename_direction(path, d, index, name), "name")


def read_entry(d: Path, name: str | None = None) -> ModelEntry:
    """One saved model folder's entry, from its JSON files alone (a bad config.json gives an
    entry with an error)."""
    d = Path(d)
    name = name or model_name(d)
    cfg = read_json(d / "config.json")
    metrics = read_json(d / "metrics.json")
    metrics = metrics if isinstance(metrics, dict) else {}
    metrics = {k: metrics[k] for k in KEY_METRICS
               if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics.get(k), bool)}
    try:
        card = (d / "README.md").read_text(encoding="utf-8")[:20000]
    except (OSError, UnicodeDecodeError):
        card = ""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("kind"), str) or not isinstance(cfg.get("config"), dict):
        e = ModelEntry(name, d, "?", "?", None, {}, card=card,
                       error="config.json is missing, unreadable or lacks 'kind'/'config'")
    else:
        stats = cfg.get("text_stats")
        e = ModelEntry(name, d, cfg["kind"], str(cfg.get("modality", "image")), cfg.get("dataset"), metrics,
                       dict(cfg["config"]), card, text_stats=stats if isinstance(stats, dict) else {})
    e.read_owner()
    return e


def scan(root: Path) -> list[ModelEntry]:
    """Saved models in a folder, from their JSON files alone (folders starting with '_' or '.'
    hold support files or a model being copied in; a training run folder stands for its model/).
    An unreadable folder is skipped with a logged reason."""
    out = []
    try:
        dirs = sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    except OSError as err:
        if Path(root).exists():
            log.warning("cannot list models in %s: %s", root, err)
        return out
    for d in dirs:
        folder = model_folder(d)
        if folder is None:
            log.warning("skipping %s: no config.json (not a saved aigc model)", d)
            continue
        out.append(read_entry(folder, model_name(folder)))
    return out
