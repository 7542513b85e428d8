"""One fine-tune: check an upload against a base model (or a kind trained from scratch), prepare it,
train, and write the model card. The CLI, the job worker and the studio's checks all call this.

    spec = FinetuneSpec(base="dcgan-mnist", data="digits.zip", out="runs/ft", steps=500)
    model_dir = finetune(spec, on_progress=lambda e: print(e.get("text", "")))

Bad input raises ValueError with one line. `on_progress(event)` receives dicts with a "phase"
("report": the preparation report as "text"; "note": a remark as "text"; "running": training starts,
with "total" steps; "done": the model folder as "path" and a summary "text").

A text upload on a saved base: characters the base lacks are added to its vocabulary; four spans
spread over it (~15%) are held out and their cross-entropy measured throughout, beside the copy rate of generated text
(aigc.eval.textcopy); the model kept is the one of the best held-out score, and training stops
when that has not improved for `patience` evaluations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aigc.limits import FINETUNE_MINUTES_MAX, FINETUNE_STEPS_MAX

FINETUNE_KINDS = ("vae", "dcgan", "char-lm")     # what an upload can train (a text VAE needs poem lines)
IMAGE_RESOLUTIONS = (28, 32, 64)


@dataclass
class FinetuneSpec:
    base: str                          # a saved model (name under weights/ or path) or a kind (from scratch)
    data: str | Path                   # a .zip of images, or a .txt / .jsonl text file
    out: str | Path                    # run folder: report.json, preview.png, the run, model/
    steps: int = 500
    max_minutes: float | None = None   # wall-clock budget beside the steps (None: steps only)
    resolution: int | None = None      # images: default the base's, else 32
    batch_size: int = 32               # lowered for tiny sets
    balance: bool = False              # repeat images of smaller classes
    device: str = "cpu"
    seed: int = 0
    tiny: bool = False                 # tiny preset when training from scratch (tests)
    overrides: dict = field(default_factory=dict)   # from scratch only: model config fields
    eval_every: int | None = None      # None: steps/20; 0: off
    progress: bool = True              # tqdm bar on stderr
    live: bool = False                 # frequent logs, samples and checkpoints (a job someone watches)
    resume: bool = False               # continue the run in `out` from its state.pt when it has one
    lr: float | None = None            # None: the objective's default (text fine-tunes: TEXT_FINETUNE_LR)
    patience: int | None = None        # text: evaluations without a better held-out score before stopping
    # a saved char-lm on a text (None: the TEXT_FINETUNE_* defaults above); see recipe()
    dropout: float | None = None       # dropout while fine-tuning only (the saved config keeps the base's)
    train_layers: str | None = None    # all | no-embeddings | top-N (the top N blocks and the final norm)
    rehearsal: float | None = None     # share of each batch from the base's own training corpus (0: off)
    rehearsal_like: int | None = None  # rehearse only its paragraphs most like the upload, this many characters (0: all)


@dataclass
class Base:
    """What a fine-tune starts from: a saved model (path and config) or a kind (path None)."""
    name: str
    kind: str
    path: Path | None = None
    config: dict | None = None

    @property
    def modality(self) -> str:
        from aigc.kinds import get_kind
        return get_kind(self.kind).modality


def resolve_base(base: str) -> Base:
    """A kind or a saved model -> Base; ValueError when it cannot be fine-tuned."""
    from aigc.kinds import KINDS
    if not isinstance(base, str) or not base:
        raise ValueError("choose a base model (or a kind to train from scratch)")
    if base in KINDS:
        b = Base(name=base, kind=base)
    else:
        from aigc.checkpoint import read_config
        from aigc.hub import model_name, resolve_model_path
        path = resolve_model_path(base)
        cfg = read_config(path)
        b = Base(name=model_name(path), kind=cfg["kind"], path=path, config=cfg)
    if b.kind not in FINETUNE_KINDS:
        raise ValueError(f"{base} is a {b.kind}: fine-tuning supports {', '.join(FINETUNE_KINDS)}")
    return b


def check_modality(base: Base, upload: str) -> None:
    """The upload ("images" or "text", aigc.data.uploads.upload_kind) suits the base's modality."""
    if (upload == "text") != (base.modality == "text"):
        want = "a .txt or .jsonl text file" if base.modality == "text" else "a .zip of images"
        raise ValueError(f"{base.name} is a {base.kind} ({base.modality} model): the data must be {want}")


