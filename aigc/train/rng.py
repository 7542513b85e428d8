"""Per-step randomness that is the same whatever the number of processes.

Each training step seeds a fresh generator from (run seed, step, stream) and draws the noise for
the *global* batch; each process keeps only its own slice. So a 2-process run sees exactly the
numbers a 1-process run sees, resuming at step s needs no saved RNG state, and two runs with the
same seed are identical.
"""
from __future__ import annotations

import torch


class StepRNG:
    def __init__(self, seed: int, step: int, device, rank: int = 0, world: int = 1):
        self.device = torch.device(device)
        self.rank, self.world = rank, world
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed((int(seed) * 1_000_003 + int(step) * 7919) % (2 ** 63 - 1))

    def _local(self, t: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return t
        n = t.shape[0] // self.world
        return t[self.rank * n:(self.rank + 1) * n]

    # shapes are *local*: the leading dimension is multiplied by the world size for the draw
    def _global(self, size):
        return (size[0] * self.world,) + tuple(size[1:])

    def randn(self, *size, device=None, dtype=torch.float32):
        return self._local(torch.randn(self._global(size), generator=self.gen, device=self.device, dtype=dtype))

    def rand(self, *size, device=None, dtype=torch.float32):
        return self._local(torch.rand(self._global(size), generator=self.gen, device=self.device, dtype=dtype))

    def randint(self, low, high, size, device=None):
        return self._local(torch.randint(low, high, self._global(size), generator=self.gen, device=self.device))

    def bernoulli(self, p: torch.Tensor):
        """p is local; draws uniforms for the global batch so every rank matches a 1-process run."""
        u = self.rand(*p.shape, dtype=torch.float32)
        return (u < p.float()).to(p.dtype)
