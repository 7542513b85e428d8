"""The one place that upgrades what older versions wrote: model configs, run folders, train states.

A default may change; what an existing file means may not. Each table below names the value a
file written before a change was made with, and the functions apply them on load. Nothing here
imports torch or the training code.
"""
from __future__ import annotations

import json
from pathlib import Path

# kind -> config fields added with a new default; a config without the field was built with this value
MODEL_CONFIG_DEFAULTS: dict[str, dict] = {
    "dcgan": {"d_head": "sum"},       # D's head before the dense one: global sum pooling
}

# training options added with a default that changes training; options.json without them resumes so
OPTION_DEFAULTS: dict = {
    "mode_seeking": 0.0,              # runs before MSGAN trained without it
}

# kind -> the learning rate a run resolved when options.json still recorded "lr": null
LR_DEFAULTS: dict[str, float] = {
    "dcgan": 2e-4,                    # the DCGAN paper's rate, the default before 4e-4
}

# keys options.json once held that are resolved at run time now
REMOVED_OPTIONS = ("total_steps", "steps_per_epoch")


def upgrade_model_config(kind: str, config: dict) -> dict:
    """A saved model's config fields, with the old value of every field it predates."""
    return {**MODEL_CONFIG_DEFAULTS.get(kind, {}), **config}


def changed_fields(kind: str) -> tuple[str, ...]:
    """Config fields whose default changed: a new run records their values, so it resumes as built."""
    return tuple(MODEL_CONFIG_DEFAULTS.get(kind, {}))


def upgrade_run_options(saved: dict) -> dict:
    """A run folder's options.json -> options for this version (the run's own values kept)."""
    saved = dict(saved)
    for key in REMOVED_OPTIONS:
        saved.pop(key, None)
    for key, value in OPTION_DEFAULTS.items():
        saved.setdefault(key, value)
    if saved.get("lr") is None:
        saved["lr"] = LR_DEFAULTS.get(saved.get("model"))
    if not saved.get("init_from"):       # a fine-tune's config comes from its base model instead
        saved["config"] = upgrade_model_config(saved.get("model", ""), saved.get("config") or {})
    return saved


def upgrade_train_state(state: dict) -> dict:
    """A state.pt's contents: states written before the run clock was saved start it at 0."""
    return {"elapsed_s": 0.0, **state}


def run_folder_base(model_dir: str | Path) -> str | None:
    """For a model saved before config.json recorded its base: the `init_from` that the run folder
    around it (RUN/model beside RUN/options.json) was started with, or None."""
    model_dir = Path(model_dir)
    if model_dir.name != "model":
        return None
    try:
        opts = json.loads((model_dir.parent / "options.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = opts.get("init_from") if isinstance(opts, dict) else None
    return base if isinstance(base, str) else None
