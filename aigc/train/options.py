"""Training options, in groups: each group is a dataclass, and an objective receives only its own.

`TrainOptions` is the flat record a run is started from and that options.json keeps (one key per
command-line flag); it is the union of the groups below, so `TrainOptions(lr=..., r1=...)` works
and `opts.group(GANOptions)` hands the GAN objective just its fields. Nothing adds attributes to
it while a run trains: what a run resolves (step budget, clock share) lives in `Schedule`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class RunOptions:
    """What to train on what, and where."""
    model: str = "dcgan"              # registry kind: vae | vade | dcgan | seed-gan | char-lm | text-vae
    data: str = "mnist"               # dataset name (mnist, fashion-mnist, shakespeare...) or data given in code
    out: str = "runs/run"             # run folder
    seed: int = 0
    tiny: bool = False                # tiny preset (tests)
    config: dict = field(default_factory=dict)   # model config overrides
    init_from: str | None = None      # start from a saved model's weights (fine-tuning)


@dataclass
class BudgetOptions:
    """When to stop; the smallest budget given wins."""
    epochs: float | None = None       # passes over the data
    max_steps: int | None = None      # optimiser steps
    max_minutes: float | None = None  # wall clock for the whole run (a resume continues the clock)


@dataclass
class HardwareOptions:
    device: str = "cpu"               # cpu | cuda | auto
    precision: str = "auto"           # auto | fp32 | bf16
    compile: bool = False             # torch.compile the trainable networks (GPU)
    channels_last: bool = False       # NHWC memory format (faster convs on GPU)


@dataclass
class OptimOptions:
    """Every objective's optimiser schedule."""
    batch_size: int = 128             # global batch (split across processes under torchrun)
    lr: float | None = None           # None: the objective's default, recorded in options.json at start
    lr_scale: bool = True             # scale lr by sqrt(batch/128) for large batches
    lr_decay: bool = True             # cosine decay to 10% over the run
    warmup: int = 0                   # linear lr warm-up steps


@dataclass
class VAEOptions:
    """The image VAE's objective."""
    kl_warmup: int | None = None      # steps over which the KL weight ramps 0 -> 1 (None: resolved at start)
    iwae_k: int = 1                   # importance samples per image: 1 is the ELBO, k > 1 the IWAE bound
                                      # (Burda et al. 2016) that the test NLL is measured with

    def check(self) -> None:
        k = self.iwae_k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
            raise ValueError(f"--iwae-k must be a whole number from 1 to 1000, not {k!r}")


@dataclass
class VaDEOptions:
    """VaDE's objective (Jiang et al. 2017): autoencoder pretraining, a GMM fit, then the ELBO."""
    pretrain_steps: int | None = None  # autoencoder steps before the GMM fit (None: resolved at start)
    pretrain_lr: float = 1e-3         # Adam's standard rate for the plain autoencoder
    gmm_images: int | None = None     # training images whose codes the GMM is fitted to, a seeded sample
                                      # (None: 10,000 for a new run, 0 for a fine-tune, which keeps its mixture)
    gmm_n_init: int = 3               # seeded EM starts, the best kept: seconds, and fewer bad fits
    prior_init: str = "gmm"           # gmm: EM on the codes (the paper's); spectral: the groups of their kNN graph
    pretrain_augment: float = 0.0     # pretraining on rotated (+-10 deg) and shifted (+-10%) pictures, times this
    prior_lr_scale: float = 1.0       # the ELBO's rate for the mixture itself, times this (0: it stays as initialised)
    prior_guide_epochs: float = 0.0   # spectral start: ELBO passes with q(c|x) fixed to the groups, at the switch
    lr_step_epochs: float = 5.0       # the ELBO's rate decays every this many epochs (recipe "cpu")
    lr_step_gamma: float = 0.9        # ... by this factor (the paper's)

    def check(self) -> None:
        p = self.pretrain_steps
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p < 0):
            raise ValueError(f"--pretrain-steps must be a whole number >= 0, not {p!r}")
        g = self.gmm_images
        if g is not None and (isinstance(g, bool) or not isinstance(g, int) or not 0 <= g <= 100_000):
            raise ValueError(f"--gmm-images must be a whole number from 0 to 100,000, not {g!r}")
        if self.prior_init not in ("gmm", "spectral"):
            raise ValueError(f"--prior-init must be gmm or spectral, not {self.prior_init!r}")
        a = self.pretrain_augment
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not 0 <= a <= 3:
            raise ValueError(f"--pretrain-augment must be a number from 0 to 3, not {a!r}")
        r = self.prior_lr_scale
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 10:
            raise ValueError(f"--prior-lr-scale must be a number from 0 to 10, not {r!r}")
        e = self.prior_guide_epochs
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 <= e <= 20:
            raise ValueError(f"--prior-guide-epochs must be a number from 0 to 20, not {e!r}")
        if e and self.prior_init != "spectral":
            raise ValueError("--prior-guide-epochs guides the codes to the spectral groups: use it with "
                             "--prior-init spectral")
        if not (self.lr_step_epochs > 0 and 0 < self.lr_step_gamma <= 1):
            raise ValueError("the VaDE rate decays every > 0 epochs by a factor in (0, 1]")


