"""`aigc finetune BASE --data FILE --out DIR`: a thin call of aigc.finetune.run.finetune."""
from __future__ import annotations

from aigc.cli.common import UsageError, parse_set


def register(sub) -> None:
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
                        "text: held-out nats/char and the text copy rate); default steps/20, 10 for a saved text model "
                        "(images: skipped while they cost over 10%% of training time); 0: off")
    s.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the model's; a saved char-lm on a short text (a \"small corpus\" in the report): the short-text recipe's, measured on stories)")
    s.add_argument("--patience", type=int, default=None,
                   help="text: stop after this many evaluations without a better held-out score (default 8; 0: never); "
                        "the weights of the best held-out score are the ones kept")
    s.add_argument("--dropout", type=float, default=None,
                   help="a saved char-lm on a text: dropout while fine-tuning only (default: the recipe's; the saved config keeps the base's)")
    s.add_argument("--train-layers", default=None,
                   help="a saved char-lm on a text: all, no-embeddings, or top-N (the top N blocks and the final norm; default: the recipe's)")
    s.add_argument("--rehearsal", type=float, default=None,
                   help="a saved char-lm on a text: share of each batch drawn from the base's own training corpus, when it is here (0: off; default: the recipe's)")
    s.add_argument("--rehearsal-like", type=int, default=None, metavar="CHARS",
                   help="a saved char-lm on a text: rehearse only the corpus paragraphs most like the upload, about this many characters (0: the whole corpus; default: the recipe's)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_finetune)


def _print_event(event: dict) -> None:
    if event.get("text"):
        print(event["text"], flush=True)


def cmd_finetune(args) -> int:
    """Prepare an uploaded dataset (checked), report on it, then fine-tune or train from scratch."""
    from aigc.finetune.run import FinetuneSpec, finetune
    # bounds are checked once, by aigc.finetune.run.check_spec (its ValueError is the CLI's one-line error)
    overrides = parse_set(args.set)
    if overrides and args.base not in _kinds():
        raise UsageError("--set changes a new model's config; a fine-tuned model keeps its base's")
    spec = FinetuneSpec(base=args.base, data=args.data, out=args.out, steps=args.steps, max_minutes=args.max_minutes,
                        resolution=args.resolution, batch_size=args.batch_size, balance=args.balance,
                        device=args.device, seed=args.seed, tiny=args.tiny, overrides=overrides,
                        eval_every=args.eval_every, progress=not args.no_progress, lr=args.lr,
                        patience=args.patience, dropout=args.dropout, train_layers=args.train_layers,
                        rehearsal=args.rehearsal, rehearsal_like=args.rehearsal_like)
    finetune(spec, on_progress=_print_event)
    return 0


def _kinds():
    from aigc.kinds import KINDS
    return KINDS
