"""Class-conditional DCGAN (Radford et al. 2016) trained the modern way.

Generator: z and a class embedding -> dense -> (transposed conv, BN, ReLU) x n -> image.
Discriminator: spectral-normalised convs (Miyato et al. 2018), a last conv that sees the whole
image, and a projection head for the class (Miyato & Koyama 2018). The objective (hinge loss,
DiffAugment, EMA of the generator) lives in aigc.train.objectives; this file only defines the
networks. The EMA generator is what samples are drawn from.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from aigc.models.base import GenerativeModel


@dataclass
class DCGANConfig:
    resolution: int = 28        # 28, 32 or 64; the design grows by one upsampling per doubling
    channels: int = 1           # 1 grey, 3 colour
    latent_dim: int = 64        # MNIST-like data needs few dimensions; fewer makes the PCA sliders meaningful
    ngf: int = 32               # generator width: 32 trains at ~1 min/epoch on 2 CPU cores
    ndf: int = 32               # discriminator width: matched to the generator so neither wins outright
    num_classes: int = 10       # 0 for an unconditional GAN
    class_names: list = field(default_factory=list)
    embed_dim: int = 32         # class embedding concatenated to z
    d_head: str = "dense"       # D's last step. "dense": a conv over the whole final map, so D judges the
                                # digit's global shape; "sum": global sum pooling of local features, a patch
                                # judge that lets broken strokes through (configs without the field: aigc.legacy)
    d_mbstd: int = 0            # minibatch standard deviation (ProGAN): D sees, as one more channel before
                                # its head, how much groups of this many images vary, so a G that
                                # draws one look per class is easy to spot. 0: off.


def _layout(resolution: int) -> tuple[int, int]:
    """(base spatial size, number of 2x upsamplings)."""
    if resolution == 28:
        return 7, 2
    if resolution in (32, 64):
        return 4, int(math.log2(resolution)) - 2
    raise ValueError(f"unsupported resolution {resolution}; use 28, 32 or 64")


class Generator(nn.Module):
    def __init__(self, c: DCGANConfig):
        super().__init__()
        self.base, n_up = _layout(c.resolution)
        self.top = c.ngf * 2 ** n_up
        self.embed = nn.Embedding(c.num_classes, c.embed_dim) if c.num_classes else None
        zin = c.latent_dim + (c.embed_dim if c.num_classes else 0)
        self.fc = nn.Sequential(nn.Linear(zin, self.top * self.base ** 2, bias=False),
                                nn.BatchNorm1d(self.top * self.base ** 2), nn.ReLU(True))
        layers, ch = [], self.top
        for _ in range(n_up):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.Conv2d(ch, c.channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        h = self.fc(z).view(-1, self.top, self.base, self.base)
        return self.net(h)  # [-1, 1]


class MinibatchStd(nn.Module):
    """Karras et al. 2018: append the average standard deviation, over groups of `group` images,
    of every feature as one constant channel. Batches not divisible by the group use the largest
    group size that divides them."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        while n % g:
            g -= 1
        y = x.float().view(g, n // g, c, h, w)
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))   # n/g
        std = std.to(x.dtype).view(1, n // g, 1, 1, 1).expand(g, n // g, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, std], 1)


class Discriminator(nn.Module):
    def __init__(self, c: DCGANConfig):
        super().__init__()
        _, n_down = _layout(c.resolution)
        layers, cin = [], c.channels
        for i in range(n_down):
            ch = c.ndf * 2 ** i
            layers += [spectral_norm(nn.Conv2d(cin, ch, 3, 1, 1)), nn.LeakyReLU(0.2, True),
                       spectral_norm(nn.Conv2d(ch, ch * 2, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            cin = ch * 2
        features = cin
        if c.d_mbstd:
            layers += [MinibatchStd(c.d_mbstd)]
            cin += 1
        if c.d_head == "dense":
            # one conv whose kernel covers the whole final feature map: a global view of the image
            side = c.resolution // 2 ** n_down
            layers += [spectral_norm(nn.Conv2d(cin, features * 2, side, 1, 0)), nn.LeakyReLU(0.2, True)]
            cin = features * 2
        elif c.d_head != "sum":
            raise ValueError(f"unknown d_head {c.d_head!r}; use sum or dense")
        self.net = nn.Sequential(*layers)
        self.pool_ch = cin
        self.head = spectral_norm(nn.Linear(cin, 1))
        self.embed = spectral_norm(nn.Embedding(c.num_classes, cin)) if c.num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net(x).sum(dim=(2, 3))              # global sum pooling
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)  # projection discriminator
        return out


class DCGAN(GenerativeModel):
    kind = "dcgan"

    def __init__(self, config: DCGANConfig):
        super().__init__(config)
        self.generator = Generator(config)
        self.discriminator = Discriminator(config)
        # The exponential moving average of the generator's weights gives visibly cleaner samples
        # than the raw generator; it is what `decode` uses.
        self.g_ema = copy.deepcopy(self.generator).requires_grad_(False)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.g_ema.eval()
        return (self.g_ema(z, labels).float() + 1) / 2

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for pe, p in zip(self.g_ema.parameters(), self.generator.parameters()):
            pe.lerp_(p.detach(), 1.0 - decay)
        for be, b in zip(self.g_ema.buffers(), self.generator.buffers()):
            be.copy_(b)