@dataclass
class GANOptions:
    """The GAN objectives (the dcgan uses them all, the article's seed-gan only adam_beta1)."""
    ema_decay: float = 0.999          # generator EMA decay
    diffaug: bool = True              # DiffAugment on D's inputs
    diffaug_policy: str = "color,translation,cutout"   # which DiffAugment transforms
    lr_d: float | None = None         # discriminator lr (None: the generator's)
    gan_loss: str = "hinge"           # hinge (SNGAN/BigGAN) or ns (non-saturating logistic, StyleGAN)
    r1: float = 0.0                   # R1 penalty weight on real images (0: off; Mescheder et al. 2018)
    r1_every: int = 4                 # lazy R1 every N steps, scaled by N (StyleGAN2): a quarter of its cost
    adam_beta1: float | None = None   # None: the objective's own (0 for the dcgan, 0.5 for the seed-gan)
    instance_noise: float = 0.0       # std of noise on every image D sees, decaying to 0 (Sonderby et al. 2016)
    mode_seeking: float = 0.2         # MSGAN weight (Mao et al. 2019): 0.2 buys varied samples per class
                                      # while keeping them digits; bench/README.md has the comparison


@dataclass
class LogOptions:
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 1000
    progress: bool = True             # tqdm bar on stderr


@dataclass
class EvalOptions:
    eval_every: int = 0               # steps between metric evaluations (0: never)
    eval_metric: str = "domain_fd"    # comma-separated; the first is compared with target (text: resolved at start)
    eval_n: int = 2000                # samples for image metrics (text: at most this many held-out windows, <= 400)
    eval_budget: float = 0.0          # > 0: skip a due evaluation that would push evaluating above this
                                      # share of the training time so far (the final one always runs)
    eval_at_start: bool = False       # also evaluate before the first step (the starting point of the curve)
    target: float | None = None       # log the time at which eval_metric first reaches <= target
    stop_at_target: bool = False      # ... and stop there
    keep_best: bool = False           # model/ holds the weights of the lowest first metric, not the last
    patience: int = 0                 # > 0: stop after this many evaluations without a new best


@dataclass
class AdaptOptions:
    """How a fine-tune changes the base it starts from while it trains (aigc.train.adapt)."""
    dropout: float | None = None      # None: the model's own; else the dropout while training only (the
                                      # saved config keeps the base's value)
    freeze: str = ""                  # comma-separated parameter-name prefixes kept fixed (e.g. "tok_emb,blocks.0")


GROUPS = (RunOptions, BudgetOptions, OptimOptions, VAEOptions, VaDEOptions, GANOptions, HardwareOptions, LogOptions,
          EvalOptions, AdaptOptions)


# bases listed last-first: a dataclass collects fields in reverse order of its bases
@dataclass
class TrainOptions(AdaptOptions, EvalOptions, LogOptions, HardwareOptions, GANOptions, VaDEOptions, VAEOptions, OptimOptions,
                   BudgetOptions, RunOptions):
    """Every option of a run, flat (the groups above, in one record)."""

    def group(self, cls):
        """This run's values of one group, as that group's dataclass."""
        return cls(**{f.name: getattr(self, f.name) for f in dataclasses.fields(cls)})

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(TrainOptions))


@dataclass
class Schedule:
    """What a run resolves from its options and the clock; shared by the loop and the objective."""
    total_steps: int                  # the step budget (10**9 when only the clock limits the run)
    steps_per_epoch: int
    lr_decay: bool = True             # cosine decay over total_steps, or a constant rate
    time_frac: float = 0.0            # share of a --max-minutes budget spent, for schedules that follow the clock

    def progress(self, step: int) -> float:
        """How far the run is, by steps or by the clock, whichever is further."""
        return max(step / self.total_steps if self.total_steps else 0.0, self.time_frac)
