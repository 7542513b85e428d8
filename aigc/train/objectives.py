"""Per-kind training objectives. Each owns its optimisers and knows one thing: how to turn a
batch of real images into a parameter update. The loop (loop.py) knows nothing about kinds.

Interface:
  obj = make_objective(model, opts, nets)   # nets: the (maybe DDP-wrapped) trainable modules
  logs = obj.step(x, y, rng, step)          # x in [0, 1], N x C x H x W; returns float losses
                                            # (text kinds: x, y are N x T token ids, y = x shifted)
  obj.state_dict() / obj.load_state_dict()  # optimisers, for exact resumption
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aigc.train.augment import diff_augment

# Adam learning rate of the modern (hinge-loss, spectral-norm) dcgan, G and D alike. 4e-4, not the
# DCGAN paper's 2e-4: a GAN trained for a few epochs on a CPU is short of updates, not of stability
# (spectral norm keeps D smooth, and the rate decays to 10% by the end). At 710 steps it took the
# domain FD from 203 to 146 (bench/README.md, screen v16); run folders started before it resume
# with 2e-4 (loop.LR_LEGACY).
GAN_LR = 4e-4


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
    def __init__(self, model, opts, nets):
        self.model, self.opts, self.nets = model, opts, nets
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.amp = opts.autocast_context

    def set_lr(self, step: int) -> float:
        lr = 0.0
        for name, opt in self.optimizers.items():
            lr = cosine_lr(self.base_lr[name], step, self.opts.total_steps if self.opts.lr_decay else None,
                           self.opts.warmup, getattr(self.opts, "time_frac", 0.0))
            for g in opt.param_groups:
                g["lr"] = lr
        return lr

    def state_dict(self) -> dict:
        return {k: o.state_dict() for k, o in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, o in self.optimizers.items():
            o.load_state_dict(state[k])


class VAEObjective(Objective):
    """Negative ELBO on dynamically binarised images, with a short KL warm-up (Bowman et al. 2016)
    so the decoder learns to use z before the KL term pulls q(z|x) onto the prior; with
    opts.iwae_k > 1, the importance-weighted bound on k samples instead."""

    def __init__(self, model, opts, nets):
        super().__init__(model, opts, nets)
        lr = opts.lr or 1e-3   # Adam at 1e-3 is the standard, stable choice for VAEs of this size
        self.base_lr = {"vae": lr}
        self.optimizers["vae"] = torch.optim.Adam(nets["vae"].parameters(), lr=lr)

    def step(self, x, y, rng, step):
        self.set_lr(step)
        xb = rng.bernoulli(x)
        k = self.opts.iwae_k
        beta = min(1.0, (step + 1) / max(1, self.opts.kl_warmup))
        # k > 1, IWAE (Burda et al. 2016): the bound the test NLL is measured with, on k samples; the
        # noise is drawn batch-first so that every process gets its own images' slice
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


def group_by_class(x: torch.Tensor, y: torch.Tensor, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder a labelled batch so that MinibatchStd(g) groups (images j, j + m, j + 2m, ... of a
    batch of g*m) hold g images of one class; images that do not fill a group are dropped (about
    half a group per class present). Returns the reordered (x, y); empty if no class fills a group."""
    groups = []
    ys = y.cpu()
    for c in torch.unique(ys).tolist():
        idx = torch.nonzero(ys == c).flatten()
        k = len(idx) // g
        if k:
            groups.append(idx[:k * g].view(k, g))
    if not groups:
        return x[:0], y[:0]
    order = torch.cat(groups).t().reshape(-1).to(x.device)     # g x m, row-major: group j = column j
    return x[order], y[order]


