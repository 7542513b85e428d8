"""The models a running studio serves: loaded once at start, shared read-only by every session.

Passed into `build_demo`; never a module global. Finding the models reads only their JSON files,
so the page can be built and served before torch is even imported; the weights load right after
(in the background when `background=True`) and a request that needs a model waits for them.
Directions (for the editor's sliders) are read from beside each model's weights, or computed on
first use and stored there (aigc.latent).

User models (fine-tuned in the app, or copied in by hand) live in a second folder, the
user-models folder. `refresh()` scans it while the app runs and loads what is new (a lock keeps
concurrent sessions from loading the same model twice; the `entries` dict is replaced, never
changed in place, so a session iterating over it is never disturbed); `add(path)` does the same
for one just-published model and returns its name; `version` counts the changes, so a page can
tell that its pickers are out of date. A folder that cannot be loaded (no config.json, pickled
weights, shapes that do not match) is skipped with a logged reason and shown as an error in the
Models tab; it never stops the others.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("aigc.demo")
MAX_JSON = 1 << 20
# the headline figures of metrics.json (as aigc.hub.KEY_METRICS; repeated here so that finding
# the models does not import torch)
KEY_METRICS = ("fid", "kid", "nll_nats", "domain_fd", "label_acc", "nats_per_char", "bits_per_char",
               "kid_randconv", "copy_rate", "kl_per_line", "active_units", "interp_well_formed")
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
    pipe: object | None = None                     # aigc.pipelines.image.ImagePipeline once loaded
    weights_hash: str = ""
    user: bool = False                             # found in the user-models folder
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
        out.append(read_entry(d, name))
    return out


def read_entry(d: Path, name: str) -> ModelEntry:
    """One saved model folder's entry, from its JSON files alone (a bad config.json gives an
    entry with an error)."""
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
        return ModelEntry(name, d, "?", "?", None, {}, card=card,
                          error="config.json is missing, unreadable or lacks 'kind'/'config'")
    return ModelEntry(name, d, cfg["kind"], str(cfg.get("modality", "image")), cfg.get("dataset"),
                      metrics, dict(cfg["config"]), card)


def default_user_models(weights_dir: str | Path) -> Path:
    """The user-models folder of an app serving `weights_dir`: $AIGC_USER_MODELS, else
    `user_models/` beside the weights folder (where the Fine-tune tab's jobs publish)."""
    env = os.environ.get("AIGC_USER_MODELS")
    return Path(env).resolve() if env else Path(weights_dir).resolve().parent / "user_models"


def _signature(d: Path) -> tuple:
    """What changes when a model folder is replaced or rewritten (mtimes of its two key files)."""
    out = []
    for f in ("config.json", "model.safetensors"):
        try:
            out.append((d / f).stat().st_mtime_ns)
        except OSError:
            out.append(None)
    return tuple(out)


class ModelRegistry:
    """Every saved model under one weights folder, plus the user-models folder (when given)."""

    def __init__(self, weights_dir: str | Path, device: str = "cpu", background: bool = False,
                 on_load=None, user_models: str | Path | None = None):
        self.weights_dir = Path(weights_dir).resolve()
        self.user_models_dir = Path(user_models).resolve() if user_models else None
        self.device = device
        self._on_load = on_load                 # run first on the loading thread (e.g. torch settings)
        self._refresh_lock = threading.RLock()
        self._seen: dict[Path, tuple] = {}      # user-model folder -> its signature when last loaded
        self._side: dict[Path, object] = {}     # pipelines loaded by path for models not in entries
        self.version = 0
        entries: dict[str, ModelEntry] = {}
        for e in scan(self.weights_dir):
            entries.setdefault(e.name, e)
        if self.user_models_dir is not None:
            for e in scan(self.user_models_dir):
                e.user = True
                e.name = self._unique_name(e.name, entries)
                entries[e.name] = e
                self._seen[e.path.resolve()] = _signature(e.path)
        self.entries = entries
        self._ready = threading.Event()
        if background:
            threading.Thread(target=self._load_all, name="aigc-load", daemon=True).start()
        else:
            self._load_all()

    def _load_all(self) -> None:
        try:
            if self._on_load is not None:
                self._on_load()
            for e in list(self.entries.values()):
                if e.modality == "image" or e.user:      # shipped text models load on first use
                    self._load(e)
        finally:
            self._ready.set()

    def _load(self, e: ModelEntry) -> None:
        """Load one entry's weights (image: ImagePipeline; text: TextPipeline); a failure is kept
        as the entry's error and logged, never raised."""
        if e.error is not None or e.pipe is not None:
            return
        from aigc import checkpoint as ckpt
        try:
            if e.modality == "image":
                from aigc.pipelines.image import ImagePipeline
                pipe = ImagePipeline.from_pretrained(e.path, device=self.device)
            elif e.modality == "text":
                from aigc.pipelines.charlm import TextPipeline
                pipe = TextPipeline.from_pretrained(e.path, device=self.device)
            else:
                raise ValueError(f"unknown modality {e.modality!r}")
            pipe.name = e.name
            e.weights_hash = ckpt.weights_hash(e.path)
            e.pipe = pipe
        except (ckpt.CheckpointError, OSError, ValueError, KeyError, TypeError) as err:
            e.error = str(err)[:500] or type(err).__name__
            log.warning("skipping model %s (%s): %s", e.name, e.path, e.error)

    # -- user models: found while the app runs -------------------------------------------------
    @staticmethod
    def _unique_name(name: str, taken: dict) -> str:
        if name not in taken:
            return name
        k = 1
        while f"{name}-user{'' if k == 1 else f'-{k}'}" in taken:
            k += 1
        return f"{name}-user{'' if k == 1 else f'-{k}'}"

    def _user_folders(self) -> list[Path]:
        d = self.user_models_dir
        if d is None or not d.is_dir():
            return []
        out = []
        for p in sorted(d.iterdir()):
            if not p.is_dir() or p.name.startswith(("_", ".")):
                continue              # support files, and a model being copied in (.tmp-...)
            if not (p / "config.json").is_file() and (p / "model" / "config.json").is_file():
                p = p / "model"       # a training run folder: its model
            out.append(p)
        return out

    def _upsert(self, folder: Path, entries: dict) -> str | None:
        """Read (and load) one user-model folder into `entries` -> its name (None: skipped)."""
        folder = Path(folder).resolve()
        sig = _signature(folder)
        self._seen[folder] = sig
        if sig[0] is None:
            log.warning("skipping user model folder %s: no config.json (not a saved aigc model)", folder)
            return None
        e = read_entry(folder, folder.name if folder.name != "model" else folder.parent.name)
        e.user = True
        old = next((n for n, x in entries.items() if x.path.resolve() == folder), None)
        if old is not None:
            del entries[old]
        e.name = old or self._unique_name(e.name, entries)
        if e.error is None:
            self._load(e)
        else:
            log.warning("skipping user model %s (%s): %s", e.name, folder, e.error)
        entries[e.name] = e
        return e.name

    def refresh(self) -> list[str]:
        """Scan the user-models folder: load models that are new or were rewritten, forget ones
        whose folder is gone. Returns the names of the entries added or reloaded (unloadable ones
        included: they carry their error). Safe to call from any number of sessions at once."""
        if self.user_models_dir is None:
            return []
        with self._refresh_lock:
            folders = {p.resolve(): p for p in self._user_folders()}
            entries = dict(self.entries)
            gone = [n for n, e in entries.items() if e.user and self.user_models_dir in e.path.resolve().parents
                    and e.path.resolve() not in folders]
            for n in gone:
                self._seen.pop(entries.pop(n).path.resolve(), None)
            changed = [p for p in folders if self._seen.get(p) != _signature(p)]
            names = [n for n in (self._upsert(p, entries) for p in changed) if n]
            if gone or names:
                self.entries = entries
                self.version += 1
            return names

    def add(self, path: str | Path) -> str | None:
        """A model folder that has just appeared (a finished fine-tune job) -> its name here,
        loaded; None when it cannot be used (the reason is logged and kept as its error)."""
        path = Path(path).resolve()
        if not path.is_dir():
            return None
        with self._refresh_lock:
            for n, e in self.entries.items():
                if e.path.resolve() == path and self._seen.get(path) == _signature(path):
                    return n if e.error is None else None
            entries = dict(self.entries)
            name = self._upsert(path, entries)
            if name is not None:
                self.entries = entries
                self.version += 1
            return name if name is not None and entries[name].error is None else None

    def name_for(self, path: str | Path) -> str | None:
        """The entry name of a model folder, if it is known."""
        path = Path(path).resolve()
        return next((n for n, e in self.entries.items() if e.path.resolve() == path), None)

    # -- text models -------------------------------------------------------------------------------
    def text_choices(self) -> list[str]:
        """Names of the usable text models: the weights folder's and the user models' (call
        `refresh()` first to include ones published since)."""
        return [n for n, e in self.entries.items() if e.modality == "text" and e.error is None]

    def text_entry(self, name) -> ModelEntry:
        e = self.entries.get(name) if isinstance(name, str) else None
        if e is None or e.modality != "text":
            have = ", ".join(self.text_choices()) or "none"
            shown = name if isinstance(name, str) and len(name) < 80 else "(that)"
            raise ValueError(f"unknown text model {shown!r}; available text models: {have}")
        if e.error:
            raise ValueError(f"text model {name!r} could not be loaded: {e.error}")
        return e

    def text_pipeline(self, name):
        """A text model's aigc.pipelines.charlm.TextPipeline, loaded on first use (once, under a lock)."""
        e = self.text_entry(name)
        if e.pipe is None:
            with e._lock:
                self._load(e)
        if e.error:
            raise ValueError(f"text model {name!r} could not be loaded: {e.error}")
        return e.pipe

    def pipeline_for(self, path: str | Path):
        """The pipeline of the model saved at `path`: the registry's own when it serves that
        folder, else loaded once and kept aside (e.g. the base of a job submitted from the CLI)."""
        path = Path(path).resolve()
        name = self.name_for(path)
        if name is not None:
            e = self.entries[name]
            if e.pipe is None and e.error is None:
                with e._lock:
                    self._load(e)
            if e.error:
                raise ValueError(f"model {name!r} could not be loaded: {e.error}")
            return e.pipe
        with self._refresh_lock:
            if path not in self._side:
                if not (path / "config.json").is_file():
                    raise ValueError(f"no saved model at {path.name}")
                e = read_entry(path, path.name)
                if e.error:
                    raise ValueError(f"model {path.name} could not be loaded: {e.error}")
                self._load(e)
                if e.error:
                    raise ValueError(f"model {path.name} could not be loaded: {e.error}")
                self._side[path] = e.pipe
            return self._side[path]

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
                if e.ready and e.modality == "image":
                    try:
                        e.directions()
                    except Exception as err:  # noqa: BLE001 - a background nicety; log and go on
                        log.warning("directions for %s: %s", e.name, err)
            if nearest:
                from aigc.eval.nearest import index_for

                for ds in sorted({e.dataset for e in self.entries.values()
                                  if e.ready and e.modality == "image" and e.dataset and not e.user}):
                    try:
                        index_for(ds)
                    except (ValueError, OSError) as err:
                        log.warning("nearest index for %s: %s", ds, err)

        t = threading.Thread(target=run, name="aigc-warm", daemon=True)
        t.start()
        return t
