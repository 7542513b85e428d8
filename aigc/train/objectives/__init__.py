"""Training objectives, one module per family; a kind names its objective in aigc.kinds.

Each owns its optimisers and knows one thing: how to turn a batch into a parameter update
(see base.py for the interface). The loop (loop.py) knows nothing about kinds."""
from __future__ import annotations

from aigc.train.objectives.base import Objective, cosine_lr
from aigc.train.objectives.gan import GAN_LR, DCGANObjective, GANObjective, SeedGANObjective, group_by_class
from aigc.train.objectives.text import CharLMObjective, TextVAEObjective
from aigc.train.objectives.vade import VaDEObjective
from aigc.train.objectives.vae import VAEObjective

OBJECTIVES: dict[str, type[Objective]] = {
    "vae": VAEObjective,
    "vade": VaDEObjective,
    "dcgan": DCGANObjective,
    "seed-gan": SeedGANObjective,
    "char-lm": CharLMObjective,
    "text-vae": TextVAEObjective,
}


def objective_class(kind) -> type[Objective]:
    """The objective a kind (aigc.kinds.Kind) names."""
    if kind.objective not in OBJECTIVES:
        raise ValueError(f"no training objective for model kind {kind.name!r}")
    return OBJECTIVES[kind.objective]


__all__ = ["OBJECTIVES", "objective_class", "Objective", "cosine_lr", "GAN_LR", "group_by_class", "GANObjective",
           "DCGANObjective", "SeedGANObjective", "CharLMObjective", "TextVAEObjective", "VAEObjective",
           "VaDEObjective"]
