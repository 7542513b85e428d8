"""The studio's web app: layout and event wiring (ui), handlers, and the model registry."""
from demo.models import ModelEntry, ModelRegistry
from demo.app import CSS, build_demo

__all__ = ["ModelEntry", "ModelRegistry", "build_demo", "CSS"]
