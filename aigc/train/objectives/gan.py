"""GAN objectives: the modern class-conditional dcgan and the article's seed-gan.

Both alternate one discriminator step and one generator step; they differ in the loss, the
optimiser and the extras the dcgan adds (DiffAugment, R1, instance noise, mode seeking)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from aigc.train.augment import diff_augment
from aigc.train.objectives.base import Objective
from aigc.train.options import GANOptions

# Adam rate of the dcgan, G and D alike: a GAN trained for a few CPU epochs is short of updates, not
# of stability (spectral norm keeps D smooth); bench/README.md has the comparison with the paper's 2e-4
GAN_LR = 4e-4


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
    """Alternating updates: one discriminator step, then one generator step. Subclasses set the
    loss and extras in __init__; the plain form is the non-saturating logistic loss."""
    Options = GANOptions
    hinge = False
    r1 = 0.0
    r1_every = 1
    augment = False
    noise = 0.0
    mode_seeking = 0.0
    group = 0                 # MinibatchStd group size the real batch is laid out for (0: as it comes)

    def __init__(self, model, nets, optim, schedule, amp, options: GANOptions, betas, lr_d: float):
        super().__init__(model, nets, optim, schedule, amp, options)
        self.add_optimizer("g", torch.optim.Adam(nets["generator"].parameters(), lr=self.lr, betas=betas), self.lr)
        self.add_optimizer("d", torch.optim.Adam(nets["discriminator"].parameters(), lr=lr_d, betas=betas), lr_d)
        self.noise_now = 0.0

    @staticmethod
    def trainable_nets(model):
        return {"generator": model.generator, "discriminator": model.discriminator}

    def to_real(self, x):
        """Images in [0, 1] -> the generator's output range."""
        return x * 2 - 1

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
        """Generator space -> discriminator input, augmented and with instance noise if enabled
        (noise on both sides hides that real backgrounds are exactly -1, which a tanh only approaches)."""
        if self.augment:
            img = diff_augment(img, rng, self.options.diffaug_policy)
        if self.noise_now > 0:
            img = img + self.noise_now * rng.randn(*img.shape, device=img.device, dtype=img.dtype)
        return img

    def _D(self, img, labels):
        D = self.nets["discriminator"]
        return (D(img, labels) if labels is not None else D(img)).float().view(-1)

    def _d_step(self, real, y_real, rng, step) -> dict:
        G = self.nets["generator"]
        n = real.shape[0]
        z = rng.randn(n, self.model.latent_dim)
        y_fake = self._fake_labels(rng, n) if y_real is not None else None
        r1_now = self.r1 > 0 and step % self.r1_every == 0
        with self.amp():
            with torch.no_grad():
                fake = (G(z, y_fake) if y_fake is not None else G(z)).view_as(real)
            real_in = self._to_d(real, rng)
            if r1_now:      # the penalty differentiates D's output with respect to what D saw
                real_in = real_in.detach().requires_grad_(True)
            d_real = self._D(real_in, y_real)
            d_fake = self._D(self._to_d(fake.detach(), rng), y_fake)
        if self.hinge:
            d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        else:   # logistic: -log sigmoid(d_real) - log(1 - sigmoid(d_fake))
            d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        logs = {}
        if r1_now:
            # R1 (Mescheder et al. 2018): penalise D's gradient on real images, so D cannot carve
            # sharp cliffs around the data; lazy every r1_every steps, scaled by r1_every
            grad, = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
            penalty = grad.float().pow(2).flatten(1).sum(1).mean()
            d_loss = d_loss + 0.5 * self.r1 * self.r1_every * penalty
            logs["r1"] = penalty.item()
        opt_d = self.optimizers["d"]
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        logs.update({"d_loss": d_loss.item(), "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()})
        return logs

    def _g_step(self, n, cond, rng, shape) -> dict:
        G = self.nets["generator"]
        n = n if self.group < 2 else max(self.group, n - n % self.group)
        z = rng.randn(n, self.model.latent_dim)
        y_fake = self._fake_labels(rng, n) if cond else None
        half = n // 2
        seek = self.mode_seeking > 0 and half > 0
        if seek and cond:
            y_fake[half:2 * half] = y_fake[:half]      # pairs: sample i and i + n/2 share a class
        with self.amp():
            fake = (G(z, y_fake) if cond else G(z)).view(n, *shape)
            g_out = self._D(self._to_d(fake, rng), y_fake)
        g_loss = -g_out.mean() if self.hinge else F.softplus(-g_out).mean()   # else non-saturating
        logs = {}
        if seek:
            # MSGAN (Mao et al. 2019): image distance over latent distance for same-class pairs; G
            # pays its inverse, so ignoring z (one look per class) costs
            f = fake.float()
            ratio = (f[:half] - f[half:2 * half]).abs().mean() / (z[:half] - z[half:2 * half]).abs().mean()
            g_loss = g_loss + self.mode_seeking / (ratio + 1e-5)
            logs["ms_ratio"] = ratio.item()
        opt_g = self.optimizers["g"]
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        logs["g_loss"] = g_loss.item()
        return logs

    def step(self, x, y, rng, step):
        self.set_lr(step)
        if self.noise:
            self.noise_now = self.noise * max(0.0, 1.0 - self.schedule.progress(step))
        cond = self.model.num_classes > 0
        if self.group > 1 and cond:
            xg, yg = group_by_class(x, y, self.group)
            if len(xg):            # a tiny batch of all-different classes stays as it is
                x, y = xg, yg
        real = self.to_real(x)
        logs = self._d_step(real, y if cond else None, rng, step)
        g_logs = self._g_step(real.shape[0], cond, rng, real.shape[1:])
        if hasattr(self.model, "update_ema"):
            # ramp the decay so early, fast-changing weights do not linger in the average
            self.model.update_ema(min(self.options.ema_decay, (1 + step) / (10 + step)))
        extras = {k: v for k, v in {**logs, **g_logs}.items() if k in ("r1", "ms_ratio")}
        return {**extras, "d_loss": logs["d_loss"], "g_loss": g_logs["g_loss"],
                "d_real": logs["d_real"], "d_fake": logs["d_fake"]}


class DCGANObjective(GANObjective):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018) or the non-saturating logistic loss
    (Goodfellow et al. 2014, StyleGAN), optionally with an R1 penalty, Adam(0, 0.99) as in
    SNGAN/BigGAN, DiffAugment on both real and fake images, EMA of the generator, and a
    mode-seeking term (MSGAN) so that two latents of one class give different pictures."""
    default_lr = GAN_LR

    def __init__(self, model, nets, optim, schedule, amp, options: GANOptions):
        if options.gan_loss not in ("hinge", "ns"):
            raise ValueError(f"unknown GAN loss {options.gan_loss!r}; use hinge or ns")
        beta1 = 0.0 if options.adam_beta1 is None else options.adam_beta1   # momentum fights a moving target
        lr_d = options.lr_d or optim.lr or GAN_LR
        super().__init__(model, nets, optim, schedule, amp, options, betas=(beta1, 0.99), lr_d=lr_d)
        self.hinge = options.gan_loss == "hinge"
        self.r1 = float(options.r1)
        self.r1_every = max(1, int(options.r1_every))
        self.augment = bool(options.diffaug)
        self.noise = float(options.instance_noise)
        self.mode_seeking = float(options.mode_seeking)
        # a conditional D with minibatch std compares groups of one class (see group_by_class), so
        # it sees when G draws one look per class, which groups of mixed classes would hide
        self.group = int(model.config.d_mbstd or 0) if model.num_classes else 0


class SeedGANObjective(GANObjective):
    """The article's binary cross-entropy with the non-saturating generator loss, and the DCGAN
    paper's Adam (2e-4, beta1 0.5), the usual Keras-era choice."""
    default_lr = 2e-4

    def __init__(self, model, nets, optim, schedule, amp, options: GANOptions):
        beta1 = 0.5 if options.adam_beta1 is None else options.adam_beta1
        lr = optim.lr or self.default_lr
        super().__init__(model, nets, optim, schedule, amp, options, betas=(beta1, 0.999), lr_d=lr)

    def to_real(self, x):
        return x                  # the article's generator ends in a sigmoid: images in [0, 1]
