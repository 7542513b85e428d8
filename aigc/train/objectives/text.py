"""Objectives of the text kinds: the character LM and the sentence VAE."""
from __future__ import annotations

import torch

from aigc.train.objectives.base import Objective


class CharLMObjective(Objective):
    """Next-character cross-entropy, nanoGPT's recipe: AdamW with betas (0.9, 0.99) (beta2 below
    0.999 because each step sees few tokens), weight decay 0.1 on matrices only (not on biases
    or LayerNorm gains), gradients clipped to norm 1, and a linear warm-up (default: 100 steps,
    shorter for short runs) before the cosine decay; lr 1e-3 suits models of a few million
    parameters."""

    def __init__(self, model, nets, optim, schedule, amp, options=None):
        super().__init__(model, nets, optim, schedule, amp, options)
        self.warmup = optim.warmup or max(1, min(100, (schedule.total_steps or 0) // 20))
        params = [p for p in nets["lm"].parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        fused = next(model.parameters()).device.type == "cuda"
        self.add_optimizer("lm", torch.optim.AdamW(groups, lr=self.lr, betas=(0.9, 0.99), fused=fused), self.lr)

    @staticmethod
    def trainable_nets(model):
        return {"lm": model}

    def step(self, x, y, rng, step):
        self.set_lr(step)
        with self.amp():
            _, loss = self.nets["lm"](x, y)
        loss = loss.float()
        opt = self.optimizers["lm"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.nets["lm"].parameters(), 1.0)
        opt.step()
        return {"loss": loss.item(), "grad_norm": float(norm)}


class TextVAEObjective(Objective):
    """The sentence VAE's loss (TextVAE.loss: KL annealing, word dropout, free bits, all set in the
    model's config; the image VAE's kl_warmup option is not used). Adam at 1e-3, the usual choice
    for recurrent VAEs of this size; gradients clipped to norm 5, a safety net against the
    occasional exploding step of a recurrent net (Pascanu et al. 2013). x: N x T ids (-1 after
    each line's end), y: N lengths."""

    def __init__(self, model, nets, optim, schedule, amp, options=None):
        super().__init__(model, nets, optim, schedule, amp, options)
        self.add_optimizer("vae", torch.optim.Adam(nets["vae"].parameters(), lr=self.lr), self.lr)

    @staticmethod
    def trainable_nets(model):
        return {"vae": model}

    def step(self, x, y, rng, step):
        if y is None or y.dim() != 1:
            raise ValueError("a text-vae trains on one line per example (--data tang-lines), "
                             "not on windows of running text")
        self.set_lr(step)
        c = self.model.config
        eps = rng.randn(x.shape[0], c.latent_dim)
        keep = rng.rand(x.shape[0], x.shape[1] + 1) >= c.word_dropout
        with self.amp():
            out = self.nets["vae"](x, y, step, eps, keep)
        loss = out["loss"].float()
        opt = self.optimizers["vae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        out = {k: v.detach() if torch.is_tensor(v) else v for k, v in out.items()}
        norm = torch.nn.utils.clip_grad_norm_(self.nets["vae"].parameters(), 5.0)
        opt.step()
        return {"loss": loss.item(), "rec": out["rec"].item(), "kl": out["kl"].item(), "beta": out["beta"],
                "grad_norm": float(norm)}
