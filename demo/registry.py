"""The models a running studio serves: loaded once at start, shared read-only by every session.

Passed into `build_demo`; never a module global. Finding the models reads only their JSON files,
so the page can be built and served before torch is even imported; the weights load right after
(in the background when `background=True`) and a request that needs a model waits for them.
Directions (for the editor's sliders) are read from beside each model's weights, or computed on
first use and stored there (aigc.latent).
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("aigc.demo")
MAX_JSON = 1 << 20
# the headline figures of metrics.json (as aigc.catalog.KEY_METRICS; repeated here so that finding
# the models does not import torch)
KEY_METRICS = ("fid", "kid", "nll_nats", "domain_fd", "label_acc", "nats_per_char", "bits_per_char")
LOAD_TIMEOUT_S = 300


def _read_json(path: Path):
    if not path.is_file() or path.stat().st_size > MAX_JSON:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
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
    pipe: object | None = None                     # aigc.pipelines.ImagePipeline once loaded
    weights_hash: str = ""
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


def scan(weights_dir: Path) -> list[ModelEntry]:
    """Saved models in a folder, from their JSON files alone (folders starting with '_' or '.'
    hold support files; a training run folder stands for its model/)."""
    out = []
    if not weights_dir.is_dir():
        return out
    for d in sorted(p for p in weights_dir.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        name = d.name
        if not (d / "config.json").is_file() and (d / "model" / "config.json").is_file():
            d = d / "model"
        if not (d / "config.json").is_file():
            continue
        cfg = _read_json(d / "config.json")
        metrics = _read_json(d / "metrics.json")
        metrics = metrics if isinstance(metrics, dict) else {}
        metrics = {k: metrics[k] for k in KEY_METRICS
                   if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics.get(k), bool)}
        try:
            card = (d / "README.md").read_text(encoding="utf-8")[:20000]
        except (OSError, UnicodeDecodeError):
            card = ""
        if not isinstance(cfg, dict) or not isinstance(cfg.get("kind"), str) or not isinstance(cfg.get("config"), dict):
            out.append(ModelEntry(name, d, "?", "?", None, {}, card=card,
                                  error="config.json is missing, unreadable or lacks 'kind'/'config'"))
            continue
        out.append(ModelEntry(name, d, cfg["kind"], str(cfg.get("modality", "image")), cfg.get("dataset"),
                              metrics, dict(cfg["config"]), card))
    return out


class ModelRegistry:
    """Every saved model under one weights folder."""

    def __init__(self, weights_dir: str | Path, device: str = "cpu", background: bool = False,
                 on_load=None):
        self.weights_dir = Path(weights_dir).resolve()
        self.device = device
        self._on_load = on_load                 # run first on the loading thread (e.g. torch settings)
        self.entries: dict[str, ModelEntry] = {}
        for e in scan(self.weights_dir):
            self.entries.setdefault(e.name, e)
        self._ready = threading.Event()
        if background:
            threading.Thread(target=self._load_all, name="aigc-load", daemon=True).start()
        else:
            self._load_all()

    def _load_all(self) -> None:
        try:
            if self._on_load is not None:
                self._on_load()
            from aigc import checkpoint as ckpt
            from aigc.pipelines import ImagePipeline

            for e in self.entries.values():
                if e.modality != "image" or e.error is not None:
                    continue
                try:
                    e.pipe = ImagePipeline.from_pretrained(e.path, device=self.device)
                    e.pipe.name = e.name
                    e.weights_hash = ckpt.weights_hash(e.path)
                except (ckpt.CheckpointError, OSError, ValueError) as err:
                    e.error = str(err)
                    log.warning("skipping %s: %s", e.name, err)
        finally:
            self._ready.set()

    def wait(self, timeout: float | None = LOAD_TIMEOUT_S) -> bool:
        """Block until the weights have loaded (True) or the timeout passed (False)."""
        return self._ready.wait(timeout)

    # -- lookup --------------------------------------------------------------------------------
    def image_models(self) -> list[str]:
        """Image models found (before loading) or loaded (after)."""
        done = self._ready.is_set()
        return [n for n, e in self.entries.items()
                if e.modality == "image" and e.error is None and (e.ready or not done)]

    @property
    def loaded(self) -> bool:
        return self._ready.is_set()

    def entry(self, name) -> ModelEntry:
        """An image model's entry (its config is known; its weights may still be loading)."""
        e = self.entries.get(name) if isinstance(name, str) else None
        if e is not None and e.modality == "image" and e.error:
            raise ValueError(f"model {name!r} could not be loaded: {e.error}")
        if not isinstance(name, str) or name not in self.image_models():
            have = ", ".join(self.image_models()) or "none"
            shown = name if isinstance(name, str) and len(name) < 80 else "(that)"
            raise ValueError(f"unknown model {shown!r}; available image models: {have}")
        return self.entries[name]

    def get(self, name) -> ModelEntry:
        """A loaded image model by name, or ValueError naming the ones that exist."""
        self.entry(name)
        if not self.wait():
            raise ValueError("the models are still loading; try again in a moment")
        return self.entry(name)

    def warm(self, nearest: bool = True) -> threading.Thread:
        """Compute missing directions (and the nearest-neighbour indexes) in the background, so
        the first person to open the editor does not wait for them."""
        def run():
            self.wait(None)
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
