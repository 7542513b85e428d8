"""Convolutional VAE with a Bernoulli decoder (Kingma & Welling 2014).

The encoder maps an image to a diagonal Gaussian q(z|x); the decoder maps z to per-pixel
Bernoulli logits p(x|z). Trained on dynamically binarised images; `decode` returns the pixel
probabilities, which is what a person wants to look at.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from aigc.models.base import GenerativeModel


@dataclass
class VAEConfig:
    resolution: int = 28        # 28 (MNIST-like), 32 or 64
    channels: int = 1           # 1 grey, 3 colour
    latent_dim: int = 32        # enough dimensions that the NLL is not capped by the bottleneck, few enough for sliders
    width: int = 32             # channels of the first conv; doubled at each downsampling (32: fast enough on CPU)
    hidden: int = 512           # the dense layer between conv features and the latent Gaussian
    num_classes: int = 0        # VAEs here are unconditional; kept for a uniform interface
    class_names: list = field(default_factory=list)


def _n_down(resolution: int) -> int:
    """How many stride-2 steps take the image to a small square (7x7 for 28, 4x4 for 32/64)."""
    if resolution == 28:
        return 2
    if resolution in (32, 64):
        return int(math.log2(resolution)) - 2
    raise ValueError(f"unsupported resolution {resolution}; use 28, 32 or 64")


class VAE(GenerativeModel):
    kind = "vae"

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        c = config
        n = _n_down(c.resolution)
        self.base = c.resolution // (2 ** n)
        chans = [c.width * 2 ** i for i in range(n)]
        enc, cin = [], c.channels
        for ch in chans:
            enc += [nn.Conv2d(cin, ch, 4, 2, 1), nn.GELU(), nn.Conv2d(ch, ch, 3, 1, 1), nn.GELU()]
            cin = ch
        self.encoder = nn.Sequential(*enc, nn.Flatten(),
                                     nn.Linear(cin * self.base ** 2, c.hidden), nn.GELU())
        self.to_mu = nn.Linear(c.hidden, c.latent_dim)
        self.to_logvar = nn.Linear(c.hidden, c.latent_dim)
        self.top_ch = cin
        self.from_z = nn.Sequential(nn.Linear(c.latent_dim, c.hidden), nn.GELU(),
                                    nn.Linear(c.hidden, cin * self.base ** 2), nn.GELU())
        dec = []
        for ch in reversed([c.width] + chans[:-1]):
            dec += [nn.ConvTranspose2d(cin, ch, 4, 2, 1), nn.GELU(), nn.Conv2d(ch, ch, 3, 1, 1), nn.GELU()]
            cin = ch
        dec += [nn.Conv2d(cin, c.channels, 3, 1, 1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images in [0, 1] -> (mu, logvar) of q(z|x)."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h).clamp(-12.0, 8.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_z(z).view(-1, self.top_ch, self.base, self.base)
        return self.decoder(h)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict:
        """Negative ELBO pieces per image (nats) for (binarised) pixels x; eps is the
        reparameterisation noise (drawn here if not given).

        With eps of shape K x N x D (K importance samples per image) it returns instead the pieces
        of the K log importance weights, K x N each: `log_px` = log p(x|z) and `log_ratio` =
        log p(z) - log q(z|x); the IWAE bound is logsumexp over K of their sum, minus log K."""
        mu, logvar = self.encode(x)
        mu, logvar = mu.float(), logvar.float()   # the KL and the noise stay in fp32 under autocast
        if eps is not None and eps.dim() == 3:
            log_px, log_ratio = self._log_weights(x, mu, torch.exp(0.5 * logvar), eps.to(mu.dtype))
            return {"log_px": log_px, "log_ratio": log_ratio}
        if eps is None:
            eps = torch.randn_like(mu)
        eps = eps.to(mu.dtype)
        z = mu + eps * torch.exp(0.5 * logvar)
        logits = self.decode_logits(z)
        rec = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none").flatten(1).sum(1)
        kl_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
        return {"rec": rec, "kl": kl_dim.sum(1), "kl_dim": kl_dim}

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 1000, chunk: int = 250,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance-weighted lower bound on log p(x) (Burda et al. 2016), nats per image.

        x: binary images N x C x H x W. Uses k samples from q(z|x); larger k, tighter bound."""
        mu, logvar = self.encode(x)
        std = torch.exp(0.5 * logvar)
        parts = []
        for start in range(0, k, chunk):
            kk = min(chunk, k - start)
            eps = torch.randn((kk,) + mu.shape, generator=generator, device=mu.device)
            log_px, log_ratio = self._log_weights(x, mu, std, eps)
            parts.append(log_px + log_ratio)
        w = torch.cat(parts, 0)                                              # k, N
        return torch.logsumexp(w, 0) - math.log(k)

    def _log_weights(self, x, mu, std, eps) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(x|z), log p(z) - log q(z|x)), each K x N, for z = mu + eps * std with eps K x N x D."""
        kk = eps.shape[0]
        z = mu + eps * std                                                   # K, N, D
        logits = self.decode_logits(z.reshape(-1, mu.shape[1]))
        xr = x.unsqueeze(0).expand(kk, *x.shape).reshape(-1, *x.shape[1:])
        log_px = -F.binary_cross_entropy_with_logits(logits.float(), xr, reduction="none").flatten(1).sum(1)
        log_pz = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_qz = (-0.5 * eps.pow(2) - 0.5 * math.log(2 * math.pi) - torch.log(std)).sum(-1)
        return log_px.view(kk, -1), log_pz - log_qz
