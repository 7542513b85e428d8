"""The model-agnostic training loop (in the manner of StyleGAN2-ADA's training_loop).

A run folder holds:
  options.json   the resolved options (everything needed to repeat or resume the run)
  stats.jsonl    one JSON line per log interval: step, epoch, losses, lr, images/s, metrics
  samples/       grids (text: continuations) on fixed seeds every `sample_every` steps
  eval.json      the latest periodic evaluation in full (numbers and the protocol that measured them)
  model/         the latest weights as a saved model (config.json + model.safetensors + card)
  state.pt       exact resumption state (weights, optimisers, step, RNG), weights_only-loadable
Ctrl-C saves a checkpoint before exiting; `--resume RUN` continues at the saved step.

The kind names its objective (aigc.kinds), which gets only its own options group; its modality
names a task (modality.py) for what images and text do differently. Old run folders are
upgraded by aigc.legacy.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch

from aigc import checkpoint as ckpt
from aigc import legacy
from aigc.devices import autocast, autocast_dtype, resolve_device, setup_cuda_fast_paths
from aigc.kinds import build, get_kind
from aigc.train import adapt, distributed
from aigc.train.evaluation import PeriodicEval
from aigc.train.modality import make_task
from aigc.train.objectives import objective_class
from aigc.train.options import OPTION_NAMES, OptimOptions, Schedule, TrainOptions, VAEOptions
from aigc.train.rng import StepRNG

__all__ = ["Run", "TrainOptions", "train"]

RESUME_OVERRIDES = ("epochs", "max_steps", "max_minutes", "progress", "device")   # given now, they win


def resumed_options(opts: TrainOptions, run_dir: Path) -> TrainOptions:
    """The saved run's options (upgraded by aigc.legacy), with the budgets given now."""
    saved = legacy.upgrade_run_options(json.loads((run_dir / "options.json").read_text()))
    for k in RESUME_OVERRIDES:
        if getattr(opts, k) is not None:
            saved[k] = getattr(opts, k)
    saved["out"] = str(run_dir)
    unknown = sorted(set(saved) - OPTION_NAMES)
    if unknown:
        raise ValueError(f"{run_dir}/options.json: unknown option(s) {', '.join(unknown)}")
    return TrainOptions(**saved)