def image_fit_problem(base: Base, data) -> str | None:
    """Why prepared images cannot fine-tune a saved image model (None: they fit, or from scratch)."""
    if base.path is None:
        return None
    cfg = (base.config or {}).get("config", {})
    shape = (cfg.get("channels"), cfg.get("resolution"), cfg.get("resolution"))
    if tuple(shape) != tuple(data.shape):
        return (f"{base.name} makes {shape[0]}x{shape[1]}x{shape[2]} images (C x H x W); this data prepares to "
                f"{data.shape[0]}x{data.shape[1]}x{data.shape[2]}: train from scratch instead "
                f"(aigc finetune {base.kind} --data ... --resolution {data.shape[1]})")
    n_cls = int(cfg.get("num_classes", 0) or 0)
    if n_cls and data.num_classes != n_cls:
        return (f"{base.name} is class-conditional with {n_cls} classes; this data has "
                f"{data.num_classes or 'no'} class folders: train from scratch instead "
                f"(aigc finetune {base.kind} --data ...)")
    return None


def image_resolution(base: Base, resolution: int | None = None) -> int:
    if resolution is not None and resolution not in IMAGE_RESOLUTIONS:
        raise ValueError(f"resolution must be one of {', '.join(map(str, IMAGE_RESOLUTIONS))}")
    return resolution or ((base.config or {}).get("config", {}).get("resolution")) or 32


def text_block_size(base: Base, tiny: bool = False, overrides: dict | None = None) -> int:
    from aigc.kinds import make_config
    cfg = (base.config or {}).get("config", {})
    if base.path is not None and cfg.get("block_size"):
        return int(cfg["block_size"])
    return make_config(base.kind, tiny=tiny, **(overrides or {})).block_size


def base_tokenizer(base: Base):
    """A saved text base's tokenizer (None for a kind trained from scratch: the upload makes its own)."""
    if base.path is None:
        return None
    from aigc.checkpoint import from_pretrained
    tok = from_pretrained(base.path).tokenizer
    if tok is None:
        raise ValueError(f"{base.name} has no tokenizer.json; cannot encode text for it")
    return tok


def check_spec(spec: FinetuneSpec) -> None:
    """Bounds of a spec, before anything is read or written."""
    from aigc.limits import check_int, check_number
    out = Path(spec.out)
    if not spec.resume and ((out / "state.pt").exists() or (out / "model" / "config.json").exists()):
        raise ValueError(f"{out} already holds a run; choose a new output folder")
    check_int(spec.steps, 1, FINETUNE_STEPS_MAX, "steps")
    if isinstance(spec.batch_size, bool) or not isinstance(spec.batch_size, int) or spec.batch_size < 1:
        raise ValueError("the batch size must be at least 1")
    if spec.max_minutes is not None:
        m = check_number(spec.max_minutes, "the time limit")
        if not 0 < m <= FINETUNE_MINUTES_MAX:
            raise ValueError(f"the time limit must be more than 0 and at most {FINETUNE_MINUTES_MAX:,} minutes")
    if spec.lr is not None:
        if not 0 < check_number(spec.lr, "the learning rate") <= 1:
            raise ValueError("the learning rate must be more than 0 and at most 1")
    if spec.patience is not None:
        check_int(spec.patience, 0, FINETUNE_STEPS_MAX, "patience")
    if spec.dropout is not None:
        if not 0 <= check_number(spec.dropout, "dropout") < 1:
            raise ValueError("dropout must be at least 0 and below 1")
    if spec.rehearsal is not None:
        if not 0 <= check_number(spec.rehearsal, "the rehearsal share") < 1:
            raise ValueError("the rehearsal share must be at least 0 and below 1")
    if spec.rehearsal_like is not None:
        check_int(spec.rehearsal_like, 0, 10 ** 9, "the characters of rehearsal kept")
    if spec.train_layers is not None:
        from aigc.finetune.textrecipe import layers_to_freeze
        layers_to_freeze(spec.train_layers, 10 ** 6)      # the form; the depth is checked against the base
    if not Path(spec.data).is_file():
        raise ValueError(f"{Path(spec.data).name}: no such data file")


def _prepare_images(spec: FinetuneSpec, base: Base, out: Path, emit):
    from aigc.data.uploads import format_report, prepare_image_zip, write_report
    prep = prepare_image_zip(spec.data, resolution=image_resolution(base, spec.resolution), balance=spec.balance)
    data = prep.data
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, prep.report, prep.preview)
    emit("report", text=format_report(prep.report), report=prep.report)
    problem = image_fit_problem(base, data)
    if problem:
        raise ValueError(problem)
    if base.path is not None and data.labels is not None and not (base.config or {}).get("config", {}).get("num_classes"):
        data.labels, data.class_names = None, []    # an unconditional base ignores folders
    return data, None, None, {}


