"""What every objective shares: its optimisers, the learning-rate schedule, state for resumption.

Interface (the loop knows nothing else about a kind):
  cls = objective_class(kind.objective)
  nets = cls.trainable_nets(model)          # the modules it updates (each DDP-wrapped by the loop)
  obj = cls(model, nets, optim, schedule, amp, options)   # options: its own group (cls.Options) or None
  logs = obj.step(x, y, rng, step)          # x in [0, 1], N x C x H x W (text: N x T token ids)
  obj.bind_data(data)                       # the training set (most objectives ignore it)
  obj.state_dict() / obj.load_state_dict()  # optimisers (and any phase), for exact resumption
"""
from __future__ import annotations

import math

import torch

from aigc.train.options import OptimOptions, Schedule


def cosine_lr(base: float, step: int, total: int | None, warmup: int = 0, time_frac: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 10% of base over `total` steps (constant if unknown).

    time_frac: the share of a wall-clock budget (--max-minutes) already spent; the schedule
    follows whichever budget is further along, so a run cut by the clock still ends decayed."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if not total:
        return base
    t = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


class Objective:
    Options = None          # the options group this objective reads, beyond OptimOptions
    default_lr = 1e-3       # Adam at 1e-3: the standard, stable choice for models of this size

    def __init__(self, model, nets, optim: OptimOptions, schedule: Schedule, amp, options=None):
        self.model, self.nets, self.schedule, self.amp = model, nets, schedule, amp
        self.options = options
        self.lr = optim.lr or self.default_lr
        self.warmup = optim.warmup
        # square-root scaling keeps Adam stable at large batches
        self.lr_factor = math.sqrt(optim.batch_size / 128) if optim.lr_scale and optim.batch_size > 128 else 1.0
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.base_lr: dict[str, float] = {}

    @staticmethod
    def trainable_nets(model) -> dict[str, torch.nn.Module]:
        return {"model": model}

    @staticmethod
    def resolve(options, total_steps: int, fine_tune: bool):
        """This objective's options with the values left to the run filled in (recorded in options.json)."""
        return options

    def bind_data(self, data) -> None:
        """The training set, for objectives that look beyond their batches (VaDE's GMM fit)."""

    def add_optimizer(self, name: str, opt: torch.optim.Optimizer, lr: float) -> None:
        self.optimizers[name] = opt
        self.base_lr[name] = lr * self.lr_factor

    def set_lr(self, step: int) -> float:
        s = self.schedule
        lr = 0.0
        for name, opt in self.optimizers.items():
            lr = cosine_lr(self.base_lr[name], step, s.total_steps if s.lr_decay else None, self.warmup, s.time_frac)
            for g in opt.param_groups:
                g["lr"] = lr
        return lr

    def current_lr(self) -> float:
        return next(iter(self.optimizers.values())).param_groups[0]["lr"]

    def step(self, x, y, rng, step: int) -> dict:
        raise NotImplementedError

    def one_off_step(self, step: int) -> bool:
        """Whether `step` also does one-off work (a VaDE's mixture fit): not a step to count FLOPs on."""
        return False

    def state_dict(self) -> dict:
        return {k: o.state_dict() for k, o in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state[k])
