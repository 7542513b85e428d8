"""The model-agnostic training loop (in the manner of StyleGAN2-ADA's training_loop).

A run folder holds:
  options.json   the resolved options (everything needed to repeat or resume the run)
  stats.jsonl    one JSON line per log interval: step, epoch, losses, lr, images/s, metrics
  samples/       grids on fixed seeds every `sample_every` steps
  eval.json      the latest periodic evaluation in full (numbers and the protocol that measured them)
  model/         the latest weights as a saved model (config.json + model.safetensors + card)
  state.pt       exact resumption state (weights, optimisers, step, RNG), weights_only-loadable
Ctrl-C saves a checkpoint before exiting; `--resume RUN` continues at the saved step.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from aigc import checkpoint as ckpt
from aigc.data import load_dataset
from aigc.data.text import load_text_dataset
from aigc.devices import autocast, autocast_dtype, resolve_device, setup_cuda_fast_paths
from aigc.data.grid import make_grid, to_uint8
from aigc.kinds import KINDS, build, get_kind, make_config
from aigc.train import distributed
from aigc.train.objectives import make_objective, trainable_nets
from aigc.train.rng import StepRNG


# options whose default changed: a run folder saved before (no such key in options.json) resumes
# with the value it was started with
OPTION_LEGACY = {"mode_seeking": 0.0}
# the kind's default learning rate before it changed: a run folder whose options.json says "lr":
# null was started before new runs recorded the rate they resolved, so it resumes with this one
LR_LEGACY = {"dcgan": 2e-4}


@dataclass
class TrainOptions:
    model: str = "dcgan"              # registry kind: vae | dcgan | seed-gan
    data: str = "mnist"               # dataset name (mnist, fashion-mnist) or an ImageData given in code
    out: str = "runs/run"             # run folder
    epochs: float | None = None       # budget in passes over the data ...
    max_steps: int | None = None      # ... or in optimiser steps (the smaller wins)
    max_minutes: float | None = None  # wall-clock budget for the whole run (a resume continues the clock)
    batch_size: int = 128             # global batch (split across processes under torchrun)
    lr: float | None = None           # None: the objective's default for the kind
    lr_scale: bool = True             # scale lr by sqrt(batch/128) for large batches
    lr_decay: bool = True             # cosine decay to 10% over the run
    warmup: int = 0                   # linear lr warm-up steps
    kl_warmup: int | None = None      # VAE: steps over which the KL weight ramps 0 -> 1 (None: 2,000, or
                                      # the first fifth of a shorter run; 0 when starting from a trained model)
    iwae_k: int = 1                   # VAE: importance samples per image in the training bound. 1: the ELBO;
                                      # k > 1: the IWAE bound (Burda et al. 2016), the one the test NLL is
                                      # measured with, tighter as k grows, at k decoder passes per image
    ema_decay: float = 0.999          # GAN: generator EMA decay
    diffaug: bool = True              # GAN: DiffAugment on D's inputs
    diffaug_policy: str = "color,translation,cutout"   # which DiffAugment transforms
    lr_d: float | None = None         # GAN: discriminator lr (None: same as the generator's)
    gan_loss: str = "hinge"           # dcgan: hinge (SNGAN/BigGAN) or ns (non-saturating logistic, StyleGAN)
    r1: float = 0.0                   # dcgan: R1 penalty weight gamma on real images (0: off; Mescheder et al. 2018)
    r1_every: int = 4                 # dcgan: lazy R1 every N steps, scaled by N (StyleGAN2), a quarter of its cost
    adam_beta1: float | None = None   # GAN: Adam beta1 (None: 0 for dcgan, 0.5 for seed-gan)
    instance_noise: float = 0.0       # dcgan: std of Gaussian noise added to every image D sees, real and fake,
                                      # decaying linearly to 0 over the run (Sonderby et al. 2016)
    mode_seeking: float = 0.2         # dcgan: weight of the mode-seeking term (MSGAN, Mao et al. 2019) that pays
                                      # G for making two latents of one class look different. Without it the
                                      # conditional G drew one look per class (diversity 0.38); 0.2 keeps the
                                      # samples digits (1.0 bought distance with noise); bench/README.md
    device: str = "cpu"               # cpu | cuda | auto
    precision: str = "auto"           # auto | fp32 | bf16
    compile: bool = False             # torch.compile the trainable networks (GPU)
    channels_last: bool = False       # NHWC memory format (faster convs on GPU)
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 1000
    eval_every: int = 0               # steps between metric evaluations (0: never)
    eval_metric: str = "domain_fd"    # metric(s) logged at eval_every, comma-separated; the first is compared with target
    eval_n: int = 2000                # samples for image metrics (text: at most this many held-out windows, <= 400)
    eval_budget: float = 0.0          # > 0: skip a due evaluation when it would bring the time spent evaluating
                                      # above this share of the training time so far (the final one always runs)
    eval_at_start: bool = False       # also evaluate before the first step (the starting point of the curve)
    target: float | None = None       # log the time at which eval_metric first reaches <= target
    stop_at_target: bool = False      # ... and stop there
    tiny: bool = False                # tiny preset (tests)
    config: dict = field(default_factory=dict)   # model config overrides
    init_from: str | None = None      # start from a saved model's weights (fine-tuning)
    progress: bool = True             # tqdm bar on stderr
    # resolved at start
    total_steps: int = 0
    steps_per_epoch: int = 0

    def autocast_context(self):  # replaced by the resolved context at run time
        raise RuntimeError("options not resolved")


TEXT_EVAL_WINDOWS = 400     # text kinds: held-out windows per periodic evaluation (seconds on a CPU)


def _json_safe(opts: TrainOptions) -> dict:
    return {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)}


class Run:
    """One training run: resolved options, data, model, objective and the run folder."""

    def __init__(self, opts: TrainOptions, data=None, resume: str | None = None, heldout=None):
        """`heldout`: text kinds, the held-out text to measure (a TextData or token ids) when the
        data has no 'val' split of its own (an upload); image data that is not a built-in dataset
        is measured against itself (see `eval_reference`)."""
        self.info = distributed.init(opts.device)
        self.heldout = heldout
        self.resume_state = None
        self.elapsed_before = 0.0          # seconds of earlier segments (set by a resume)
        self._t0 = None                    # this segment's clock origin, minus elapsed_before
        if resume:
            run_dir = Path(resume)
            saved = json.loads((run_dir / "options.json").read_text())
            # budgets given now win over the saved ones; everything else is the saved run's
            for k in ("epochs", "max_steps", "max_minutes", "progress", "device"):
                saved[k] = getattr(opts, k) if getattr(opts, k) is not None else saved.get(k)
            saved["out"] = str(run_dir)
            saved.pop("total_steps", None), saved.pop("steps_per_epoch", None)
            for k, v in OPTION_LEGACY.items():
                saved.setdefault(k, v)
            if saved.get("lr") is None:
                saved["lr"] = LR_LEGACY.get(saved.get("model"))
            if not saved.get("init_from"):
                # a run started before a config field existed was built with that field's old value
                kind = KINDS.get(saved.get("model", ""))
                legacy = (kind.legacy or {}) if kind is not None else {}
                saved["config"] = {**legacy, **(saved.get("config") or {})}
            opts = TrainOptions(**saved)
            self.resume_state = ckpt.load_state(run_dir / "state.pt")
        self.opts = opts
        self.device = resolve_device(opts.device)
        if self.device.type == "cuda" and self.info.enabled:
            self.device = torch.device("cuda", self.info.local_rank)
        setup_cuda_fast_paths(self.device)
        self.dir = Path(opts.out)
        if resume is None and (self.dir / "state.pt").exists():
            raise ValueError(f"{self.dir} already holds a run; continue it with --resume {self.dir} "
                             "or choose a new --out")
        if get_kind(opts.model).modality == "text":
            if data is None:
                data = self._load_text_data()
            if opts.eval_metric == "domain_fd":        # the image default means nothing for text
                opts.eval_metric = getattr(data, "eval_metric", "nats_per_char")
        self.data = data if data is not None else load_dataset(opts.data, "train")
        if opts.batch_size % self.info.world:
            raise ValueError(f"batch size {opts.batch_size} is not divisible by {self.info.world} processes")
        if len(self.data) < opts.batch_size:
            raise ValueError(f"{len(self.data)} images is fewer than one batch of {opts.batch_size}")
        if isinstance(opts.iwae_k, bool) or not isinstance(opts.iwae_k, int) or not 1 <= opts.iwae_k <= 1000:
            raise ValueError(f"--iwae-k must be a whole number from 1 to 1000, not {opts.iwae_k!r}")
        if opts.iwae_k > 1 and opts.model != "vae":
            raise ValueError(f"--iwae-k is for the vae; a {opts.model} has no importance-weighted bound")

        self.model = self._build_model()
        if not opts.init_from:
            # record the values of fields whose defaults have changed, so this run resumes as built
            for name in get_kind(opts.model).legacy or {}:
                opts.config.setdefault(name, getattr(self.model.config, name))
        self.model.to(self.device)
        if opts.channels_last:
            self.model.to(memory_format=torch.channels_last)
        dtype = autocast_dtype(self.device, opts.precision, self.model.kind)
        self.amp_dtype = dtype
        opts.autocast_context = autocast(self.device, dtype)
        opts.steps_per_epoch = max(1, len(self.data) // opts.batch_size)
        budgets = []
        if opts.epochs is not None:
            budgets.append(math.ceil(opts.epochs * opts.steps_per_epoch))
        if opts.max_steps is not None:
            budgets.append(int(opts.max_steps))
        if not budgets and opts.max_minutes is None:
            raise ValueError("give a budget: --epochs, --max-steps or --max-minutes")
        opts.total_steps = min(budgets) if budgets else 10 ** 9
        if opts.kl_warmup is None:
            # a trained model already uses its KL, so a fine-tune keeps the full ELBO from the first
            # step; a new one ramps over 2,000 steps, or a fifth of a shorter run, so that every run
            # ends on the true ELBO (a 500-step upload run used to stop at a quarter of the KL weight)
            opts.kl_warmup = 0 if opts.init_from else min(2000, max(1, opts.total_steps // 5))
        nets = trainable_nets(self.model)
        if opts.compile:
            nets = {k: torch.compile(v) for k, v in nets.items()}
        self.nets = {k: distributed.wrap(v, self.info, str(self.device)) for k, v in nets.items()}
        self.objective = make_objective(self.model, opts, self.nets)
        if opts.lr is None:
            # record the kind's default rate (before batch scaling), so the run resumes with it
            # even if the default changes later
            opts.lr = next(iter(self.objective.base_lr.values()))
        if opts.lr_scale and opts.batch_size > 128:
            factor = math.sqrt(opts.batch_size / 128)   # square-root scaling keeps Adam stable
            self.objective.base_lr = {k: v * factor for k, v in self.objective.base_lr.items()}
        self.step = 0
        self.flops_per_step = None
        if self.resume_state is not None:
            self._load_state(self.resume_state)
        self.source = self.data.source(self.device)
        self._perm_epoch, self._perm = -1, None

    # -- construction ----------------------------------------------------------------------------
    def _load_text_data(self):
        """A text kind's training text, in the block size (and tokenizer) the model will have."""
        o = self.opts
        from aigc.data.lines import LINE_DATASETS, load_line_dataset
        if o.data in LINE_DATASETS:            # one line per example (the sentence VAE)
            tok = ckpt.from_pretrained(o.init_from).tokenizer if o.init_from else None
            return load_line_dataset(o.data, "train", tokenizer=tok)
        if o.init_from:
            base = ckpt.from_pretrained(o.init_from)
            return load_text_dataset(o.data, "train", base.config.block_size, tokenizer=base.tokenizer)
        return load_text_dataset(o.data, "train", make_config(o.model, tiny=o.tiny, **o.config).block_size)

    def _build_model(self):
        o = self.opts
        self.base = None
        if o.init_from:
            base = ckpt.from_pretrained(o.init_from)
            # what it starts from, kept in the saved config (and the resumable state, so a resume
            # after the base folder has been replaced still names the weights it really began with)
            self.base = ckpt.base_record(o.init_from)
            if base.kind != o.model:
                raise ValueError(f"--init-from {o.init_from} is a {base.kind}, not a {o.model}")
            if base.modality == "text":
                if getattr(self.data, "tokenizer", None) != base.tokenizer:
                    raise ValueError(f"--init-from {o.init_from}: the text must be encoded with that model's tokenizer")
            elif base.image_shape != self.data.shape:
                raise ValueError(f"--init-from {o.init_from} makes {base.image_shape} images; the data is {self.data.shape}")
            return base.train()
        overrides = self.data.model_overrides(o.model)
        overrides.update(o.config)
        torch.manual_seed(o.seed)   # same seed, same initial weights
        model = build(o.model, tiny=o.tiny, **overrides).train()
        if getattr(self.data, "tokenizer", None) is not None:
            model.set_tokenizer(self.data.tokenizer)   # saved beside the weights as tokenizer.json
        return model

    def _load_state(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.step = int(state["step"])
        # the wall clock continues across resumes, so --max-minutes (and the lr schedule that follows
        # it) counts the whole run, not each segment; states written before this field start at 0
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        torch.set_rng_state(state["torch_rng"])
        if isinstance(state.get("init_from"), dict):
            self.base = state["init_from"]

    def _state(self) -> dict:
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "objective": self.objective.state_dict(), "step": self.step,
                "torch_rng": torch.get_rng_state(), "format": "aigc-train-state/1",
                "elapsed_s": round(self._elapsed(), 3),
                **({"init_from": self.base} if self.base else {})}

    def _elapsed(self) -> float:
        """Seconds of this run so far, over every segment (a resume continues the clock)."""
        return time.time() - self._t0 if self._t0 is not None else self.elapsed_before

    # -- data ------------------------------------------------------------------------------------
    def batch(self, step: int, rng=None):
        o = self.opts
        epoch, pos = divmod(step, o.steps_per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(o.seed * 100_003 + epoch)
            self._perm = torch.randperm(len(self.data), generator=g).to(self.device)
            self._perm_epoch = epoch
        idx = self._perm[pos * o.batch_size:(pos + 1) * o.batch_size]
        local = o.batch_size // self.info.world
        idx = idx[self.info.rank * local:(self.info.rank + 1) * local]
        x, y = self.source.get(idx, rng)
        if o.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    # -- outputs (rank 0 only) -------------------------------------------------------------------
    def fixed_grid(self):
        g = torch.Generator().manual_seed(12345)
        m = self.model
        z = torch.randn(64, m.latent_dim, generator=g).to(self.device)
        labels = torch.arange(64, device=self.device) % m.num_classes if m.num_classes else None
        return m.sample(64, z=z, labels=labels)

    def save_samples(self):
        (self.dir / "samples").mkdir(parents=True, exist_ok=True)
        if self.model.modality != "image":
            text = self.model.preview_text()   # text kinds: a few continuations on fixed seeds
            ckpt.atomic_write_text(self.dir / "samples" / f"step-{self.step:07d}.txt", text)
            return
        img = make_grid(to_uint8(self.fixed_grid()), nrow=8)
        with ckpt.atomic_path(self.dir / "samples" / f"step-{self.step:07d}.png") as tmp:
            img.save(tmp, format="PNG")

    def meta(self) -> dict:
        o = self.opts
        meta = getattr(self.data, "model_meta", lambda: {})()
        return {**meta, "dataset": self.data.name, "trained_steps": self.step,
                "train": {"kind": o.model, "data": o.data, "batch_size": o.batch_size,
                          "steps": self.step, "epochs": round(self.step / o.steps_per_epoch, 3),
                          "seed": o.seed, "device": str(self.device), "world_size": self.info.world,
                          "precision": str(self.amp_dtype or "fp32").replace("torch.", ""),
                          **({"init_from": self.base} if self.base else {})}}

    def save_checkpoint(self):
        if not self.info.is_main:
            return
        ckpt.save_state(self.dir / "state.pt", self._state())
        ckpt.save_pretrained(self.model, self.dir / "model", meta=self.meta())

    def log(self, rec: dict):
        with open(self.dir / "stats.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")

    def _trim_stats(self):
        """On resume, drop log lines from beyond the checkpoint (they will be written again)."""
        path = self.dir / "stats.jsonl"
        if not path.exists():
            return
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= self.step]
        ckpt.atomic_write_text(path, "".join(ln + "\n" for ln in keep))

    @property
    def eval_names(self) -> list[str]:
        return [m.strip() for m in str(self.opts.eval_metric).split(",") if m.strip()]

    def eval_reference(self):
        """The image set the metrics compare with: None for a built-in dataset (its own splits),
        else the training data itself (an upload has no test split)."""
        from aigc.data.images import canonical_name
        try:
            canonical_name(self.data.name)
            return None
        except ValueError:
            return self.data

    def evaluate_all(self) -> dict:
        """Every metric of `eval_metric` -> the full result (numbers, and a `protocol` line when
        the metric code gives one)."""
        if hasattr(self.data, "evaluate"):      # data that scores its own held-out split
            return {self.eval_names[0]: self.data.evaluate(self.model, self.eval_names[0])}
        if self.model.modality == "text":
            # held-out nats/char on an evenly spaced subset of full-context windows (see CharLM.nll)
            windows = max(1, min(TEXT_EVAL_WINDOWS, int(self.opts.eval_n)))
            if getattr(self, "_val_ids", None) is None:
                if self.heldout is not None:
                    self._val_ids = getattr(self.heldout, "ids", self.heldout)
                    self._val_what = f"a held-out slice of {self.data.name} ({len(self._val_ids):,} characters)"
                else:
                    self._val_ids = load_text_dataset(self.data.name, "val", self.model.config.block_size,
                                                      tokenizer=self.model.tokenizer).ids
                    self._val_what = f"the {self.data.name} validation split"
            nats = self.model.nats_per_char(self._val_ids, max_windows=windows, batch_size=64)
            return {"nats_per_char": nats, "bits_per_char": nats / math.log(2),
                    "protocol": (f"held-out cross-entropy (nats/char) on {self._val_what}: at most {windows} "
                                 f"evenly spaced windows of {self.model.config.block_size} characters, each "
                                 f"scoring only characters it sees with full context")}
        from aigc.eval import evaluate
        return evaluate(self.model, self.data.name, metrics=self.eval_names, n=self.opts.eval_n,
                        device=str(self.device), seed=0, reference=self.eval_reference())

    @staticmethod
    def _metric_value(res: dict, name: str) -> float:
        if name in res:
            return float(res[name])
        return float(next(v for k, v in res.items() if k.startswith(name) and isinstance(v, (int, float))))

    def evaluate(self) -> float:
        """The first metric of `eval_metric`."""
        return self._metric_value(self.evaluate_all(), self.eval_names[0])

    def _eval_record(self) -> dict:
        """Evaluate -> the numbers for stats.jsonl (the full result goes to eval.json)."""
        res = self.evaluate_all()
        ckpt.atomic_write_json(self.dir / "eval.json", {"step": self.step, **res})
        out = {}
        for k, v in res.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and any(k.startswith(m) for m in self.eval_names):
                out[k] = float(f"{v:.6g}")
        first = self.eval_names[0]
        out.setdefault(first, float(f"{self._metric_value(res, first):.6g}"))
        return out

    def _count_flops(self, x, y, rng) -> float | None:
        """Model FLOPs of one training step (forward + backward, all networks), counted by
        PyTorch's FlopCounterMode on a throw-away copy of the step; used for MFU. The copy's
        update is undone by restoring the weights and optimiser state."""
        try:
            from torch.utils.flop_counter import FlopCounterMode
        except ImportError:
            return None
        import copy
        saved_model = copy.deepcopy(self.model.state_dict())
        saved_opt = copy.deepcopy(self.objective.state_dict())
        try:
            with FlopCounterMode(display=False) as fc:
                self.objective.step(x, y, rng, self.step)
            return float(fc.get_total_flops()) * self.info.world
        except Exception:  # noqa: BLE001 - counting is best-effort, never fatal
            return None
        finally:
            self.model.load_state_dict(saved_model)
            self.objective.load_state_dict(saved_opt)

    # -- the loop --------------------------------------------------------------------------------
    def train(self) -> Path:
        o, main = self.opts, self.info.is_main
        if main:
            self.dir.mkdir(parents=True, exist_ok=True)
            opts_json = _json_safe(o)
            ckpt.atomic_write_json(self.dir / "options.json", opts_json)
            if self.resume_state is not None:
                self._trim_stats()
        bar = None
        if main and o.progress:
            from tqdm import tqdm
            bar = tqdm(total=o.total_steps, initial=self.step, desc=f"{o.model}/{self.data.name}",
                       unit="step", dynamic_ncols=True, file=sys.stderr)
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        t0 = self._t0 = time.time() - self.elapsed_before
        eval_s = 0.0                      # time spent evaluating, excluded from train_s
        last_eval_s = 0.0                 # the latest evaluation's cost (predicts the next one's)
        reached = None
        first_metric = self.eval_names[0] if o.eval_every else None
        if main and o.eval_every and o.eval_at_start and self.step == 0:
            t_eval = time.time()
            rec = {"step": 0, "epoch": 0.0, "time_s": 0.0, **self._eval_record()}
            eval_s = last_eval_s = time.time() - t_eval
            rec["eval_s"] = round(eval_s, 2)
            self.log(rec)
        t_log, n_log = time.time(), 0
        try:
            while self.step < o.total_steps:
                rng = StepRNG(o.seed, self.step, self.device, self.info.rank, self.info.world)
                x, y = self.batch(self.step, rng)
                if self.flops_per_step is None:   # every rank: the counted step runs DDP collectives
                    self.flops_per_step = self._count_flops(x, y, rng)
                    rng = StepRNG(o.seed, self.step, self.device, self.info.rank, self.info.world)
                logs = self.objective.step(x, y, rng, self.step)
                self.step += 1
                n_log += o.batch_size
                if bar:
                    bar.update(1)
                elapsed = time.time() - t0
                done = self.step >= o.total_steps or (o.max_minutes is not None and elapsed >= o.max_minutes * 60)
                if self.step % o.log_every == 0 or done or (o.eval_every and self.step % o.eval_every == 0):
                    if self.device.type == "cuda":
                        torch.cuda.synchronize(self.device)
                    dt = time.time() - t_log
                    rate = n_log / max(dt, 1e-9)
                    rate_key = "img_per_s" if self.model.modality == "image" else "tok_per_s"
                    if self.model.modality != "image":
                        rate *= self.model.config.block_size
                    rec = {"step": self.step, "epoch": round(self.step / o.steps_per_epoch, 3),
                           "time_s": round(elapsed, 2), rate_key: round(rate, 1),
                           "lr": self.objective.optimizers[next(iter(self.objective.optimizers))].param_groups[0]["lr"]}
                    rec.update({k: round(v, 5) for k, v in logs.items()})
                    if self.device.type == "cuda":
                        rec["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2 ** 30, 3)
                    due = bool(o.eval_every) and (self.step % o.eval_every == 0 or done)
                    if due and not done and o.eval_budget and o.eval_budget > 0:
                        due = eval_s + last_eval_s <= o.eval_budget * (time.time() - t0 - eval_s)
                    if main and due:
                        t_eval = time.time()
                        rec.update(self._eval_record())
                        last_eval_s = time.time() - t_eval
                        eval_s += last_eval_s
                        rec["eval_s"] = round(last_eval_s, 2)
                        if o.target is not None and rec[first_metric] <= o.target and reached is None:
                            reached = {"step": self.step, "time_s": round(time.time() - t0, 2),
                                       "train_s": round(time.time() - t0 - eval_s, 2),
                                       first_metric: rec[first_metric]}
                            rec["target_reached"] = reached
                    if main:
                        self.log(rec)
                        if bar:
                            bar.set_postfix({k: rec[k] for k in list(logs)[:2]})
                    t_log, n_log = time.time(), 0
                if main and (self.step % o.sample_every == 0 or done):
                    self.save_samples()
                if self.step % o.ckpt_every == 0 and not done:
                    self.save_checkpoint()
                stop = done or (reached is not None and o.stop_at_target)
                if o.max_minutes is not None:
                    # the lr schedule follows the clock too; every rank uses the largest fraction
                    frac = (time.time() - t0) / (o.max_minutes * 60)
                    o.time_frac = distributed.max_value(frac, self.info, self.device)
                if self.info.enabled and (o.max_minutes is not None or o.stop_at_target):
                    stop = distributed.any_flag(stop, self.info, self.device)  # every rank stops together
                if stop:
                    break
        except KeyboardInterrupt:
            if bar:
                bar.close()
            print(f"\ninterrupted at step {self.step}: saving a checkpoint to {self.dir}", file=sys.stderr)
            self.save_checkpoint()
            raise
        finally:
            if bar:
                bar.close()
        self.save_checkpoint()
        if main:
            summary = {"steps": self.step, "time_s": round(time.time() - t0, 2),
                       "flops_per_step": self.flops_per_step, "batch_size": o.batch_size,
                       "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
                       "torch": torch.__version__,
                       "train_s": round(time.time() - t0 - eval_s, 2), "target_reached": reached}
            if self.device.type == "cuda":
                summary["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2 ** 30, 3)
            ckpt.atomic_write_json(self.dir / "summary.json", summary)
        distributed.barrier(self.info)
        return self.dir / "model"


def train(opts: TrainOptions, data=None, resume: str | None = None, heldout=None) -> Path:
    run = Run(opts, data=data, resume=resume, heldout=heldout)
    try:
        return run.train()
    finally:
        distributed.cleanup(run.info)