def _prepare_text(spec: FinetuneSpec, base: Base, out: Path, emit):
    from aigc.data.text import TextData
    from aigc.finetune.textrecipe import heldout_split, recipe_line, text_recipe, with_rehearsal
    from aigc.data.uploads import format_report, prepare_text, write_report
    tok = base_tokenizer(base)
    block = text_block_size(base, tiny=spec.tiny, overrides=spec.overrides)
    prep = prepare_text(spec.data, block_size=block, tokenizer=tok)
    report = prep.report
    if tok is None:
        from aigc.text.tokenizer import CharTokenizer
        tok = CharTokenizer.from_text(prep.text)
        report["tokenizer"] = f"new, {tok.vocab_size} symbols from the upload"
    else:
        added = prep.tokenizer.vocab_size - tok.vocab_size
        report["tokenizer"] = f"{base.name}'s, {tok.vocab_size} symbols" + (
            f" + {added} added from the upload = {prep.tokenizer.vocab_size}" if added else "")
        tok = prep.tokenizer
    train_text, held_text, note = heldout_split(prep.text, block)
    report["heldout_chars"], report["heldout_note"] = len(held_text), note
    name = Path(spec.data).name
    data = TextData(name=f"upload:{Path(spec.data).stem}", text=train_text, tokenizer=tok, block_size=block,
                    info={"upload": name, "heldout_chars": len(held_text)})
    heldout = None
    if held_text:
        heldout = TextData(name=data.name, text=held_text, tokenizer=tok, block_size=block, split="heldout")
    recipe = text_recipe(spec, base, len(prep.text))
    data, what = with_rehearsal(data, base, recipe, report)
    report["recipe"] = {**recipe, "line": recipe_line(recipe, what)}
    out.mkdir(parents=True, exist_ok=True)
    write_report(out, report)
    emit("report", text=format_report(report), report=report)   # the job's details show the same lines
    return data, heldout, _copy_tracker(train_text, emit) if held_text else None, recipe


def _copy_tracker(text: str, emit):
    """The text copy rate as an extra evaluation, with a warning line each time it climbs past COPY_WARN."""
    from aigc.eval.textcopy import COPY_WARN, TextCopyMeter
    meter, above = TextCopyMeter(text), [False]

    def measure(model) -> dict:
        res = meter(model)
        if res["text_copy_rate"] > COPY_WARN and not above[0]:
            emit("note", text=f"warning: {res['text_copy_rate']:.0%} of generated 12-character spans are copied "
                              f"from the upload (above {COPY_WARN:.0%}): the model is memorising it")
        above[0] = res["text_copy_rate"] > COPY_WARN
        return {**res, "text_copy_protocol": meter.protocol()}
    return measure


