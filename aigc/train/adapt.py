"""What a fine-tune changes in the model it starts from while it trains (AdaptOptions).

    set_dropout(model, 0.1)               # every dropout of the network, training only
    freeze(model, "tok_emb,blocks.0")     # these parameters keep their values (no gradient, no update)

Dropout is a property of the modules, not of the saved config: the config (and so a model loaded
later) keeps the base's value, and evaluation turns dropout off as always (model.eval()).
"""
from __future__ import annotations

from torch import nn


def set_dropout(model: nn.Module, p: float) -> int:
    """Set every nn.Dropout and every attention's dropout probability to `p` -> modules changed."""
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout must be at least 0 and below 1, not {p!r}")
    n = 0
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p, n = float(p), n + 1
        elif isinstance(getattr(m, "dropout", None), float):     # attention's dropout_p (CharLM)
            m.dropout, n = float(p), n + 1
    return n


def freeze_prefixes(spec: str) -> list[str]:
    return [s.strip() for s in str(spec or "").split(",") if s.strip()]


def freeze(model: nn.Module, spec: str) -> int:
    """Parameters whose names start with one of the comma-separated prefixes stop training ->
    how many tensors were frozen; a prefix that names nothing is an error (a typo would train all)."""
    prefixes = freeze_prefixes(spec)
    n = 0
    for prefix in prefixes:
        hits = [p for name, p in model.named_parameters() if name == prefix or name.startswith(prefix + ".")]
        if not hits:
            raise ValueError(f"freeze: no parameter of the {type(model).__name__} is named {prefix!r}")
        for p in hits:
            n += p.requires_grad
            p.requires_grad_(False)
    if prefixes and not any(p.requires_grad for p in model.parameters()):
        raise ValueError("freeze: every parameter would be frozen; nothing would train")
    return n


def apply(model: nn.Module, opts) -> None:
    """The run's AdaptOptions (dropout, freeze) on a freshly built or loaded model."""
    if opts.dropout is not None:
        set_dropout(model, opts.dropout)
    if opts.freeze:
        freeze(model, opts.freeze)