class Run:
    """One training run: resolved options, data, model, objective and the run folder."""

    def __init__(self, opts: TrainOptions, data=None, resume: str | None = None, heldout=None, extra_eval=None):
        """`heldout`: text kinds, the held-out text to measure (a TextData or token ids) when the
        data has no 'val' split of its own (an upload); image data that is not a built-in dataset
        is measured against itself. `extra_eval(model) -> dict`: numbers measured beside them."""
        self.info = distributed.init(opts.device)
        self.resume_state = None
        self.elapsed_before = 0.0          # seconds of earlier segments (set by a resume)
        self._t0 = None                    # this segment's clock origin, minus elapsed_before
        if resume:
            opts = resumed_options(opts, Path(resume))
            self.resume_state = legacy.upgrade_train_state(ckpt.load_state(Path(resume) / "state.pt"))
        kind = get_kind(opts.model)
        self.task = make_task(kind.modality, heldout)
        self.objective_cls = objective_class(kind)
        self.device = resolve_device(opts.device)
        if self.device.type == "cuda" and self.info.enabled:
            self.device = torch.device("cuda", self.info.local_rank)
        setup_cuda_fast_paths(self.device)
        self.dir = Path(opts.out)
        if resume is None and (self.dir / "state.pt").exists():
            raise ValueError(f"{self.dir} already holds a run; continue it with --resume {self.dir} "
                             "or choose a new --out")
        self.data = self.task.load_data(opts, data)
        self._check(opts)
        self.model = self._build_model(opts)
        adapt.apply(self.model, opts)      # a fine-tune's dropout and frozen layers, before the optimiser sees them
        self.model.to(self.device)
        if opts.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.amp_dtype = autocast_dtype(self.device, opts.precision, self.model.kind)
        self.schedule = self._schedule(opts)
        self.opts = self._resolved(opts)
        self.evals = PeriodicEval(self.task, self.opts, self.data, extra=extra_eval)
        nets = self.objective_cls.trainable_nets(self.model)
        if opts.compile:
            nets = {k: torch.compile(v) for k, v in nets.items()}
        self.nets = {k: distributed.wrap(v, self.info, str(self.device)) for k, v in nets.items()}
        own = self.opts.group(self.objective_cls.Options) if self.objective_cls.Options else None
        self.objective = self.objective_cls(self.model, self.nets, self.opts.group(OptimOptions), self.schedule,
                                            autocast(self.device, self.amp_dtype), own)
        self.objective.bind_data(self.data)
        self.step = 0
        self.flops_per_step = None
        if self.resume_state is not None:
            self._load_state(self.resume_state)
        self.source = self.data.source(self.device)
        self._perm_epoch, self._perm = -1, None

    # -- construction ----------------------------------------------------------------------------
    def _check(self, opts: TrainOptions) -> None:
        if opts.batch_size % self.info.world:
            raise ValueError(f"batch size {opts.batch_size} is not divisible by {self.info.world} processes")
        if len(self.data) < opts.batch_size:
            raise ValueError(f"{len(self.data)} images is fewer than one batch of {opts.batch_size}")
        opts.group(VAEOptions).check()
        if opts.iwae_k > 1 and self.objective_cls.Options is not VAEOptions:
            raise ValueError(f"--iwae-k is for the vae; a {opts.model} has no importance-weighted bound")

    def _build_model(self, o: TrainOptions):
        self.base = None
        if o.init_from:
            base = ckpt.from_pretrained(o.init_from)
            # what it starts from, kept in the saved config (and the resumable state, so a resume
            # after the base folder has been replaced still names the weights it really began with)
            self.base = ckpt.base_record(o.init_from)
            if base.kind != o.model:
                raise ValueError(f"--init-from {o.init_from} is a {base.kind}, not a {o.model}")
            tok = getattr(self.data, "tokenizer", None)
            if hasattr(base, "grow_vocab") and tok is not None and base.tokenizer is not None and tok.extends(base.tokenizer):
                base.grow_vocab(tok)     # the data's new characters get rows of their own
            self.task.check_base(base, self.data, o.init_from)
            return base.train()
        overrides = self.data.model_overrides(o.model)
        overrides.update(o.config)
        torch.manual_seed(o.seed)   # same seed, same initial weights
        model = build(o.model, tiny=o.tiny, **overrides).train()
        self.task.attach(model, self.data)
        return model

    def _schedule(self, o: TrainOptions) -> Schedule:
        steps_per_epoch = max(1, len(self.data) // o.batch_size)
        budgets = []
        if o.epochs is not None:
            budgets.append(math.ceil(o.epochs * steps_per_epoch))
        if o.max_steps is not None:
            budgets.append(int(o.max_steps))
        if not budgets and o.max_minutes is None:
            raise ValueError("give a budget: --epochs, --max-steps or --max-minutes")
        return Schedule(total_steps=min(budgets) if budgets else 10 ** 9, steps_per_epoch=steps_per_epoch,
                        lr_decay=o.lr_decay)

    def _resolved(self, o: TrainOptions) -> TrainOptions:
        """The options as recorded in options.json: every value left to the run filled in, so that
        the run resumes as it began even if a default changes later."""
        cls = self.objective_cls
        changes = {"lr": o.lr or cls.default_lr, "eval_metric": self.task.eval_metric(o.eval_metric, self.data)}
        if cls.Options is not None:
            own = cls.resolve(o.group(cls.Options), self.schedule.total_steps, fine_tune=bool(o.init_from))
            changes.update(dataclasses.asdict(own))
        if not o.init_from:
            pinned = {n: getattr(self.model.config, n) for n in legacy.changed_fields(o.model)}
            changes["config"] = {**pinned, **o.config}
        return dataclasses.replace(o, **changes)

    def _load_state(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.step = int(state["step"])
        # the clock continues across resumes, so --max-minutes counts the whole run
        self.elapsed_before = float(state["elapsed_s"])
        torch.set_rng_state(state["torch_rng"])
        self.evals.load_state(state.get("evals"))
        if isinstance(state.get("init_from"), dict):
            self.base = state["init_from"]

    def _state(self) -> dict:
        return {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "objective": self.objective.state_dict(), "step": self.step,
                "torch_rng": torch.get_rng_state(), "format": "aigc-train-state/1",
                "elapsed_s": round(self._elapsed(), 3), "evals": self.evals.state(),
                **({"init_from": self.base} if self.base else {})}

    def _elapsed(self) -> float:
        """Seconds of this run so far, over every segment (a resume continues the clock)."""
        return time.time() - self._t0 if self._t0 is not None else self.elapsed_before

    # -- data ------------------------------------------------------------------------------------
    def batch(self, step: int, rng=None):
        o = self.opts
        epoch, pos = divmod(step, self.schedule.steps_per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(o.seed * 100_003 + epoch)
            self._perm = torch.randperm(len(self.data), generator=g).to(self.device)
            self._perm_epoch = epoch
        idx = self._perm[pos * o.batch_size:(pos + 1) * o.batch_size]
        local = o.batch_size // self.info.world
        idx = idx[self.info.rank * local:(self.info.rank + 1) * local]
        x, y = self.source.get(idx, rng)
        return self.task.batch(x, o.channels_last), y

    # -- outputs (rank 0 only) -------------------------------------------------------------------
    def save_samples(self):
        (self.dir / "samples").mkdir(parents=True, exist_ok=True)
        self.task.save_samples(self.model, self.device, self.dir / "samples" / f"step-{self.step:07d}")

    def meta(self) -> dict:
        o = self.opts
        meta = getattr(self.data, "model_meta", lambda: {})()
        return {**meta, "dataset": self.data.name, "trained_steps": self.step,
                "train": {"kind": o.model, "data": o.data, "batch_size": o.batch_size,
                          "steps": self.step, "epochs": round(self.step / self.schedule.steps_per_epoch, 3),
                          "seed": o.seed, "device": str(self.device), "world_size": self.info.world,
                          "precision": str(self.amp_dtype or "fp32").replace("torch.", ""),
                          **({"init_from": self.base} if self.base else {})}}

    def save_checkpoint(self):
        """state.pt, and model/ unless model/ keeps the best evaluation's weights (keep_best)."""
        if not self.info.is_main:
            return
        ckpt.save_state(self.dir / "state.pt", self._state())
        if not (self.opts.keep_best and self.evals.best is not None):
            ckpt.save_pretrained(self.model, self.dir / "model", meta=self.meta())

    def _keep_if_best(self) -> None:
        if self.opts.keep_best and self.evals.is_best:
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

    def evaluate(self) -> float:
        """The first metric of `eval_metric`."""
        return self.evals.first_value(self.evals.measure(self.model, self.device))

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
    def _start(self):
        """Write options.json, trim a resumed log, open the progress bar; -> the bar or None."""
        o, main = self.opts, self.info.is_main
        if main:
            self.dir.mkdir(parents=True, exist_ok=True)
            ckpt.atomic_write_json(self.dir / "options.json", o.to_json())
            if self.resume_state is not None:
                self._trim_stats()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        if not (main and o.progress):
            return None
        from tqdm import tqdm
        return tqdm(total=self.schedule.total_steps, initial=self.step, desc=f"{o.model}/{self.data.name}",
                    unit="step", dynamic_ncols=True, file=sys.stderr)

    def _one_step(self) -> dict:
        rng = StepRNG(self.opts.seed, self.step, self.device, self.info.rank, self.info.world)
        x, y = self.batch(self.step, rng)
        # every rank: the counted step runs DDP collectives; a one-off step (a VaDE's switch, with
        # its spectral fit and guided passes) would be run twice and counted wrong, so the next is
        if self.flops_per_step is None and not self.objective.one_off_step(self.step):
            self.flops_per_step = self._count_flops(x, y, rng)
            rng = StepRNG(self.opts.seed, self.step, self.device, self.info.rank, self.info.world)
        logs = self.objective.step(x, y, rng, self.step)
        self.step += 1
        return logs

    def _record(self, logs: dict, n_seen: int, dt: float, done: bool) -> dict:
        """One stats.jsonl line, with an evaluation when one is due."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        rate = self.task.rate(n_seen / max(dt, 1e-9), self.model)
        rec = {"step": self.step, "epoch": round(self.step / self.schedule.steps_per_epoch, 3),
               "time_s": round(time.time() - self._t0, 2), self.task.rate_key: round(rate, 1),
               "lr": self.objective.current_lr()}
        rec.update({k: round(v, 5) for k, v in logs.items()})
        if self.device.type == "cuda":
            rec["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2 ** 30, 3)
        if self.info.is_main and self.evals.due(self.step, done, time.time() - self._t0):
            rec.update(self.evals.record(self.model, self.device, self.dir, self.step, self._t0))
            self._keep_if_best()
        return rec

    def _should_stop(self, done: bool) -> bool:
        o = self.opts
        stop = done or (self.evals.reached is not None and o.stop_at_target)
        stop = stop or bool(o.patience and self.evals.since_best >= o.patience)    # early stopping
        if o.max_minutes is not None:
            # the lr schedule follows the clock too; every rank uses the largest fraction
            frac = (time.time() - self._t0) / (o.max_minutes * 60)
            self.schedule.time_frac = distributed.max_value(frac, self.info, self.device)
        if self.info.enabled and (o.max_minutes is not None or o.stop_at_target or o.patience):
            stop = distributed.any_flag(stop, self.info, self.device)  # every rank stops together
        return stop

    def train(self) -> Path:
        o, main = self.opts, self.info.is_main
        bar = self._start()
        self._t0 = time.time() - self.elapsed_before
        if main and o.eval_every and o.eval_at_start and self.step == 0:
            self.log(self.evals.record(self.model, self.device, self.dir, 0, self._t0, at_start=True))
            self._keep_if_best()
        t_log, n_log = time.time(), 0
        try:
            while self.step < self.schedule.total_steps:
                logs = self._one_step()
                n_log += o.batch_size
                if bar:
                    bar.update(1)
                elapsed = time.time() - self._t0
                done = self.step >= self.schedule.total_steps or (
                    o.max_minutes is not None and elapsed >= o.max_minutes * 60)
                if self.step % o.log_every == 0 or done or (o.eval_every and self.step % o.eval_every == 0):
                    rec = self._record(logs, n_log, time.time() - t_log, done)
                    if main:
                        self.log(rec)
                        if bar:
                            bar.set_postfix({k: rec[k] for k in list(logs)[:2]})
                    t_log, n_log = time.time(), 0
                if main and (self.step % o.sample_every == 0 or done):
                    self.save_samples()
                if self.step % o.ckpt_every == 0 and not done:
                    self.save_checkpoint()
                if self._should_stop(done):
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
            self._write_summary()
        distributed.barrier(self.info)
        return self.dir / "model"

    def _write_summary(self) -> None:
        o, now = self.opts, time.time()
        summary = {"steps": self.step, "time_s": round(now - self._t0, 2),
                   "flops_per_step": self.flops_per_step, "batch_size": o.batch_size,
                   "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
                   "torch": torch.__version__,
                   "train_s": round(now - self._t0 - self.evals.eval_s, 2), "target_reached": self.evals.reached,
                   "best": self.evals.best if o.keep_best else None,
                   "stopped_early": bool(o.patience and self.evals.since_best >= o.patience)}
        if self.device.type == "cuda":
            summary["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(self.device) / 2 ** 30, 3)
        ckpt.atomic_write_json(self.dir / "summary.json", summary)


def train(opts: TrainOptions, data=None, resume: str | None = None, heldout=None, extra_eval=None) -> Path:
    run = Run(opts, data=data, resume=resume, heldout=heldout, extra_eval=extra_eval)
    try:
        return run.train()
    finally:
        distributed.cleanup(run.info)
