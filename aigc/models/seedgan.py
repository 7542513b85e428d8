"""The reference article's MLP GAN, ported faithfully (the baseline).

Generator: z in R^100 -> Dense(128, relu) -> Dropout(0.3) -> Dense(784, sigmoid).
Discriminator: Flatten -> Dense(512, relu) -> Dropout(0.3) -> Dense(1, sigmoid).
The article stacks the two and never trains the discriminator on its own (and forgets to import
Flatten); here it is trained with a correct alternating loop (aigc.train.objectives.SeedGANObjective).
The discriminator returns logits; the sigmoid is folded into the loss for numerical stability,
which is the same function as the article's sigmoid + binary cross-entropy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from aigc.models.base import GenerativeModel


@dataclass
class SeedGANConfig:
    resolution: int = 28        # the article's 28x28 = 784 outputs
    channels: int = 1
    latent_dim: int = 100       # the article's z in R^100
    g_hidden: int = 128         # the article's Dense(128)
    d_hidden: int = 512         # the article's Dense(512)
    dropout: float = 0.3        # the article's Dropout(0.3), in both networks
    num_classes: int = 0        # unconditional, as in the article
    class_names: list = field(default_factory=list)


class SeedGAN(GenerativeModel):
    kind = "seed-gan"

    def __init__(self, config: SeedGANConfig):
        super().__init__(config)
        c = config
        pixels = c.channels * c.resolution ** 2
        self.generator = nn.Sequential(
            nn.Linear(c.latent_dim, c.g_hidden), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.g_hidden, pixels), nn.Sigmoid())
        self.discriminator = nn.Sequential(
            nn.Flatten(), nn.Linear(pixels, c.d_hidden), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(c.d_hidden, 1))

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z).view(-1, *self.image_shape)
