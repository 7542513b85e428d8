"""The CLI's text-model branch: `sample` and `eval` for modality "text" (char-lm and sentence VAE),
thin wrappers over aigc.pipelines (generation) and aigc.eval.text (scores)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from aigc import checkpoint as ckpt
from aigc.eval import text as text_eval
from aigc.eval.text import score_text
from aigc.limits import MAX_NEW_CHARS, MAX_PROMPT_CHARS, TEXT_TEMP_MAX, check_float, check_int, check_seed

__all__ = ["sample_text", "sample_poems", "eval_text", "eval_heldout", "sample_textvae", "eval_textvae",
           "score_text"]


def _check_sampling(args) -> dict:
    t = 1.0 if args.temperature is None else check_float(args.temperature, 0, TEXT_TEMP_MAX, "--temperature")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError("--top-k must be >= 1")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError("--top-p must be in (0, 1]")
    check_int(args.max_new, 0, MAX_NEW_CHARS, "--max-new")
    if len(args.prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt is {len(args.prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    return {"temperature": t, "top_k": args.top_k, "top_p": args.top_p}


def sample_text(path: Path, args) -> int:
    if ckpt.read_config(path).get("kind") == "text-vae":
        return sample_textvae(path, args)
    if args.interpolate is not None:
        raise ValueError("--interpolate applies to text VAE models (e.g. textvae-tang)")
    if args.form is not None:
        return sample_poems(path, args)
    model = ckpt.from_pretrained(path, device=args.device)
    kw = _check_sampling(args)
    check_int(args.n, 1, 1000, "--n")
    n = args.n if (args.json or args.n != 16) else 1   # --n defaults to 16 for image grids
    texts = [model.generate_text(args.prompt, args.max_new, seed=args.seed + i, **kw) for i in range(n)]
    if args.json:
        print(json.dumps([args.prompt + t for t in texts], ensure_ascii=False))
    else:
        for t in texts:
            sys.stdout.write(args.prompt + t + "\n")
    return 0


def sample_poems(path: Path, args) -> int:
    """`sample char-tang --form 五言绝句 --n 200 --seed 0 --json`: n poems on seeds seed..seed+n-1."""
    from aigc.pipelines.charlm import TextPipeline
    pipe = TextPipeline(ckpt.from_pretrained(path, device=args.device), name=path.name, path=path)
    check_int(args.n, 1, 1000, "--n")
    n = args.n if (args.json or args.n != 16) else 1   # --n defaults to 16 for image grids
    t = 0.8 if args.temperature is None else float(args.temperature)
    poems = []
    for i in range(n):
        step = None
        for step in pipe.stream_poem(args.form, title=args.title, first_line=args.first_line, temperature=t,
                                     top_k=args.top_k, top_p=args.top_p, seed=args.seed + i):
            pass
        poems.append(step.text)
    if args.json:
        print(json.dumps(poems, ensure_ascii=False))
    else:
        sys.stdout.write("\n\n".join(poems) + "\n")
    return 0


def _print_result(res: dict, as_json: bool) -> None:
    print(json.dumps(res, ensure_ascii=False) if as_json else "\n".join(f"{k}: {v}" for k, v in res.items()))


def eval_text(args) -> int:
    """`aigc eval MODEL --text-file F`: nats per character of a file (aigc.eval.text.score_text)."""
    from aigc.hub import resolve_model_path
    model = ckpt.from_pretrained(resolve_model_path(args.name), device=args.device)
    text_eval.check_text_model(model, "--text-file")
    text = text_eval.read_text_file(args.text_file)
    res = score_text(model, text)
    res["file"] = str(Path(args.text_file))
    _print_result(res, args.json)
    return 0


def eval_heldout(args) -> int:
    """`aigc eval MODEL --heldout`: the model's dataset's held-out split (e.g. the plays kept out of training)."""
    from aigc.hub import record_metrics, resolve_model_path
    model = ckpt.from_pretrained(resolve_model_path(args.name), device=args.device)
    text_eval.check_text_model(model, "--heldout")
    res = text_eval.score_heldout(model, args.data)
    if getattr(args, "save", False):
        record_metrics(resolve_model_path(args.name), res)
    _print_result(res, args.json)
    return 0


# -- the sentence VAE ---------------------------------------------------------------------------------
def sample_textvae(path, args) -> int:
    """`aigc sample textvae-tang --n 8` or `--interpolate A B --steps 8`."""
    from aigc.pipelines.textvae import TextVAEPipeline
    if getattr(args, "form", None) or getattr(args, "prompt", ""):
        raise ValueError("--form and --prompt apply to char-lm models; a text VAE takes --n/--seed or --interpolate")
    pipe = TextVAEPipeline.from_pretrained(path, device=getattr(args, "device", "cpu"))
    if args.interpolate is not None:
        lines = pipe.interpolate(args.interpolate[0], args.interpolate[1], args.steps)
    else:
        t = 1.0 if args.temperature is None else args.temperature
        lines = pipe.sample(args.n, seed=args.seed, temperature=t)
    if args.json:
        print(json.dumps(lines, ensure_ascii=False))
    else:
        sys.stdout.write("".join(s + "\n" for s in lines))
    return 0


def eval_textvae(path, args) -> int:
    """`aigc eval textvae-tang [--n 5000] [--save]`: the diagnostics of aigc.eval.text.evaluate_lines."""
    from aigc.hub import record_metrics
    from aigc.pipelines.textvae import TextVAEPipeline
    n = check_int(args.n, 2, 10 ** 9, "--n")
    seed = check_seed(args.seed, "--seed")
    pipe = TextVAEPipeline.from_pretrained(path, device=getattr(args, "device", "cpu"))
    lines = text_eval.heldout_lines(pipe, getattr(args, "data", None))
    res = text_eval.evaluate_lines(pipe, lines, n=min(n, text_eval.EVAL_MAX_LINES), seed=seed)
    res["model"] = pipe.name
    if args.save:
        record_metrics(Path(path), res)
    _print_result(res, args.json)
    return 0
