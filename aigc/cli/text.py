"""The CLI's text-model branch: `sample` and `eval` for modality "text" (kept apart from the
image path so __main__ stays a thin dispatcher)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from aigc import checkpoint as ckpt
from aigc.limits import MAX_NEW_CHARS, MAX_PROMPT_CHARS, TEXT_FILE_MAX_BYTES



def _check_sampling(args) -> dict:
    t = 1.0 if args.temperature is None else float(args.temperature)
    if not 0 <= t <= 5:
        raise ValueError("temperature must be between 0 (greedy) and 5")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError("--top-k must be >= 1")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError("--top-p must be in (0, 1]")
    if not 0 <= args.max_new <= MAX_NEW_CHARS:
        raise ValueError(f"--max-new must be between 0 and {MAX_NEW_CHARS}")
    if len(args.prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompt is {len(args.prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
    return {"temperature": t, "top_k": args.top_k, "top_p": args.top_p}


def sample_text(path: Path, args) -> int:
    if ckpt.read_config(path).get("kind") == "text-vae":
        from aigc.pipelines.textvae import cli_sample          # the sentence VAE's own branch
        return cli_sample(path, args)
    if args.interpolate is not None:
        raise ValueError("--interpolate applies to text VAE models (e.g. textvae-tang)")
    if args.form is not None:
        return sample_poems(path, args)
    model = ckpt.from_pretrained(path, device=args.device)
    kw = _check_sampling(args)
    if not 1 <= args.n <= 1000:
        raise ValueError("--n must be between 1 and 1000")
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
    if not 1 <= args.n <= 1000:
        raise ValueError("--n must be between 1 and 1000")
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


def eval_text(args) -> int:
    from aigc.hub import resolve_model_path
    model = ckpt.from_pretrained(resolve_model_path(args.name), device=args.device)
    if getattr(model, "modality", "image") != "text":
        raise ValueError("--text-file applies to text models only")
    p = Path(args.text_file)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if p.stat().st_size > TEXT_FILE_MAX_BYTES:
        raise ValueError(f"{p} is larger than {TEXT_FILE_MAX_BYTES >> 20} MB")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    res = score_text(model, text, args)
    res["file"] = str(p)
    print(json.dumps(res, ensure_ascii=False) if args.json else "\n".join(f"{k}: {v}" for k, v in res.items()))
    return 0


def score_text(model, text: str, args=None) -> dict:
    import math
    tok = model.tokenizer
    if len(text) < 2:
        raise ValueError("text must have at least 2 characters to score")
    ids = tok.encode(text)
    total, count = model.nll(ids, batch_size=64)
    npc = total / max(count, 1)
    return {"nats_per_char": round(npc, 4), "bits_per_char": round(npc / math.log(2), 4), "chars": count,
            "unknown_chars": tok.count_unknown(text),
            "protocol": f"every character after the first predicted once with >= {model.config.block_size // 2} "
                        f"characters of context (windows of {model.config.block_size}, stride {model.config.block_size // 2})"}


def eval_heldout(args) -> int:
    """Score the model's dataset's held-out split (e.g. the whole plays kept out of training)."""
    from aigc.data.text import load_text_corpus
    from aigc.hub import resolve_model_path
    model = ckpt.from_pretrained(resolve_model_path(args.name), device=args.device)
    if getattr(model, "modality", "image") != "text":
        raise ValueError("--heldout applies to text models only")
    dataset = args.data or model.meta.get("dataset")
    _, val, info, _ = load_text_corpus(dataset)
    res = score_text(model, val)
    res["dataset"] = dataset
    res["split"] = "held-out"
    if getattr(args, "save", False):
        from aigc.hub import record_metrics
        record_metrics(resolve_model_path(args.name), res)
    print(json.dumps(res, ensure_ascii=False) if args.json else "\n".join(f"{k}: {v}" for k, v in res.items()))
    return 0
