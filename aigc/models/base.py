"""What every image generator in aigc offers, whatever its kind.

A model is built as `Model(config)` from a config dataclass; `kind` names it in the registry.
Images leave a model as float tensors in [0, 1], N x C x H x W. Latents are N x latent_dim
standard normal vectors, drawn from a torch.Generator so that a seed fixes the picture.
"""
from __future__ import annotations

import torch
from torch import nn


class GenerativeModel(nn.Module):
    kind: str = ""
    modality: str = "image"

    def __init__(self, config):
        super().__init__()
        self.config = config

    # -- description -------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def num_classes(self) -> int:
        return getattr(self.config, "num_classes", 0)

    @property
    def class_names(self) -> list[str]:
        return list(getattr(self.config, "class_names", []) or [])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.config
        return (c.channels, c.resolution, c.resolution)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # -- sampling ------------------------------------------------------------------------------
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

    def check_labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """Validate class labels for a conditional model (None for unconditional ones)."""
        if self.num_classes == 0:
            if labels is not None:
                raise ValueError(f"model '{self.kind}' is not class-conditional; do not pass a label")
            return None
        if labels is None:
            raise ValueError("this model is class-conditional: labels are required")
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if labels.numel() == 1 and n > 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} labels for {n} latents")
        if (labels < 0).any() or (labels >= self.num_classes).any():
            raise ValueError(f"labels must be in [0, {self.num_classes - 1}]")
        return labels.to(self.device)

    def random_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
        if self.num_classes == 0:
            return None
        return torch.randint(0, self.num_classes, (n,), generator=generator).to(self.device)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (and labels) to images in [0, 1]. Deterministic."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, *, labels=None, generator: torch.Generator | None = None,
               z: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """Draw n images in [0, 1]. `temperature` scales the latent (truncation for GANs,
        prior temperature for VAEs). Labels default to random classes for conditional models."""
        if z is None:
            z = self.sample_latent(n, generator)
        if self.num_classes and labels is None:
            labels = self.random_labels(n, generator)
        labels = self.check_labels(labels, z.shape[0])
        was_training = self.training
        self.eval()
        try:
            return self.decode(z * float(temperature), labels)
        finally:
            self.train(was_training)