def _train_options(spec: FinetuneSpec, base: Base, data, heldout, upload: str, batch: int, recipe: dict):
    from aigc.train.loop import TrainOptions
    steps = spec.steps
    text_ft = upload == "text" and heldout is not None    # held-out score decides what is kept
    lr = recipe["lr"] if text_ft else spec.lr           # the recipe's lr is the spec's when one is given
    # quality over time: KID (random-conv features) and copy rate against the upload, or held-out
    # cross-entropy; images skip a due evaluation while evaluating has cost over 10% of training time,
    # text never does: its evaluations choose the weights kept (and cost seconds: a held-out slice)
    eval_every = max(1, steps // 20) if spec.eval_every is None else max(0, spec.eval_every)
    if text_ft and base.path is not None:
        eval_every = max(0, min(recipe["eval_every"], steps))
    if upload == "text" and heldout is None:
        eval_every = 0
    if spec.live:      # a watched job: a loss curve, previews and resumable checkpoints as it goes
        cadence = dict(log_every=max(1, min(50, steps // 20)), sample_every=max(1, steps // 10),
                       ckpt_every=max(1, steps // 10))
    else:
        cadence = dict(log_every=min(50, steps), sample_every=max(steps, 1), ckpt_every=max(steps, 1000))
    adapt = {}
    if upload == "text" and base.path is not None:
        from aigc.finetune.textrecipe import layers_to_freeze
        n_layer = int((base.config or {}).get("config", {}).get("n_layer") or 1)
        adapt = dict(dropout=recipe["dropout"], freeze=layers_to_freeze(recipe["train_layers"], n_layer))
    return TrainOptions(model=base.kind, data=data.name, out=str(spec.out), max_steps=steps, batch_size=batch,
                        max_minutes=spec.max_minutes, device=spec.device, seed=spec.seed,
                        tiny=spec.tiny and base.path is None, config=dict(spec.overrides or {}),
                        init_from=None if base.path is None else str(base.path), progress=spec.progress,
                        diffaug=True, eval_every=eval_every, lr=lr, keep_best=text_ft and bool(eval_every),
                        patience=recipe.get("patience", 0) if text_ft and eval_every else 0,
                        eval_metric="kid_randconv,copy_rate" if upload == "images" else "nats_per_char",
                        eval_n=256 if upload == "images" else 64, eval_budget=0.0 if text_ft else 0.1,
                        eval_at_start=True, **adapt, **cadence)


def finetune(spec: FinetuneSpec, on_progress: Callable[[dict], None] | None = None) -> Path:
    """Prepare `spec.data` (checked), fine-tune `spec.base` on it (or train a kind from scratch),
    write the card; returns the model folder (<out>/model)."""
    from aigc.data.uploads import upload_kind
    from aigc.train.loop import TrainOptions, train

    def emit(phase: str, **kw) -> None:
        if on_progress is not None:
            on_progress({"phase": phase, **kw})

    check_spec(spec)
    out = Path(spec.out)
    upload = upload_kind(spec.data)
    base = resolve_base(str(spec.base))
    if spec.overrides and base.path is not None:
        raise ValueError("config overrides change a new model's config; a fine-tuned model keeps its base's")
    check_modality(base, upload)
    prepare = _prepare_images if upload == "images" else _prepare_text
    data, heldout, extra, recipe = prepare(spec, base, out, emit)
    batch = min(spec.batch_size, len(data))
    if batch < spec.batch_size:
        emit("note", text=f"note: batch size lowered to {batch} (the data holds {len(data)} examples)")
    opts = _train_options(spec, base, data, heldout, upload, batch, recipe)
    emit("running", total=spec.steps)
    if spec.resume and (out / "state.pt").is_file():
        again = TrainOptions(max_steps=spec.steps, epochs=None, max_minutes=None, progress=spec.progress,
                             device=spec.device)
        path = train(again, data=data, resume=str(out), heldout=heldout, extra_eval=extra)
    else:
        path = train(opts, data=data, heldout=heldout, extra_eval=extra)
    if upload == "images":                 # kept beside the model for the nearest-image check
        from aigc.eval.nearest import save_training_images
        save_training_images(path, data)
    from aigc.checkpoint import read_config
    from aigc.finetune.cards import write_finetune_card
    write_finetune_card(path, base=base.name if base.path is not None else None, kind=base.kind,
                        upload=Path(spec.data).name, steps=spec.steps, max_minutes=spec.max_minutes,
                        overrides=dict(spec.overrides or {}), recipe=_report_recipe(out))
    kept = int(read_config(path).get("train", {}).get("steps") or 0)
    emit("done", path=str(path), steps=kept, text=done_line(base, spec, out, path, kept))
    return path


def _report_recipe(out: Path) -> str | None:
    """The recipe line the preparation report recorded (text fine-tunes), for the card."""
    import json
    try:
        return json.loads((out / "report.json").read_text(encoding="utf-8"))["recipe"]["line"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def done_line(base: Base, spec: FinetuneSpec, out: Path, path: Path, kept: int) -> str:
    """The one-line summary: steps run, why it stopped, which step's weights were kept."""
    import json
    try:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    ran = int(summary.get("steps") or kept)
    how = f"fine-tuned {base.name}" if base.path is not None else f"trained a new {base.kind}"
    why = ""
    if summary.get("stopped_early"):
        why = " (stopped early: the held-out score stopped improving)"
    elif ran < spec.steps and spec.max_minutes:
        why = f" (stopped by the {spec.max_minutes:g}-minute limit)"
    best = summary.get("best")
    keep = ""
    if isinstance(best, dict):
        keep = (f"; kept the weights of step {best['step']} (best held-out {best['metric']} {best['value']:.3f})"
                if best["step"] != ran else f"; the last step had the best held-out {best['metric']}")
    return f"{how} for {ran} steps{why}{keep}; saved model to {path}"
