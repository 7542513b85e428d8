"""The Text tab's view of the studio's one model loader (demo.models.ModelRegistry): the text models
a person may see, by kind, and their pipelines."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from demo.common import owner_id
from demo.models import ModelRegistry


def _choices(names: list[str], current):
    return gr.update(choices=names, value=current if current in names else (names[0] if names else None))


class TextModels:
    """The Text tab's view of the studio's ModelRegistry (demo.models, the one loader): its text
    models by kind, as one asker may see them. Made from a weights folder alone, it makes a
    registry that loads each model on first use."""

    def __init__(self, weights_dir: str | Path | None = None, device: str = "cpu", registry=None):
        if registry is None:
            from aigc.hub import WEIGHTS_DIR
            registry = ModelRegistry(weights_dir or WEIGHTS_DIR, device=device, preload=False)
        self.registry = registry
        self.weights_dir = registry.weights_dir

    def names(self, kind: str | None = "char-lm", owner: str | None = None) -> list[str]:
        """Text model names of one kind (default: the language models; None: every text model)
        that `owner` may see, the weights folder's first, then the user models."""
        return self.registry.text_choices(owner, kind)

    def picker_update(self, current=None, token=None, request: gr.Request = None):
        """The language-model picker after looking for newly published user models."""
        self.registry.refresh()
        return _choices(self.names(owner=owner_id(token, request)), current)

    def poem_picker_update(self, current=None, token=None, request: gr.Request = None):
        """The poem-model picker, likewise."""
        self.registry.refresh()
        return _choices(self.poem_models(owner_id(token, request)), current)

    def poem_models(self, owner: str | None = None) -> list[str]:
        """Language models that write poem forms (their training data had the 【form】 header)."""
        return [n for n in self.names(owner=owner) if self.registry.entries[n].text_stats.get("poem_forms")]

    def get(self, name, owner: str | None = None):
        """name -> aigc.pipelines.charlm.TextPipeline (or a TextVAEPipeline); ValueError for an
        unknown, unloadable or someone else's unshared model."""
        return self.registry.text_pipeline(name, owner)

    def load_all(self) -> None:
        for name in self.names(None):
            try:
                self.get(name)
            except ValueError:
                pass

    @classmethod
    def from_source(cls, source) -> "TextModels":
        if isinstance(source, cls):
            return source
        if source is None or isinstance(source, (str, Path)):
            return cls(source)
        if not isinstance(source, ModelRegistry):
            raise TypeError("build_text_tab needs a ModelRegistry, a TextModels, a weights folder or None")
        return cls(registry=source)

    def datasets(self, owner: str | None = None) -> dict[str, str | None]:
        """Language model name -> the dataset it was trained on (None when not recorded)."""
        return {n: self.registry.entries[n].dataset for n in self.names(owner=owner)}
