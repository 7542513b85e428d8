"""VaDE's objective (Jiang et al. 2017): the paper's initialisation inside the run, then its ELBO.

Phase "pretrain" (the first `pretrain_steps` steps): encoder mean and decoder train as a plain
autoencoder (on slightly rotated and shifted pictures with `pretrain_augment`). At step
`pretrain_steps` a diagonal GMM is fitted to the encoder means of a seeded sample of `gmm_images`
training images (by EM, or from their spectral groups with `prior_init` "spectral") and copied into
the prior (aigc.train.vade_init). Phase "elbo": the negative ELBO with its own fresh Adam and a step
decay of the rate (the mixture's own rate scaled by `prior_lr_scale`: 0 keeps the groups it started
from while the networks fit them). The phase is in the objective's state and the fitted mixture is
in the model's prior parameters, so a resume at any step (before, at or after the switch)
continues exactly as the straight run would.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from aigc.train.augment import random_affine
from aigc.train.objectives.base import Objective
from aigc.train.options import VaDEOptions
from aigc.train.vade_init import init_prior, spectral_min_points

PRETRAIN, ELBO = "pretrain", "elbo"


class VaDEObjective(Objective):
    """Adam for both phases: 1e-3 for the autoencoder, the paper's 2e-3 (eps 1e-4, as its code)
    for the ELBO, decayed x gamma every few epochs instead of the loop's cosine."""
    Options = VaDEOptions
    default_lr = 2e-3

    def __init__(self, model, nets, optim, schedule, amp, options: VaDEOptions):
        super().__init__(model, nets, optim, schedule, amp, options)
        options = options if options.pretrain_steps is not None else self.resolve(options, schedule.total_steps, False)
        options.check()
        self.options = options
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:
            raise ValueError("a vade trains in one process: its pretraining and GMM fit are not distributed")
        body = [p for n, p in model.named_parameters() if not n.startswith("prior_")]
        self.add_optimizer(PRETRAIN, torch.optim.Adam(body, lr=options.pretrain_lr), options.pretrain_lr)
        params = list(nets["vade"].named_parameters())
        groups = [{"params": [p for _, p in params]}]
        if options.prior_lr_scale != 1.0:     # the mixture at its own rate (one group otherwise: older runs resume)
            groups = [{"params": [p for n, p in params if not n.startswith("prior_")]},
                      {"params": [p for n, p in params if n.startswith("prior_")], "scale": options.prior_lr_scale}]
        self.add_optimizer(ELBO, torch.optim.Adam(groups, lr=self.lr, eps=1e-4), self.lr)
        need = spectral_min_points(model.n_clusters)
        if options.prior_init == "spectral" and options.gmm_images and options.gmm_images < need:
            # found now, not after the pretraining
            raise ValueError(f"--prior-init spectral groups the codes of --gmm-images images: "
                             f"use at least {need}, not {options.gmm_images}")
        self.phase = ELBO if options.gmm_images == 0 and options.pretrain_steps == 0 else PRETRAIN
        self.gmm: dict = {}
        self.data = None

    @staticmethod
    def trainable_nets(model):
        return {"vade": model}

    @staticmethod
    def resolve(options: VaDEOptions, total_steps: int, fine_tune: bool) -> VaDEOptions:
        changes = {}
        if options.pretrain_steps is None:
            # a fine-tune keeps its base's mixture; a new run pretrains for the recipe's share
            # (15 of 65 epochs), at most 10,000 steps when only the clock bounds the run
            changes["pretrain_steps"] = 0 if fine_tune else min(10_000, total_steps * 15 // 65)
        if options.gmm_images is None:
            changes["gmm_images"] = 0 if fine_tune else 10_000
        return dataclasses.replace(options, **changes)

    def bind_data(self, data) -> None:
        self.data = data

    # -- the switch -------------------------------------------------------------------------------
    def gmm_sample(self) -> torch.Tensor:
        """The seeded sample of training images (uint8 N x C x H x W) the GMM is fitted to."""
        images = getattr(self.data, "images", None)
        if images is None:
            raise ValueError("the vade objective needs the training images for its GMM fit (bind_data)")
        n = min(int(self.options.gmm_images), len(images))
        idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:n].sort().values
        return torch.from_numpy(np.ascontiguousarray(images[idx.numpy()])).permute(0, 3, 1, 2)

    def fit_prior(self) -> None:
        """Fit the mixture to the codes and start the ELBO (no fit when gmm_images is 0)."""
        if self.options.gmm_images:
            fit = init_prior(self.model, self.gmm_sample(), seed=0, n_init=self.options.gmm_n_init,
                             method=self.options.prior_init, guide_epochs=self.options.prior_guide_epochs)
            self.gmm = {"gmm_ll": round(fit.log_likelihood, 6), "gmm_iters": int(fit.n_iter),
                        "gmm_images": int(min(self.options.gmm_images, len(self.data.images)))}
        self.phase = ELBO

    # -- steps ------------------------------------------------------------------------------------
    def set_lr(self, step: int) -> float:
        o = self.options
        if self.phase == PRETRAIN:
            lr = self.base_lr[PRETRAIN]
        else:
            every = max(1.0, o.lr_step_epochs * self.schedule.steps_per_epoch)
            lr = self.base_lr[ELBO] * o.lr_step_gamma ** int(max(0, step - o.pretrain_steps) // every)
        for g in self.optimizers[self.phase].param_groups:
            g["lr"] = lr * g.get("scale", 1.0)
        return lr

    def current_lr(self) -> float:
        return self.optimizers[self.phase].param_groups[0]["lr"]

    def one_off_step(self, step: int) -> bool:
        return self.phase == PRETRAIN and step >= self.options.pretrain_steps

    def step(self, x, y, rng, step):
        logs = {}
        if self.one_off_step(step):
            self.fit_prior()
            logs.update({k: v for k, v in self.gmm.items() if k == "gmm_ll"})
        self.set_lr(step)
        if self.phase == PRETRAIN:
            a = self.options.pretrain_augment
            if a:      # the same moved picture in and out: codes that ignore small moves group the digits
                x = random_affine(x, rng.rand(x.shape[0], 3), degrees=10.0 * a, shift=0.1 * a)
            with self.amp():
                mu, _ = self.model.encode(x)
                logits = self.model.decode_logits(mu)
            loss = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none").flatten(1).sum(1)
            loss = loss.mean()
            logs.update({"loss": loss.item(), "rec": loss.item(), "phase": 0})
        else:
            eps = rng.randn(x.shape[0], self.model.latent_dim)
            with self.amp():
                out = self.nets["vade"](x, eps=eps)
            loss = (out["rec"].float() + out["kl"].float()).mean()
            logs.update({"loss": loss.item(), "rec": out["rec"].mean().item(), "kl": out["kl"].mean().item(),
                         "phase": 1})
        opt = self.optimizers[self.phase]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return logs

    # -- resumption -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "phase": self.phase, "gmm": dict(self.gmm)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state.get("phase") not in (PRETRAIN, ELBO):
            raise ValueError("this run's state has no VaDE phase; it was not saved by the vade objective")
        self.phase = state["phase"]
        self.gmm = dict(state.get("gmm") or {})
