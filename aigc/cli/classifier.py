"""`aigc classifier DATASET`: train the evaluation classifier of a dataset (domain metrics)."""
from __future__ import annotations

import json
import sys


def register(sub) -> None:
    s = sub.add_parser("classifier", help="train the evaluation classifier of a dataset (mnist, fashion-mnist)")
    s.add_argument("dataset", help="mnist or fashion-mnist")
    s.add_argument("--epochs", type=int, default=None, help="passes over the training set (default: the library's, 4)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--shift", type=int, default=0, help="random translation in pixels (0: none)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", default=None, help="output folder (default data/eval/classifier-<dataset>)")
    s.add_argument("--threads", type=int, default=None,
                   help="CPU threads; 1 is several times faster than 2 on a machine whose cores are busy")
    s.set_defaults(func=cmd_classifier)


def cmd_classifier(args) -> int:
    import torch

    from aigc.eval.classifier import train_classifier
    if args.threads:
        torch.set_num_threads(args.threads)
    kw = {} if args.epochs is None else {"epochs": args.epochs}
    meta = train_classifier(args.dataset, device=args.device, out_dir=args.out, seed=args.seed, shift=args.shift,
                            log=lambda m: print(m, file=sys.stderr, flush=True), **kw)
    print(json.dumps({"dataset": meta["dataset"], "test_accuracy": meta["test_accuracy"]}))
    return 0
