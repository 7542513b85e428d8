"""The image VAE's objective: the negative ELBO, or the IWAE bound."""
from __future__ import annotations

import dataclasses
import math

import torch

from aigc.train.objectives.base import Objective
from aigc.train.options import VAEOptions


class VAEObjective(Objective):
    """Negative ELBO on dynamically binarised images, with a short KL warm-up (Bowman et al. 2016)
    so the decoder learns to use z before the KL term pulls q(z|x) onto the prior; with
    iwae_k > 1, the importance-weighted bound on k samples instead."""
    Options = VAEOptions

    def __init__(self, model, nets, optim, schedule, amp, options: VAEOptions):
        super().__init__(model, nets, optim, schedule, amp, options)
        self.add_optimizer("vae", torch.optim.Adam(nets["vae"].parameters(), lr=self.lr), self.lr)

    @staticmethod
    def trainable_nets(model):
        return {"vae": model}

    @staticmethod
    def resolve(options: VAEOptions, total_steps: int, fine_tune: bool) -> VAEOptions:
        if options.kl_warmup is not None:
            return options
        # a trained model already uses its KL, so a fine-tune keeps the full ELBO from the first
        # step; a new run ramps over 2,000 steps or its first fifth, so that it ends on the true ELBO
        return dataclasses.replace(options, kl_warmup=0 if fine_tune else min(2000, max(1, total_steps // 5)))

    def step(self, x, y, rng, step):
        self.set_lr(step)
        xb = rng.bernoulli(x)
        k = self.options.iwae_k
        beta = min(1.0, (step + 1) / max(1, self.options.kl_warmup))
        # noise drawn batch-first, so that every process gets its own images' slice
        eps = (rng.randn(x.shape[0], k, self.model.latent_dim).transpose(0, 1) if k > 1
               else rng.randn(x.shape[0], self.model.latent_dim))
        with self.amp():
            out = self.nets["vae"](xb, eps=eps)
        if k > 1:
            w = out["log_px"].float() + beta * out["log_ratio"].float()
            loss = -(torch.logsumexp(w, 0) - math.log(k)).mean()
            logs = {"loss": loss.item(), "iwae_k": k}
        else:
            loss = (out["rec"].float() + beta * out["kl"].float()).mean()
            logs = {"loss": loss.item(), "rec": out["rec"].mean().item(), "kl": out["kl"].mean().item()}
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {**logs, "beta": beta}
