"""`aigc train`: train a model from scratch or resume a run (CPU, one GPU, or many through torchrun)."""
from __future__ import annotations

from pathlib import Path

from aigc.cli.common import UsageError, parse_set


def register(sub) -> None:
    s = sub.add_parser("train", help="train a model (CPU, one GPU, or many through torchrun)")
    s.add_argument("--model", help="model kind: vae, vade, dcgan, seed-gan, char-lm, text-vae")
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
    _register_objective_flags(s)
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--resume", default=None, metavar="RUN", help="continue the run in this folder")
    s.set_defaults(func=cmd_train)


def _register_objective_flags(s) -> None:
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
    s.add_argument("--pretrain-steps", type=int, default=None,
                   help="vade: autoencoder steps before the GMM fit (default: 15/65 of the run, at most 10,000)")
    s.add_argument("--prior-init", default="gmm", choices=["gmm", "spectral"],
                   help="vade: the mixture's start: gmm (EM on the codes, the paper's) or spectral (the groups "
                        "of the codes' nearest-neighbour graph, one component each)")
    s.add_argument("--pretrain-augment", type=float, default=0.0,
                   help="vade: pretrain on pictures rotated by up to 10 degrees and shifted by up to 10%% of "
                        "their side, times this (0: off; 1: DEC-DA's)")
    s.add_argument("--prior-lr-scale", type=float, default=1.0,
                   help="vade: the ELBO's rate for the mixture (weights, means, variances) times this; 0 keeps "
                        "the mixture as initialised while the networks fit it (default 1)")
    s.add_argument("--prior-guide-epochs", type=float, default=0.0,
                   help="vade, with --prior-init spectral: at the switch, ELBO passes over the grouped images "
                        "with each image's cluster fixed to its spectral group, then the mixture refitted "
                        "(default 0: none)")
    s.add_argument("--gmm-images", type=int, default=None,
                   help="vade: training images the GMM is fitted to (default 10,000; 0: keep the prior as it is)")


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
        eval_every=args.eval_every, eval_metric=args.eval_metric, eval_n=args.eval_n, target=args.target,
        stop_at_target=args.stop_at_target, tiny=args.tiny, config=parse_set(args.set), init_from=args.init_from,
        diffaug=not args.no_diffaug, diffaug_policy=args.diffaug_policy, lr_d=args.lr_d,
        gan_loss=args.gan_loss, r1=args.r1, r1_every=args.r1_every, adam_beta1=args.adam_beta1,
        instance_noise=args.instance_noise, iwae_k=args.iwae_k, pretrain_steps=args.pretrain_steps,
        gmm_images=args.gmm_images, prior_init=args.prior_init, pretrain_augment=args.pretrain_augment,
        prior_lr_scale=args.prior_lr_scale, prior_guide_epochs=args.prior_guide_epochs,
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
