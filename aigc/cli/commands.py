"""The command line: `aigc {list,sample,train,finetune,eval,cluster,directions,classifier,study} ...` (each with --help).

Thin by design: parse flags, call the library, print. Bad input exits with status 2 and one line
on stderr; success exits 0. Each subcommand lives in its own module with `register(sub)`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aigc.cli import classifier, cluster, directions, evaluate, finetune, sample, study, train
from aigc.cli.common import UsageError, parse_set

_parse_set = parse_set          # the name bench/train_throughput.py imports
__all__ = ["UsageError", "build_parser", "main", "parse_set"]


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


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (`error: ...`) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message.splitlines()[0] if message else 'bad arguments'}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="aigc", description="aigc: train, sample and evaluate generative models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    s = sub.add_parser("list", help="list saved models (weights/ and any folders given)")
    s.add_argument("dirs", nargs="*", help="extra folders to scan for saved models")
    s.add_argument("--json", action="store_true", help="print a JSON list of objects")
    s.set_defaults(func=cmd_list)
    for module in (sample, train, finetune, evaluate, cluster, directions, classifier, study):
        module.register(sub)
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
