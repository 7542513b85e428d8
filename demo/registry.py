"""The models a running studio serves: loaded once at start, shared read-only by every session.

Passed into `build_demo`; never a module global. Directions (for the editor's sliders) are read
from beside each model's weights, or computed on first use and stored there (aigc.latent).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aigc import checkpoint as ckpt
from aigc import latent
from aigc.catalog import list_models
from aigc.pipelines import ImagePipeline

log = logging.getLogger("aigc.demo")


@dataclass
class ModelEntry:
    name: str
    path: Path
    kind: str
    modality: str
    dataset: str | None
    metrics: dict
    card: str = ""
    error: str | None = None
    pipe: ImagePipeline | None = None
    weights_hash: str = ""
    _directions: latent.Directions | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ready(self) -> bool:
        return self.pipe is not None

    def directions(self) -> latent.Directions:
        """This model's slider directions: stored ones, or computed once (under a lock)."""
        if self._directions is None:
            with self._lock:
                if self._directions is None:
                    images = latent.training_images(self.pipe.model)
                    self._directions = latent.ensure_directions(self.pipe, images)
        return self._directions

    def add_direction(self, vector, name: str) -> latent.Directions:
        """Store a user's direction beside the weights (shared by every session from now on)."""
        d = self.directions()
        with self._lock:
            self._directions = latent.add_direction(self.path, self._directions or d, vector, name)
            return self._directions

    def rename_direction(self, index: int, name: str) -> latent.Directions:
        d = self.directions()
        with self._lock:
            self._directions = latent.rename_direction(self.path, self._directions or d, index, name)
            return self._directions


class ModelRegistry:
    """Every saved model under one weights folder (folders starting with '_' or '.' are skipped)."""

    def __init__(self, weights_dir: str | Path, device: str = "cpu"):
        self.weights_dir = Path(weights_dir).resolve()
        self.entries: dict[str, ModelEntry] = {}
        rows = []
        if self.weights_dir.is_dir():
            rows = [r for r in list_models([self.weights_dir])
                    if self.weights_dir in Path(r["path"]).resolve().parents]
        for r in rows:
            path = Path(r["path"])
            e = ModelEntry(r["name"], path, r["kind"], r["modality"], r.get("dataset"), r.get("metrics", {}),
                           error=r.get("error"))
            try:
                e.card = (path / "README.md").read_text(encoding="utf-8")[:20000]
            except OSError:
                e.card = ""
            if e.modality == "image" and e.error is None:
                try:
                    e.pipe = ImagePipeline.from_pretrained(path, device=device)
                    e.pipe.name = e.name
                    e.weights_hash = ckpt.weights_hash(path)
                except (ckpt.CheckpointError, OSError, ValueError) as err:
                    e.error = str(err)
                    log.warning("skipping %s: %s", e.name, err)
            self.entries.setdefault(e.name, e)

    # -- lookup --------------------------------------------------------------------------------
    def image_models(self) -> list[str]:
        return [n for n, e in self.entries.items() if e.ready]

    def get(self, name) -> ModelEntry:
        """An image model by name, or ValueError naming the ones that exist."""
        if not isinstance(name, str) or name not in self.entries or not self.entries[name].ready:
            have = ", ".join(self.image_models()) or "none"
            shown = name if isinstance(name, str) and len(name) < 80 else "(that)"
            raise ValueError(f"unknown model {shown!r}; available image models: {have}")
        return self.entries[name]

    def warm(self, nearest: bool = True) -> threading.Thread:
        """Compute missing directions (and the nearest-neighbour indexes) in the background, so
        the first person to open the editor does not wait for them."""
        def run():
            for e in list(self.entries.values()):
                if e.ready:
                    try:
                        e.directions()
                    except Exception as err:  # noqa: BLE001 - a background nicety; log and go on
                        log.warning("directions for %s: %s", e.name, err)
            if nearest:
                from aigc.nearest import index_for

                for ds in sorted({e.dataset for e in self.entries.values() if e.ready and e.dataset}):
                    try:
                        index_for(ds)
                    except (ValueError, OSError) as err:
                        log.warning("nearest index for %s: %s", ds, err)

        t = threading.Thread(target=run, name="aigc-warm", daemon=True)
        t.start()
        return t
