"""`aigc study data-vs-compute` (train the grid, or print its results) and `aigc study upload` ("what
would more data buy?" for a person's own upload): thin calls of aigc.study."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from aigc.cli.common import UsageError, parse_set

CELL_FIELDS = ("task", "fraction", "augment", "steps_multiplier", "seed", "metric", "value")


def repo_relative(path) -> str:
    """A path as a person types it from the repository root (absolute when outside it)."""
    from aigc.hub import REPO_ROOT
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def run_commands() -> list[tuple[str, str]]:
    """(what it does, the command line) for the study's commands, as the Data tab shows them."""
    from aigc.hub import STUDY_DIR
    shipped = repo_relative(STUDY_DIR)
    return [("train the grid in the background (~2.5 thread-hours: aigc/study/README.md; the same command resumes it)",
             "nohup aigc study data-vs-compute --out runs/study --threads 2 > runs/study.log 2>&1 &"),
            ("or in parallel processes, one thread each, then gather them",
             "aigc study data-vs-compute --out runs/study-text --spec TEXT.json --threads 1 & ...; "
             "aigc study merge --out runs/study runs/study-text runs/study-img0 runs/study-img1 runs/study-img2"),
            ("print its results as JSON", "aigc study data-vs-compute --json --out runs/study"),
            ("ship them (the studio and `--json` without `--out` read this folder)", f"cp runs/study/study.json {shipped}/"),
            ("what more data would buy for your own upload",
             "aigc study upload --data FILE --base BASE --minutes 10 --json")]


def register(sub) -> None:
    s = sub.add_parser("study", help="the data-vs-compute study, or what more data would buy for an upload")
    studies = s.add_subparsers(dest="study", required=True)
    g = studies.add_parser("data-vs-compute", help="train the grid (resumable), or print its results with --json",
                           description="Trains every cell of the grid not yet in DIR/study.json, one line per cell "
                                       "(run it under nohup; rerun the same command to resume). With --json: print "
                                       "the results of DIR, or of the shipped study without --out.")
    g.add_argument("--out", default=None, help="study folder: study.json and one run folder per cell (cells/)")
    g.add_argument("--spec", default=None, metavar="FILE.json",
                   help="a JSON object laid over the default grid (fractions, seeds, images/text recipes, ...)")
    g.add_argument("--threads", type=int, default=None, help="torch threads while training (default: torch's)")
    g.add_argument("--json", action="store_true",
                   help="print the results as JSON ({\"cells\": [...], \"summary\", \"answers\", \"notes\"}); trains nothing")
    g.set_defaults(func=cmd_data_vs_compute)

    m = studies.add_parser("merge", help="gather study folders run in parallel (per task or seed) into one",
                           description="Writes OUT/study.json from the sources' study.json files; refused when two "
                                       "sources hold one task with different recipes or measure the same cell.")
    m.add_argument("--out", required=True, help="the folder that receives the merged study.json")
    m.add_argument("sources", nargs="+", help="study folders (each with a study.json)")
    m.set_defaults(func=cmd_merge)

    f = studies.add_parser("figures", help="draw a study's figures (one SVG per task) from its study.json",
                           description="Writes <task>-<metric>.svg for each task of a study (the training run "
                                       "writes them into its folder's figures/ itself). Default: the shipped study.")
    f.add_argument("--from", dest="source", default=None, metavar="STUDY",
                   help="a study.json or the folder holding it (default: the shipped study)")
    f.add_argument("--out", default=None, help="folder for the SVG files (default: figures/ beside the study.json)")
    f.set_defaults(func=cmd_figures)

    c = studies.add_parser("corners", help="measure Inception FID at the grid's corners on the cells' saved models",
                           description="Adds the corner metric (default: fid, on the spec's corner_eval_n samples) to "
                                       "STUDY/study.json for every corner that lacks it, reading each corner's model from "
                                       "MODELS/cells/<cell>/model; resumable, one line per corner.")
    c.add_argument("--study", required=True, help="the study folder (its study.json is updated)")
    c.add_argument("--models", nargs="+", required=True, help="folders whose cells/ hold the trained corner models")
    c.add_argument("--metrics", default=None, help="comma list of registered metrics (default: the spec's, else fid)")
    c.add_argument("--n", type=int, default=None, help="samples per corner (default: the spec's corner_eval_n)")
    c.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    c.set_defaults(func=cmd_corners)

    u = studies.add_parser("upload", help="train short runs on 25%%, 50%%, 100%% of an upload and say whether more "
                                          "data or more steps would help more")
    u.add_argument("--data", required=True, help="a .zip of images, or a .txt / .jsonl text file")
    u.add_argument("--base", required=True, help="a saved model (name under weights/ or path), or a kind: vae, dcgan, char-lm")
    u.add_argument("--minutes", type=float, required=True, help="time budget for the whole study, in minutes")
    u.add_argument("--out", default=None, help="keep the runs and study_upload.json in this (new) folder")
    u.add_argument("--json", action="store_true", help="print the result as JSON (progress goes to stderr)")
    u.add_argument("--resolution", type=int, default=None, choices=[28, 32, 64], help="image size (default: the base's)")
    u.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    u.add_argument("--eval-n", type=int, default=256, help="samples or held-out windows per measurement (default 256)")
    u.add_argument("--max-steps", type=int, default=None, help="at most this many steps per run, whatever the budget")
    u.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")
    u.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    u.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    u.add_argument("--tiny", action="store_true", help="tiny model preset when training a kind from scratch (for tests)")
    u.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="training a kind from scratch: override a model config field (repeatable)")
    u.set_defaults(func=cmd_upload)