class GANObjective(Objective):
    """Alternating updates: one discriminator step, then one generator step.

    dcgan: hinge loss (Lim & Ye 2017; Miyato et al. 2018) or the non-saturating logistic loss
    (Goodfellow et al. 2014, StyleGAN), optionally with an R1 penalty, Adam(0, 0.99) as in
    SNGAN/BigGAN, DiffAugment on both real and fake images, EMA of the generator, and a mode-seeking
    term (MSGAN) so that two latents of one class give different pictures.
    seed-gan: the article's binary cross-entropy with the non-saturating generator loss."""

    def __init__(self, model, opts, nets):
        super().__init__(model, opts, nets)
        self.modern = model.kind == "dcgan"
        loss = opts.gan_loss if self.modern else "bce"
        if loss not in ("hinge", "ns", "bce"):
            raise ValueError(f"unknown GAN loss {loss!r}; use hinge or ns")
        self.hinge = loss == "hinge"
        self.r1 = float(opts.r1) if self.modern else 0.0
        self.r1_every = max(1, int(opts.r1_every))
        beta1 = opts.adam_beta1
        if self.modern:
            lr_g = opts.lr or GAN_LR
            lr_d = opts.lr_d or opts.lr or GAN_LR
            betas = (0.0 if beta1 is None else beta1, 0.99)  # beta1=0: momentum fights the moving target of a GAN
        else:
            lr_g = lr_d = opts.lr or 2e-4
            betas = (0.5 if beta1 is None else beta1, 0.999)  # the DCGAN paper's Adam, the usual Keras-era choice
        self.base_lr = {"g": lr_g, "d": lr_d}
        self.optimizers["g"] = torch.optim.Adam(nets["generator"].parameters(), lr=lr_g, betas=betas)
        self.optimizers["d"] = torch.optim.Adam(nets["discriminator"].parameters(), lr=lr_d, betas=betas)
        self.augment = opts.diffaug and self.modern
        self.noise = float(opts.instance_noise) if self.modern else 0.0
        self.noise_now = 0.0
        self.mode_seeking = float(opts.mode_seeking) if self.modern else 0.0
        # a conditional D with minibatch std compares groups of one class (see group_by_class), so
        # it sees when G draws one look per class, which groups of mixed classes would hide
        self.group = int(getattr(model.config, "d_mbstd", 0) or 0) if model.num_classes else 0

    def _fake_labels(self, rng, n):
        """Classes for n fakes: uniform, or in class groups laid out as group_by_class lays out
        the real batch."""
        if self.group < 2:
            return rng.randint(0, self.model.num_classes, (n,))
        m = max(1, n // self.group)
        out = rng.randint(0, self.model.num_classes, (m,)).repeat(self.group)[:n]
        if len(out) < n:           # a batch that is not whole groups: the rest uniform
            out = torch.cat([out, rng.randint(0, self.model.num_classes, (n - len(out),))])
        return out

    def _to_d(self, img, rng):
        """Generator space -> discriminator input ([-1, 1]), augmented if enabled, then with
        instance noise if enabled (real digits have exactly -1 backgrounds that a tanh only
        approaches; noise on both sides hides that tell. Measured on MNIST: it stopped D from
        winning outright, but did not make G better; bench/README.md)."""
        if self.augment:
            img = diff_augment(img, rng, getattr(self.opts, "diffaug_policy", "color,translation,cutout"))
        if self.noise_now > 0:
            img = img + self.noise_now * rng.randn(*img.shape, device=img.device, dtype=img.dtype)
        return img

    def step(self, x, y, rng, step):
        G, D = self.nets["generator"], self.nets["discriminator"]
        self.set_lr(step)
        if self.noise:
            total = self.opts.total_steps or 0
            frac = max(step / total if total else 0.0, getattr(self.opts, "time_frac", 0.0))
            self.noise_now = self.noise * max(0.0, 1.0 - frac)
        cond = self.model.num_classes > 0
        if self.group > 1 and cond:
            xg, yg = group_by_class(x, y, self.group)
            if len(xg):            # a tiny batch of all-different classes stays as it is
                x, y = xg, yg
        n = x.shape[0]
        if self.modern:
            real = x * 2 - 1
        else:
            real = x                  # the article's generator ends in a sigmoid: images in [0, 1]
        y_real = y if cond else None
        z = rng.randn(n, self.model.latent_dim)
        y_fake = self._fake_labels(rng, n) if cond else None

        # discriminator
        r1_now = self.r1 > 0 and step % self.r1_every == 0
        with self.amp():
            with torch.no_grad():
                fake = G(z, y_fake) if cond else G(z)
            fake = fake.view_as(real)
            real_in = self._to_d(real, rng)
            if r1_now:
                real_in = real_in.detach().requires_grad_(True)
            d_real = D(real_in, y_real) if cond else D(real_in)
            d_fake = D(self._to_d(fake.detach(), rng), y_fake) if cond else D(self._to_d(fake.detach(), rng))
        d_real, d_fake = d_real.float().view(-1), d_fake.float().view(-1)
        if self.hinge:
            d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        else:   # logistic: -log sigmoid(d_real) - log(1 - sigmoid(d_fake))
            d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        logs = {}
        if r1_now:
            # R1 (Mescheder et al. 2018): penalise D's gradient on real images, so D cannot
            # carve sharp cliffs around the data; lazy every r1_every steps, scaled by r1_every.
            grad, = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
            penalty = grad.float().pow(2).flatten(1).sum(1).mean()
            d_loss = d_loss + 0.5 * self.r1 * self.r1_every * penalty
            logs["r1"] = penalty.item()
        opt_d = self.optimizers["d"]
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        # generator
        n = n if self.group < 2 else max(self.group, n - n % self.group)
        z = rng.randn(n, self.model.latent_dim)
        y_fake = self._fake_labels(rng, n) if cond else None
        half = n // 2
        seek = self.mode_seeking > 0 and half > 0
        if seek and cond:
            y_fake[half:2 * half] = y_fake[:half]      # pairs: sample i and i + n/2 share a class
        with self.amp():
            fake = (G(z, y_fake) if cond else G(z)).view_as(real)
            g_out = D(self._to_d(fake, rng), y_fake) if cond else D(self._to_d(fake, rng))
        g_out = g_out.float().view(-1)
        if self.hinge:
            g_loss = -g_out.mean()
        else:   # non-saturating: -log sigmoid(D(G(z)))
            g_loss = F.softplus(-g_out).mean()
        if seek:
            # MSGAN (Mao et al. 2019): the ratio of image distance to latent distance for pairs of
            # one class; G is penalised by its inverse, so ignoring z (one look per class) costs.
            f = fake.float()
            ratio = ((f[:half] - f[half:2 * half]).abs().mean()
                     / (z[:half] - z[half:2 * half]).abs().mean())
            g_loss = g_loss + self.mode_seeking / (ratio + 1e-5)
            logs["ms_ratio"] = ratio.item()
        opt_g = self.optimizers["g"]
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()

        if hasattr(self.model, "update_ema"):
            # ramp the decay so early, fast-changing weights do not linger in the average
            decay = min(self.opts.ema_decay, (1 + step) / (10 + step))
            self.model.update_ema(decay)
        logs.update({"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                     "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()})
        return logs


class CharLMObjective(Objective):
    """Next-character cross-entropy, nanoGPT's recipe: AdamW with betas (0.9, 0.99) (beta2 below
    0.999 because each step sees few tokens), weight decay 0.1 on matrices only (not on biases
    or LayerNorm gains), gradients clipped to norm 1, and a linear warm-up (default: 100 steps,
    shorter for short runs) before the cosine decay; lr 1e-3 suits models of a few million
    parameters."""

    def __init__(self, model, opts, nets):
        super().__init__(model, opts, nets)
        lr = opts.lr or 1e-3
        self.base_lr = {"lm": lr}
        self.warmup = opts.warmup or max(1, min(100, (opts.total_steps or 0) // 20))
        params = [p for p in nets["lm"].parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        fused = next(model.parameters()).device.type == "cuda"
        self.optimizers["lm"] = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), fused=fused)

    def set_lr(self, step: int) -> float:
        lr = cosine_lr(self.base_lr["lm"], step, self.opts.total_steps if self.opts.lr_decay else None,
                       self.warmup, getattr(self.opts, "time_frac", 0.0))
        for g in self.optimizers["lm"].param_groups:
            g["lr"] = lr
        return lr

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
    model's config; the loop's kl_warmup option is not used). Adam at 1e-3, the usual choice for
    recurrent VAEs of this size; gradients clipped to norm 5, a safety net against the occasional
    exploding step of a recurrent net (Pascanu et al. 2013). x: N x T ids (-1 after each line's
    end), y: N lengths."""

    def __init__(self, model, opts, nets):
        super().__init__(model, opts, nets)
        lr = opts.lr or 1e-3
        self.base_lr = {"vae": lr}
        self.optimizers["vae"] = torch.optim.Adam(nets["vae"].parameters(), lr=lr)

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


def trainable_nets(model) -> dict[str, torch.nn.Module]:
    """The modules an objective updates (each wrapped in DDP separately when distributed)."""
    if model.kind in ("vae", "text-vae"):
        return {"vae": model}
    if model.kind == "char-lm":
        return {"lm": model}
    return {"generator": model.generator, "discriminator": model.discriminator}


def make_objective(model, opts, nets):
    if model.kind == "vae":
        return VAEObjective(model, opts, nets)
    if model.kind in ("dcgan", "seed-gan"):
        return GANObjective(model, opts, nets)
    if model.kind == "char-lm":
        return CharLMObjective(model, opts, nets)
    if model.kind == "text-vae":
        return TextVAEObjective(model, opts, nets)
    raise ValueError(f"no training objective for model kind {model.kind!r}")
