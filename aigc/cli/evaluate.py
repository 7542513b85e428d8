"""`aigc eval`: metrics of a saved model, of an .npz of samples, or of text (aigc.cli.text)."""
from __future__ import annotations

import json
from pathlib import Path

from aigc.cli.common import UsageError


def register(sub) -> None:
    s = sub.add_parser("eval", help="evaluate a saved model (prints metrics)")
    s.add_argument("name", help="a model under weights/, a path to a saved model, or an .npz of samples")
    s.add_argument("--metrics", default="fid,kid", help="comma-separated: fid, kid, domain_fd, label_acc, nll, cluster_acc, nmi (vade)")
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


def _eval_npz(args, metrics: list[str]) -> dict:
    import numpy as np

    from aigc.eval import evaluate_samples
    if not args.data:
        raise UsageError("evaluating an .npz of samples needs --data DATASET")
    with np.load(args.name, allow_pickle=False) as f:
        if "images" not in f:
            raise UsageError(f"{args.name} has no 'images' array")
        images = f["images"]
    return evaluate_samples(images, args.data, metrics=metrics, device=args.device)


def _eval_model(args, metrics: list[str]) -> dict:
    from aigc.checkpoint import from_pretrained
    from aigc.eval import evaluate
    from aigc.hub import record_metrics, resolve_model_path
    path = resolve_model_path(args.name)
    model = from_pretrained(path, device=args.device)
    dataset = args.data or model.meta.get("dataset")
    res = evaluate(model, dataset, metrics=metrics, n=args.n, device=args.device, seed=args.seed,
                   batch_size=args.batch_size)
    res["model"] = path.name if path.name != "model" else path.parent.name
    if args.save:
        record_metrics(path, res)
    return res


def cmd_eval(args) -> int:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not args.text_file and not args.heldout and not args.name.endswith(".npz"):
        from aigc.checkpoint import read_config
        from aigc.hub import resolve_model_path
        if read_config(resolve_model_path(args.name)).get("kind") == "text-vae":
            from aigc.cli.text import eval_textvae as cli_eval   # the sentence VAE's diagnostics
            return cli_eval(resolve_model_path(args.name), args)
    if args.text_file:
        from aigc.cli.text import eval_text
        return eval_text(args)
    if args.heldout:
        from aigc.cli.text import eval_heldout
        return eval_heldout(args)
    if args.name.endswith(".npz") and Path(args.name).is_file():
        res = _eval_npz(args, metrics)
    else:
        res = _eval_model(args, metrics)
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return 0