def _threads(n: int | None) -> None:
    if n is None:
        return
    if n < 1:
        raise UsageError("--threads must be at least 1")
    import torch
    torch.set_num_threads(n)


def read_spec(path: str | None) -> dict | None:
    """A --spec file: a JSON object (aigc.study.make_spec checks its fields)."""
    if path is None:
        return None
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--spec {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UsageError(f"--spec {path}: not a readable JSON file ({type(e).__name__})") from None
    if not isinstance(spec, dict):
        raise UsageError(f"--spec {path}: must hold a JSON object, got {type(spec).__name__}")
    return spec


def results_json(results: dict) -> dict:
    """The study's results as printed by --json: the cells (the issue's schema) and what is built on them."""
    return {"cells": [{k: r[k] for k in CELL_FIELDS} for r in results["cells"]], "summary": results["summary"],
            "answers": results["answers"], "notes": results.get("notes", [])}


def shipped_results(out: str | None) -> dict:
    """load_results of --out, or of the shipped study (aigc.hub.STUDY_DIR) without it."""
    from aigc.hub import STUDY_DIR
    from aigc.study import load_results
    if out is not None:
        return load_results(out)
    if not (STUDY_DIR / "study.json").is_file():
        raise UsageError(f"no study results shipped yet in {repo_relative(STUDY_DIR)}/: make them "
                         f"with `aigc study data-vs-compute --out runs/study` and copy its study.json there")
    return load_results(STUDY_DIR)


def cmd_data_vs_compute(args) -> int:
    if args.json:
        if args.spec is not None or args.threads is not None:
            raise UsageError("--json only prints results; --spec and --threads are for training")
        print(json.dumps(results_json(shipped_results(args.out)), indent=1, ensure_ascii=False))
        return 0
    if args.out is None:
        raise UsageError("training needs --out DIR (e.g. --out runs/study); --json prints results instead")
    from aigc.study import make_spec, plan, run_grid
    spec = make_spec(read_spec(args.spec))
    _threads(args.threads)
    sizes = "; ".join(f"{t}: {p['cells']} cells, {p['steps']:,} steps" for t, p in plan(spec).items())
    print(f"study in {args.out} ({sizes}); cells already measured there are kept", flush=True)
    results = run_grid(args.out, spec, on_progress=lambda e: print(e["text"], flush=True) if e.get("text") else None)
    for a in results["answers"]:
        print(f"\n{a['question']}")
        for sentence in a["sentences"]:
            print(f"  {sentence}")
    return 0


def cmd_merge(args) -> int:
    from aigc.study import merge_studies
    try:
        res = merge_studies(args.out, args.sources)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"{len(res['runs'])} cells from {len(args.sources)} folders in {Path(args.out) / 'study.json'}")
    return 0


def cmd_figures(args) -> int:
    from aigc.hub import STUDY_DIR
    from aigc.study import load_results
    from aigc.study.figures import write_figures
    src = Path(args.source) if args.source else STUDY_DIR
    folder = src.parent if src.name == "study.json" else src
    try:
        results = load_results(folder)
        if not results["summary"]:
            raise ValueError(f"{folder}/study.json holds no measured cells yet")
        paths = write_figures(results, args.out or folder / "figures")
    except ValueError as e:
        raise UsageError(str(e)) from None
    for p in paths:
        print(repo_relative(p))
    return 0


def cmd_corners(args) -> int:
    from aigc.study.corners import add_corner_metrics
    _threads(args.threads)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    if args.n is not None and args.n < 2:
        raise UsageError("--n must be at least 2")
    try:
        add_corner_metrics(args.study, args.models, metrics=metrics, n=args.n,
                           on_progress=lambda e: print(e["text"], flush=True))
    except ValueError as e:
        raise UsageError(str(e)) from None
    return 0


def cmd_upload(args) -> int:
    from aigc.study import study_upload
    if args.batch_size < 1 or args.eval_n < 1:
        raise UsageError("--batch-size and --eval-n must be at least 1")
    if args.max_steps is not None and args.max_steps < 1:
        raise UsageError("--max-steps must be at least 1")
    _threads(args.threads)
    log = sys.stderr if args.json else sys.stdout
    res = study_upload(args.data, args.base, args.minutes,
                       on_progress=lambda e: print(e["text"], file=log, flush=True) if e.get("text") else None,
                       out=args.out, device=args.device, seed=args.seed, tiny=args.tiny, overrides=parse_set(args.set),
                       resolution=args.resolution, batch_size=args.batch_size, eval_n=args.eval_n,
                       max_steps=args.max_steps)
    if args.json:
        print(json.dumps(res, indent=1, ensure_ascii=False))
        return 0
    pairs = ", ".join(f"{f:.0%} ({n}) {v:.4g}" for f, n, v in zip(res["fractions"], res["examples"], res["values"]))
    print(f"{res['metric']} by share of the data (examples): {pairs}")
    print(f"power-law exponent {res['exponent']:.3g}; twice the data predicted {res['prediction_2x_data']:.4g}, "
          f"twice the steps measured {res['measured_2x_steps']:.4g}")
    print(res["recommendation"])
    if res.get("duplicates_cost"):
        print(res["duplicates_cost"])
    return 0
