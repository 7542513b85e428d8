"""The command line: `python -m aigc {list,sample,train,finetune,eval} ...` (each with --help).

Thin by design: parse flags, call the library, print. Bad input exits with status 2 and one line
on stderr; success exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def _parse_set(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


# -- list ----------------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from aigc.hub import list_models
    rows = list_models([Path(d) for d in args.dirs])
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no saved models found")
        return 0
    print(f"{'name':22} {'kind':9} {'modality':8} {'dataset':14} metrics")
    for r in rows:
        m = ", ".join(f"{k}={v:.4g}" for k, v in r["metrics"].items() if isinstance(v, (int, float)))
        print(f"{r['name']:22} {r['kind']:9} {r['modality']:8} {str(r['dataset']):14} {m}")
    return 0


# -- sample --------------------------------------------------------------------------------------
def cmd_sample(args) -> int:
    import numpy as np
    from aigc.hub import resolve_model_path
    from aigc.pipelines.image import ImagePipeline
    from aigc.checkpoint import read_config
    if args.out is not None and Path(args.out).suffix.lower() not in (".png", ".npz", ".txt", ".json"):
        raise UsageError("--out must end in .png (a grid) or .npz (raw uint8 samples)")
    path = resolve_model_path(args.name)
    if read_config(path).get("modality", "image") != "image":
        from aigc.cli.text import sample_text
        return sample_text(path, args)
    if args.out is None:
        raise UsageError("--out FILE.png or FILE.npz is required for image models")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npz"):
        raise UsageError("--out must end in .png (a grid) or .npz (raw uint8 samples)")
    pipe = ImagePipeline.from_pretrained(path, device=args.device)
    temp = 1.0 if args.temperature is None else args.temperature
    s = pipe(n=args.n, seed=args.seed, label=args.label, temperature=temp)
    from aigc.checkpoint import atomic_path
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".npz":
            arrays = {"images": s.images}
            if s.labels is not None:
                arrays["labels"] = s.labels
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)
        else:
            s.grid(nrow=args.nrow).save(tmp, format="PNG")
    print(f"wrote {len(s.images)} samples of {pipe.name} (seed {args.seed}) to {out}")
    return 0


# -- train ---------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from aigc.train.loop import TrainOptions, train
    if args.resume is None and (args.model is None or args.data is None or args.out is None):
        raise UsageError("train needs --model, --data and --out (or --resume RUN)")
    opts = TrainOptions(
        model=args.model or "", data=args.data or "", out=args.out or (args.resume or ""),
        epochs=args.epochs, max_steps=args.max_steps, max_minutes=args.max_minutes,
        batch_size=args.batch_size, lr=args.lr, warmup=args.warmup, device=args.device, precision=args.precision,
        compile=args.compile, channels_last=args.channels_last, seed=args.seed,
        log_every=args.log_every, sample_every=args.sample_every, ckpt_every=args.ckpt_every,
        eval_every=args.eval_every, eval_metric=args.eval_metric, eval_n=args.eval_n, target=args.target, stop_at_target=args.stop_at_target,
        tiny=args.tiny, config=_parse_set(args.set), init_from=args.init_from,
        diffaug=not args.no_diffaug, diffaug_policy=args.diffaug_policy, lr_d=args.lr_d,
        gan_loss=args.gan_loss, r1=args.r1, r1_every=args.r1_every, adam_beta1=args.adam_beta1,
        instance_noise=args.instance_noise, iwae_k=args.iwae_k,
        **({} if args.mode_seeking is None else {"mode_seeking": args.mode_seeking}),
        progress=not args.no_progress)
    if args.resume is not None:
        if not (Path(args.resume) / "state.pt").is_file():
            raise UsageError(f"--resume {args.resume}: no state.pt there (not a run folder)")
        if args.epochs is None and args.max_steps is None:
            opts.epochs = opts.max_steps = None
    path = train(opts, resume=args.resume)
    print(f"saved model to {path}")
    return 0


# -- eval ----------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    from aigc.eval import evaluate, evaluate_samples
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not args.text_file and not args.heldout and not args.name.endswith(".npz"):
        from aigc.checkpoint import read_config
        from aigc.hub import resolve_model_path
        if read_config(resolve_model_path(args.name)).get("kind") == "text-vae":
            from aigc.pipelines.textvae import cli_eval       # the sentence VAE's diagnostics
            return cli_eval(resolve_model_path(args.name), args)
    if args.text_file:
        from aigc.cli.text import eval_text
        return eval_text(args)
    if args.heldout:
        from aigc.cli.text import eval_heldout
        return eval_heldout(args)
    if args.name.endswith(".npz") and Path(args.name).is_file():
        import numpy as np
        if not args.data:
            raise UsageError("evaluating an .npz of samples needs --data DATASET")
        with np.load(args.name, allow_pickle=False) as f:
            if "images" not in f:
                raise UsageError(f"{args.name} has no 'images' array")
            images = f["images"]
        res = evaluate_samples(images, args.data, metrics=metrics, device=args.device)
    else:
        from aigc.checkpoint import from_pretrained
        from aigc.hub import resolve_model_path
        path = resolve_model_path(args.name)
        model = from_pretrained(path, device=args.device)
        dataset = args.data or model.meta.get("dataset")
        res = evaluate(model, dataset, metrics=metrics, n=args.n, device=args.device, seed=args.seed,
                       batch_size=args.batch_size)
        res["model"] = path.name if path.name != "model" else path.parent.name
        if args.save:
            from aigc.hub import record_metrics
            record_metrics(path, res)
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return 0


# -- finetune ------------------------------------------------------------------------------------
FINETUNE_KINDS = ("vae", "dcgan", "char-lm")     # what an upload can train (a text VAE needs poem lines)


def cmd_finetune(args) -> int:
    """Prepare an uploaded dataset (checked), report on it, then fine-tune or train from scratch."""
    from aigc.checkpoint import from_pretrained, read_config
    from aigc.data.uploads import (format_report, prepare_image_zip, prepare_text, split_heldout, upload_kind,
                               write_report)
    from aigc.kinds import KINDS, get_kind, make_config
    from aigc.train.loop import TrainOptions, train
    out = Path(args.out)
    if (out / "state.pt").exists() or (out / "model" / "config.json").exists():
        raise UsageError(f"{out} already holds a run; choose a new --out")
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise UsageError("--max-minutes must be positive")
    overrides = _parse_set(args.set)
    data_path = Path(args.data)
    if not data_path.is_file():
        raise UsageError(f"--data {args.data}: no such file")
    upload = upload_kind(data_path)
    if args.base in KINDS:                      # a kind: train from scratch
        kind, base_path, base_cfg = args.base, None, None
    else:
        from aigc.hub import resolve_model_path
        base_path = resolve_model_path(args.base)
        base_cfg = read_config(base_path)
        kind = base_cfg["kind"]
        if overrides:
            raise UsageError("--set changes a new model's config; a fine-tuned model keeps its base's")
    if kind not in FINETUNE_KINDS:
        raise UsageError(f"{args.base} is a {kind}: fine-tuning supports {', '.join(FINETUNE_KINDS)}")
    modality = get_kind(kind).modality
    if (upload == "text") != (modality == "text"):
        want = "a .txt or .jsonl text file" if modality == "text" else "a .zip of images"
        raise UsageError(f"{args.base} is a {kind} ({modality} model): --data must be {want}")
    base_name = args.base if base_path is None else (base_path.name if base_path.name != "model" else base_path.parent.name)
    heldout = None

    if upload == "images":
        cfg = (base_cfg or {}).get("config", {})
        resolution = args.resolution or cfg.get("resolution") or 32
        prep = prepare_image_zip(data_path, resolution=resolution, balance=args.balance)
        data, report = prep.data, prep.report
        out.mkdir(parents=True, exist_ok=True)
        write_report(out, report, prep.preview)
        print(format_report(report))
        if base_path is not None:
            base_shape = (cfg.get("channels"), cfg.get("resolution"), cfg.get("resolution"))
            if tuple(base_shape) != tuple(data.shape):
                raise UsageError(f"{base_name} makes {base_shape[0]}x{base_shape[1]}x{base_shape[2]} images "
                                 f"(C x H x W); this data prepares to {data.shape[0]}x{data.shape[1]}x{data.shape[2]}: "
                                 f"train from scratch instead (python -m aigc finetune {kind} --data ... "
                                 f"--resolution {data.shape[1]})")
            n_cls = int(cfg.get("num_classes", 0) or 0)
            if n_cls:
                if data.num_classes != n_cls:
                    raise UsageError(f"{base_name} is class-conditional with {n_cls} classes; this data has "
                                     f"{data.num_classes or 'no'} class folders: train from scratch instead "
                                     f"(python -m aigc finetune {kind} --data ...)")
            elif data.labels is not None:
                data.labels, data.class_names = None, []    # an unconditional base ignores folders
    else:
        if base_path is not None:
            base = from_pretrained(base_path)
            tok, block = base.tokenizer, base.config.block_size
            if tok is None:
                raise UsageError(f"{base_name} has no tokenizer.json; cannot encode text for it")
        else:
            tok, block = None, make_config(kind, tiny=args.tiny, **overrides).block_size
        prep = prepare_text(data_path, block_size=block, tokenizer=tok)
        report = prep.report
        if tok is None:
            from aigc.text.tokenizer import CharTokenizer
            tok = CharTokenizer.from_text(prep.text)
            report["tokenizer"] = f"new, {tok.vocab_size} symbols from the upload"
        else:
            report["tokenizer"] = f"{base_name}'s, {tok.vocab_size} symbols"
        from aigc.data.text import TextData
        train_text, held_text, note = split_heldout(prep.text, block)
        report["heldout_chars"], report["heldout_note"] = len(held_text), note
        data = TextData(name=f"upload:{data_path.stem}", text=train_text, tokenizer=tok, block_size=block,
                        info={"upload": data_path.name, "heldout_chars": len(held_text)})
        if held_text:
            heldout = TextData(name=data.name, text=held_text, tokenizer=tok, block_size=block, split="heldout")
        out.mkdir(parents=True, exist_ok=True)
        write_report(out, report)
        print(format_report(report))
        print(f"  tokenizer: {report['tokenizer']}")
        print(f"  {note}")
    batch = min(args.batch_size, len(data))
    if batch < args.batch_size:
        print(f"note: batch size lowered to {batch} (the data holds {len(data)} examples)")
    # quality over time: KID (random-conv features) and copy rate against the upload, or held-out
    # cross-entropy; a due evaluation is skipped while evaluating has cost over 10% of training time
    eval_every = max(1, args.steps // 20) if args.eval_every is None else max(0, args.eval_every)
    if upload == "text" and heldout is None:
        eval_every = 0
    opts = TrainOptions(model=kind, data=data.name, out=str(out), max_steps=args.steps, batch_size=batch,
                        max_minutes=args.max_minutes,
                        device=args.device, seed=args.seed, tiny=args.tiny and base_path is None, config=overrides,
                        init_from=None if base_path is None else str(base_path),
                        log_every=min(50, args.steps), sample_every=max(args.steps, 1),
                        ckpt_every=max(args.steps, 1000), progress=not args.no_progress,
                        diffaug=True, eval_every=eval_every,
                        eval_metric="kid_randconv,copy_rate" if upload == "images" else "nats_per_char",
                        eval_n=256 if upload == "images" else 64, eval_budget=0.1, eval_at_start=True)
    path = train(opts, data=data, heldout=heldout)
    how = f"fine-tuned {base_name}" if base_path is not None else f"trained a new {kind}"
    if upload == "images":                 # kept beside the model for the nearest-image check
        from aigc.eval.nearest import save_training_images
        save_training_images(path, data)
    from aigc.finetune.cards import write_finetune_card
    write_finetune_card(path, base=base_name if base_path is not None else None, kind=kind,
                        upload=data_path.name, steps=args.steps, max_minutes=args.max_minutes,
                        overrides=overrides)
    done = int(read_config(path).get("train", {}).get("steps") or args.steps)
    print(f"{how} for {done} steps" + (f" (stopped by the {args.max_minutes:g}-minute limit)" if done < args.steps else "")
          + f"; saved model to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m aigc", description="aigc: train, sample and evaluate generative models.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list saved models (weights/ and any folders given)")
    s.add_argument("dirs", nargs="*", help="extra folders to scan for saved models")
    s.add_argument("--json", action="store_true", help="print a JSON list of objects")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("sample", help="draw samples from a saved model")
    s.add_argument("name", help="a model folder name under weights/, or a path to a saved model")
    s.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    s.add_argument("--seed", type=int, default=0, help="random seed: same seed, same samples (default 0)")
    s.add_argument("--label", default=None, help="class index or name for class-conditional models")
    s.add_argument("--temperature", type=float, default=None,
                   help="images: latent scale (truncation / prior temperature, default 1); text: sampling temperature (0 = greedy)")
    s.add_argument("--out", default=None, help="FILE.png writes a grid, FILE.npz raw uint8 samples (images, labels)")
    s.add_argument("--nrow", type=int, default=None, help="images per grid row (default: square)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    s.add_argument("--prompt", default="", help="text models: the text to continue")
    s.add_argument("--max-new", type=int, default=300, help="text models: characters to generate (default 300)")
    s.add_argument("--top-k", type=int, default=None, help="text models: keep the k most likely characters")
    s.add_argument("--top-p", type=float, default=None, help="text models: nucleus sampling mass in (0, 1]")
    s.add_argument("--json", action="store_true", help="text models: print a JSON list of strings")
    s.add_argument("--form", default=None, help="Tang poem models: 五言绝句, 七言绝句, 五言律诗 or 七言律诗 (keeps the form's lines)")
    s.add_argument("--title", default="", help="Tang poem models with --form: the poem's title (default: the model writes one)")
    s.add_argument("--first-line", default="", help="Tang poem models with --form: the first line (or clause) of the poem")
    s.add_argument("--interpolate", nargs=2, metavar=("LINE_A", "LINE_B"), default=None,
                   help="text VAE: decode every step of the latent path between two lines")
    s.add_argument("--steps", type=int, default=8, help="text VAE with --interpolate: steps including both ends (default 8)")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("train", help="train a model (CPU, one GPU, or many through torchrun)")
    s.add_argument("--model", help="model kind: vae, dcgan, seed-gan, char-lm")
    s.add_argument("--data", help="dataset: mnist, fashion-mnist, shakespeare")
    s.add_argument("--out", help="run folder to create (options.json, stats.jsonl, samples/, model/)")
    s.add_argument("--epochs", type=float, default=None, help="budget in passes over the data")
    s.add_argument("--max-steps", type=int, default=None, help="budget in optimiser steps")
    s.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget of the whole run (a resume continues its clock); saves and stops when spent")
    s.add_argument("--batch-size", type=int, default=128, help="global batch size (default 128)")
    s.add_argument("--lr", type=float, default=None, help="learning rate (default: the kind's own)")
    s.add_argument("--warmup", type=int, default=0, help="linear learning-rate warm-up steps (default 0)")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    s.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="autocast precision (default auto)")
    s.add_argument("--compile", action="store_true", help="torch.compile the networks (GPU)")
    s.add_argument("--channels-last", action="store_true", help="NHWC memory format (faster convs on GPU)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--log-every", type=int, default=50, help="steps between stats.jsonl lines")
    s.add_argument("--sample-every", type=int, default=500, help="steps between sample grids")
    s.add_argument("--ckpt-every", type=int, default=1000, help="steps between checkpoints")
    s.add_argument("--eval-every", type=int, default=0, help="steps between metric evaluations (0: never)")
    s.add_argument("--eval-metric", default="domain_fd", help="metric evaluated every --eval-every steps")
    s.add_argument("--eval-n", type=int, default=2000, help="samples for that metric")
    s.add_argument("--target", type=float, default=None, help="log the time at which the eval metric first reaches <= this")
    s.add_argument("--stop-at-target", action="store_true", help="stop training once --target is reached")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a model config field (repeatable)")
    s.add_argument("--tiny", action="store_true", help="tiny model preset (for tests)")
    s.add_argument("--init-from", default=None, help="start from a saved model's weights (fine-tuning)")
    s.add_argument("--no-diffaug", action="store_true", help="GANs: turn DiffAugment off")
    s.add_argument("--diffaug-policy", default="color,translation,cutout",
                   help="GANs: DiffAugment transforms, comma-separated from color, translation, cutout")
    s.add_argument("--lr-d", type=float, default=None, help="GANs: discriminator learning rate (default: --lr)")
    s.add_argument("--gan-loss", default="hinge", choices=["hinge", "ns"],
                   help="dcgan: hinge loss (default) or the non-saturating logistic loss")
    s.add_argument("--r1", type=float, default=0.0, help="dcgan: R1 gradient penalty weight on real images (default 0: off)")
    s.add_argument("--r1-every", type=int, default=4, help="dcgan: apply R1 every N steps, scaled by N (default 4)")
    s.add_argument("--instance-noise", type=float, default=0.0,
                   help="dcgan: std of Gaussian noise on D's inputs (images in [-1, 1]), decaying to 0 over the run (default 0)")
    s.add_argument("--mode-seeking", type=float, default=None,
                   help="dcgan: weight of the mode-seeking term (MSGAN) against one look per class "
                        "(default: TrainOptions.mode_seeking, 0.2; 0: off)")
    s.add_argument("--adam-beta1", type=float, default=None, help="GANs: Adam beta1 (default 0 for dcgan, 0.5 for seed-gan)")
    s.add_argument("--iwae-k", type=int, default=1,
                   help="vae: importance samples per image in the training bound (default 1: the ELBO; "
                        "k > 1: the IWAE bound, k decoder passes per image)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--resume", default=None, metavar="RUN", help="continue the run in this folder")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("finetune", help="fine-tune a saved model (or train a kind from scratch) on an uploaded dataset")
    s.add_argument("base", help="a saved model (name under weights/ or path) to fine-tune, or a kind to train from scratch: vae, dcgan, char-lm")
    s.add_argument("--data", required=True, help="a .zip of images (one folder per class), or a .txt / .jsonl text file")
    s.add_argument("--out", required=True, help="job folder: report.json, preview.png and the run (model/) go here")
    s.add_argument("--steps", type=int, default=500, help="optimiser steps (default 500)")
    s.add_argument("--max-minutes", type=float, default=None,
                   help="wall-clock budget: the learning-rate schedule follows whichever of steps and minutes is further along, and training stops when either is spent")
    s.add_argument("--resolution", type=int, default=None, choices=[28, 32, 64], help="image size (default: the base model's, else 32)")
    s.add_argument("--batch-size", type=int, default=32, help="batch size (default 32; lowered for tiny sets)")
    s.add_argument("--balance", action="store_true", help="repeat images of smaller classes so every class is equally frequent")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--tiny", action="store_true", help="tiny model preset when training from scratch (for tests)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="training from scratch: override a model config field, e.g. ngf=16 (repeatable)")
    s.add_argument("--eval-every", type=int, default=None,
                   help="steps between quality measurements (images: kid_randconv and copy_rate against the upload; "
                        "text: held-out nats/char); default steps/20, skipped while they cost over 10%% of training "
                        "time; 0: off")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("eval", help="evaluate a saved model (prints metrics)")
    s.add_argument("name", help="a model under weights/, a path to a saved model, or an .npz of samples")
    s.add_argument("--metrics", default="fid,kid", help="comma-separated: fid, kid, domain_fd, label_acc, nll")
    s.add_argument("--n", type=int, default=10000, help="samples (or test images for nll); default 10000")
    s.add_argument("--data", default=None, help="dataset to compare with (default: the model's own)")
    s.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    s.add_argument("--seed", type=int, default=0, help="seed for samples and binarisation (default 0)")
    s.add_argument("--batch-size", type=int, default=None, help="evaluation batch size")
    s.add_argument("--save", action="store_true", help="record the result in the model's metrics.json")
    s.add_argument("--text-file", default=None, help="text models: score this UTF-8 file (nats/bits per char)")
    s.add_argument("--heldout", action="store_true", help="text models: score the dataset's held-out text")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from aigc.checkpoint import CheckpointError
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, CheckpointError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
