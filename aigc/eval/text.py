"""Text evaluation, all of it: a char-lm's nats per character on a text or on its dataset's
held-out split, and a sentence VAE's diagnostics on held-out lines. The CLI's `aigc eval`
(aigc.cli.text), the ship scripts and the benches call these functions, so every reported
number comes from one protocol.

Char-lm score (`score_text`): every character after the first is predicted once, with at least
block_size // 2 characters of context (windows of block_size, stride block_size // 2; see
CharLM.nll).

Sentence-VAE diagnostics (`evaluate_lines`), on held-out lines (distinct clauses of held-out
poems that never occur in training, see aigc.data.lines):
  kl_per_line         mean KL(q(z|x) || N(0, I)) in nats
  active_units        latent dimensions with Cov_x(E_q[z|x]) > 0.01 (Burda et al. 2016)
  recon_acc           share of lines whose greedy decode of the posterior mean equals the line
                      (recon_len_acc: ... has the line's length; recon_char_acc: share of the
                      lines' characters decoded at their own position)
  nll_per_line        negative ELBO per line, one posterior sample (an upper bound on -log p(x))
  interp_well_formed  share of well-formed lines (aigc.text.forms.well_formed) among every decoded
                      step (ends included) of lerp paths of `steps` between consecutive pairs of
                      held-out lines
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from aigc import latent
from aigc.limits import TEXT_FILE_MAX_BYTES
from aigc.text.forms import well_formed

EVAL_MAX_LINES = 5000          # eval's cap on held-out lines (runs well under a minute on 2 CPU cores)
EVAL_PAIRS = 100               # interpolation paths evaluated
EVAL_STEPS = 8


# -- char-lm ----------------------------------------------------------------------------------------
def read_text_file(path) -> str:
    """The UTF-8 text of a file to score; ValueError/FileNotFoundError with one line otherwise."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    if p.stat().st_size > TEXT_FILE_MAX_BYTES:
        raise ValueError(f"{p} is larger than {TEXT_FILE_MAX_BYTES >> 20} MB")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{p} is not UTF-8 text ({e.reason} at byte {e.start})") from None


def check_text_model(model, what: str) -> None:
    if getattr(model, "modality", "image") != "text":
        raise ValueError(f"{what} applies to text models only")


def score_text(model, text: str, args=None) -> dict:
    """Nats and bits per character of `text` under a char-lm (protocol in the module doc)."""
    tok = model.tokenizer
    if not isinstance(text, str) or len(text) < 2:
        raise ValueError("text must have at least 2 characters to score")
    total, count = model.nll(tok.encode(text), batch_size=64)
    npc = total / max(count, 1)
    block = model.config.block_size
    return {"nats_per_char": round(npc, 4), "bits_per_char": round(npc / math.log(2), 4), "chars": count,
            "unknown_chars": tok.count_unknown(text),
            "protocol": f"every character after the first predicted once with >= {block // 2} "
                        f"characters of context (windows of {block}, stride {block // 2})"}


def score_heldout(model, dataset: str | None = None, max_chars: int | None = None) -> dict:
    """score_text on the held-out split of `dataset` (default: the model's own), or on its first
    `max_chars` characters (a quick slice)."""
    from aigc.data.text import load_text_corpus
    dataset = dataset or model.meta.get("dataset")
    _, val, _, _ = load_text_corpus(dataset)
    res = score_text(model, val if max_chars is None else val[:max_chars])
    res["dataset"] = dataset
    res["split"] = "held-out" if max_chars is None else f"held-out, first {max_chars} characters"
    return res


# -- sentence VAE ------------------------------------------------------------------------------------
def heldout_lines(pipe, dataset: str | None = None) -> list[str]:
    """The held-out lines of `dataset` (default: the model's own) that the pipe's model can write."""
    from aigc.data.lines import load_line_corpus
    dataset = dataset or pipe.model.meta.get("dataset") or "tang-lines"
    _, val, _, tok = load_line_corpus(dataset)
    if tok != pipe.tokenizer:   # another vocabulary: keep the lines this model can write
        val = [s for s in val if pipe.tokenizer.count_unknown(s) == 0]
    return val


def _reconstruction(pipe, lines: list[str], g: torch.Generator) -> dict:
    m = pipe.model
    nll = rec = kl = 0.0
    mus, recon, same_len, same_char = [], 0, 0, 0
    for i in range(0, len(lines), 1000):
        chunk = lines[i:i + 1000]
        ids, lengths = m.batch(chunk)
        out = m.nll_bound(ids, lengths, g)
        nll, rec, kl = nll + float(out["nll"].sum()), rec + float(out["rec"].sum()), kl + float(out["kl"].sum())
        mu = out["mu"].float().cpu()
        mus.append(mu)
        for a, b in zip(pipe._decode(mu), chunk):
            recon += a == b
            same_len += len(a) == len(b)
            same_char += sum(x == y for x, y in zip(a, b))
    n = len(lines)
    return {"mu": torch.cat(mus), "kl_per_line": round(kl / n, 4), "nll_per_line": round(nll / n, 4),
            "rec_per_line": round(rec / n, 4), "nll_per_char": round(nll / sum(len(s) + 1 for s in lines), 4),
            "recon_acc": round(recon / n, 4), "recon_len_acc": round(same_len / n, 4),
            "recon_char_acc": round(same_char / sum(map(len, lines)), 4)}


def _interpolation(pipe, mu: torch.Tensor, pairs: int, steps: int) -> dict:
    k = min(pairs, len(mu) // 2)
    t = torch.linspace(0, 1, steps)
    path_lines = []
    for j in range(k):
        path_lines += pipe._decode(latent.lerp(mu[2 * j], mu[2 * j + 1], t))
    ok = [well_formed(s) for s in path_lines]
    inner = [o for i, o in enumerate(ok) if 0 < i % steps < steps - 1]
    return {"interp_well_formed": round(sum(ok) / len(ok), 4),
            "interp_inner_well_formed": round(sum(inner) / max(1, len(inner)), 4),
            "interp_paths": k, "interp_steps": steps, "interp_method": "lerp of posterior means"}


@torch.no_grad()
def evaluate_lines(pipe, lines: list[str], n: int = EVAL_MAX_LINES, seed: int = 0,
                   pairs: int = EVAL_PAIRS, steps: int = EVAL_STEPS) -> dict:
    """A TextVAEPipeline's diagnostics (module doc) on the first n of `lines` after a seeded shuffle."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lines), generator=g)[:n].tolist()
    lines = [lines[i] for i in order]
    if len(lines) < 2:
        raise ValueError("need at least two held-out lines")
    rec = _reconstruction(pipe, lines, g)
    mu = rec.pop("mu")
    prior = pipe.sample(64, seed=seed, temperature=0) + pipe.sample(64, seed=seed + 1, temperature=0)
    return {"lines": len(lines), "latent_dim": pipe.model.latent_dim,
            **{k: rec[k] for k in ("kl_per_line", "nll_per_line", "rec_per_line", "nll_per_char")},
            "active_units": int((mu.var(0) > 0.01).sum()), "active_threshold": 0.01,
            **{k: rec[k] for k in ("recon_acc", "recon_len_acc", "recon_char_acc")},
            **_interpolation(pipe, mu, pairs, steps),
            "prior_greedy_well_formed": round(sum(map(well_formed, prior)) / len(prior), 4),
            "seed": seed, "protocol": "held-out lines: distinct clauses of held-out poems, unseen in training, "
                                      "no unknown character; nll: one posterior sample"}
