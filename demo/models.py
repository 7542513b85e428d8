"""The one loader of the studio's models, image and text: every tab asks this registry.

Passed into `build_demo`; never a module global. Finding the models reads only their JSON files
(demo.model_entry), so the page can be built and served before torch is even imported; the
weights load right after (in the background when `background=True`) and a request that needs a
model waits for them. Shipped text models load on first use.

User models (fine-tuned in the app, or copied in by hand) live in a second folder, the
user-models folder. `refresh()` scans it while the app runs and loads what is new (a lock keeps
concurrent sessions from loading the same model twice; the `entries` dict is replaced, never
changed in place, so a session iterating over it is never disturbed); `add(path)` does the same
for one just-published model and returns its name; `version` counts the changes (sharing
included), so a page can tell that its pickers are out of date. A folder that cannot be loaded
(no config.json, pickled weights, shapes that do not match) is skipped with a logged reason and
shown as an error in the Models tab; it never stops the others.

Owners: a model folder with `owner.json` is seen only by its owner until shared. Every lookup
takes `owner` (an id from demo.common.owner_id; None means the server itself, which sees all);
a model the asker may not see is answered exactly like one that does not exist.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from demo.model_entry import ModelEntry, model_folder, read_entry, scan

log = logging.getLogger("aigc.demo")
LOAD_TIMEOUT_S = 300
NOBODY = ""              # an asker who owns nothing: sees the shipped and the shared models


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


def _shown(name) -> str:
    return name if isinstance(name, str) and len(name) < 80 else "(that)"


class ModelRegistry:
    """Every saved model under one weights folder, plus the user-models folder (when given).
    `preload=False`: nothing loads at start; each model loads when first asked for."""

    def __init__(self, weights_dir: str | Path, device: str = "cpu", background: bool = False,
                 on_load=None, user_models: str | Path | None = None, preload: bool = True):
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
        for e in entries.values():
            if e.error:
                log.warning("skipping model %s (%s): %s", e.name, e.path, e.error)
        self.entries = entries
        self._access = self._access_key(entries)
        self._ready = threading.Event()
        if not preload:
            self._ready.set()
        elif background:
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
        """Load one entry's weights into its pipeline; a failure is kept as the entry's error and
        logged, never raised."""
        if e.error is not None or e.pipe is not None:
            return
        from aigc import checkpoint as ckpt
        try:
            if e.modality == "image":
                from aigc.pipelines.image import ImagePipeline as Pipeline
            elif e.modality == "text" and e.kind == "text-vae":
                from aigc.pipelines.textvae import TextVAEPipeline as Pipeline
            elif e.modality == "text":
                from aigc.pipelines.charlm import TextPipeline as Pipeline
            else:
                raise ValueError(f"unknown modality {e.modality!r}")
            pipe = Pipeline.from_pretrained(e.path, device=self.device)
            pipe.name = e.name
            e.weights_hash = ckpt.weights_hash(e.path)
            e.pipe = pipe
        except Exception as err:  # noqa: BLE001 - one bad folder never stops the others
            e.error = str(err)[:500] or type(err).__name__
            log.warning("skipping model %s (%s): %s", e.name, e.path, e.error)

    def _loaded(self, e: ModelEntry, what: str = "model") -> ModelEntry:
        """`e` with its weights loaded (once, under its lock), or ValueError with the reason."""
        if e.pipe is None and e.error is None:
            with e._lock:
                self._load(e)
        if e.error:
            raise ValueError(f"{what} {e.name!r} could not be loaded: {e.error}")
        return e

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
        # support files, and a model being copied in (.tmp-...), are not looked at
        return [model_folder(p) or p for p in sorted(d.iterdir())
                if p.is_dir() and not p.name.startswith(("_", "."))]

    def _upsert(self, folder: Path, entries: dict) -> str | None:
        """Read (and load) one user-model folder into `entries` -> its name (None: skipped)."""
        folder = Path(folder).resolve()
        sig = _signature(folder)
        self._seen[folder] = sig
        if sig[0] is None:
            log.warning("skipping user model folder %s: no config.json (not a saved aigc model)", folder)
            return None
        e = read_entry(folder)
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
        whose folder is gone, notice ones shared or unshared. Returns the names of the entries
        added or reloaded (unloadable ones included: they carry their error). Safe to call from
        any number of sessions at once."""
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
            access = self._access_key(entries)
            if gone or names or access != self._access:
                self.entries = entries
                self._access = access
                self.version += 1
            return names

    @staticmethod
    def _access_key(entries: dict) -> tuple:
        """Who may see what: changes when a model is shared or unshared."""
        for e in entries.values():
            e.read_owner()
        return tuple((n, e.owner, e.shared) for n, e in entries.items())

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
                self._access = self._access_key(entries)
                self.version += 1
            return name if name is not None and entries[name].error is None else None

    def name_for(self, path: str | Path) -> str | None:
        """The entry name of a model folder, if it is known."""
        path = Path(path).resolve()
        return next((n for n, e in self.entries.items() if e.path.resolve() == path), None)

    def visible(self, owner: str | None = None) -> dict[str, ModelEntry]:
        """The entries `owner` may see (None: all of them)."""
        return {n: e for n, e in self.entries.items() if e.visible_to(owner)}

    # -- text models -------------------------------------------------------------------------------
    def text_choices(self, owner: str | None = None, kind: str | None = None) -> list[str]:
        """Names of the usable text models `owner` may see (of one kind, when given): the weights
        folder's, then the user models' (call `refresh()` first to include ones published since)."""
        return [n for n, e in self.visible(owner).items()
                if e.modality == "text" and e.error is None and kind in (None, e.kind)]

    def text_entry(self, name, owner: str | None = None) -> ModelEntry:
        e = self.entries.get(name) if isinstance(name, str) else None
        if e is None or e.modality != "text" or not e.visible_to(owner):
            have = ", ".join(self.text_choices(owner)) or "none"
            raise ValueError(f"unknown text model {_shown(name)!r}; available text models: {have}")
        if e.error:
            raise ValueError(f"text model {name!r} could not be loaded: {e.error}")
        return e

    def text_pipeline(self, name, owner: str | None = None):
        """A text model's pipeline (char-lm: TextPipeline; text-vae: TextVAEPipeline), loaded on
        first use (once, under a lock)."""
        return self._loaded(self.text_entry(name, owner), "text model").pipe

    def pipeline_for(self, path: str | Path):
        """The pipeline of the model saved at `path`: the registry's own when it serves that
        folder, else loaded once and kept aside (e.g. the base of a job submitted from the CLI)."""
        path = Path(path).resolve()
        name = self.name_for(path)
        if name is not None:
            return self._loaded(self.entries[name]).pipe
        with self._refresh_lock:
            if path not in self._side:
                if not (path / "config.json").is_file():
                    raise ValueError(f"no saved model at {path.name}")
                self._side[path] = self._loaded(read_entry(path)).pipe
            return self._side[path]

    def wait(self, timeout: float | None = LOAD_TIMEOUT_S) -> bool:
        """Block until the weights have loaded (True) or the timeout passed (False)."""
        return self._ready.wait(timeout)

    # -- image models --------------------------------------------------------------------------
    def image_models(self, owner: str | None = None) -> list[str]:
        """Image models `owner` may see: found (before loading) or loaded (after)."""
        return [n for n, e in self.visible(owner).items() if e.modality == "image" and e.error is None]

    @property
    def loaded(self) -> bool:
        return self._ready.is_set()

    def entry(self, name, owner: str | None = None) -> ModelEntry:
        """An image model's entry (its config is known; its weights may still be loading)."""
        e = self.entries.get(name) if isinstance(name, str) else None
        if e is not None and e.visible_to(owner) and e.modality == "image" and e.error:
            raise ValueError(f"model {name!r} could not be loaded: {e.error}")
        if e is None or e.modality != "image" or not e.visible_to(owner):
            have = ", ".join(self.image_models(owner)) or "none"
            raise ValueError(f"unknown model {_shown(name)!r}; available image models: {have}")
        return e

    def get(self, name, owner: str | None = None) -> ModelEntry:
        """A loaded image model by name, or ValueError naming the ones that exist."""
        self.entry(name, owner)
        if not self.wait():
            raise ValueError("the models are still loading; try again in a moment")
        return self._loaded(self.entry(name, owner))

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


__all__ = ["NOBODY", "ModelEntry", "ModelRegistry", "default_user_models", "read_entry", "scan"]
