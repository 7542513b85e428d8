"""The studio's web app: layout and event wiring (ui), handlers, and the model registry."""
from .registry import ModelEntry, ModelRegistry
from .ui import CSS, build_demo

__all__ = ["ModelEntry", "ModelRegistry", "build_demo", "CSS"]
