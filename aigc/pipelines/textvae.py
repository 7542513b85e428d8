"""The sentence VAE (aigc.models.textvae) as an inference object, its diagnostics, and the CLI's
`sample` / `eval` branches for it. No UI code here.

    pipe = TextVAEPipeline.from_pretrained("textvae-tang")
    pipe.encode("床前明月光")            # posterior mean, KL, greedy reconstruction
    pipe.interpolate("床前明月光", "黄河入海流", steps=8)
    pipe.sample(n=8, seed=0)
    pipe.edit("床前明月光", [1.5, 0, -1])  # move along the stored principal directions

Interpolation is linear (lerp) between the two posterior means, as in Bowman et al. 2016's
"homotopies": posterior means are not spread on the prior's shell, so slerp's argument (keep the
norm of a Gaussian draw) does not apply to them, and a straight line is the simplest path.

A line is "well-formed" when it is exactly 5 or 7 hanzi and nothing else (no punctuation, no
space, no unknown symbol U+FFFD); the decoder writes an end symbol after 5 or 7 characters or
the line is not a clause (it stops after 8 characters: too long).

Input rules (ValueError with a message otherwise): a line is a str of at most MAX_LINE_CHARS
characters; surrounding whitespace and clause punctuation (，。？！；,.?!;) are stripped; what is
left must be non-empty and hold at least one character the model knows (unknown ones are read
as the unknown symbol and counted in "unknown_chars").

Diagnostics (`evaluate`, `python -m aigc eval textvae-tang --json`), on held-out lines (distinct
clauses of held-out poems that never occur in training, see aigc.data.lines):
  kl_per_line         mean KL(q(z|x) || N(0, I)) in nats
  active_units        latent dimensions with Cov_x(E_q[z|x]) > 0.01 (Burda et al. 2016)
  recon_acc           share of lines whose greedy decode of the posterior mean equals the line
                      (recon_len_acc: ... has the line's length; recon_char_acc: share of the
                      lines' characters decoded at their own position)
  nll_per_line        negative ELBO per line, one posterior sample (an upper bound on -log p(x))
  interp_well_formed  share of well-formed lines among every decoded step (ends included) of
                      lerp paths of `steps` between consecutive pairs of held-out lines
"""
from __future__ import annotations

import json
import numbers
import sys
from pathlib import Path

import torch

from aigc import checkpoint as ckpt
from aigc import latent
from aigc.text import forms
from aigc.limits import SEED_MAX, TEXT_TEMP_MAX

MAX_LINE_CHARS = 64
MIN_STEPS, MAX_STEPS = 2, 32
MAX_N = 64
STRIP = " \t\r\n\u3000，。？！；、,.?!;"
N_DIRECTIONS = 10
EVAL_MAX_LINES = 5000          # eval's cap on held-out lines (runs well under a minute on 2 CPU cores)
EVAL_PAIRS = 100               # interpolation paths evaluated
EVAL_STEPS = 8


def well_formed(line) -> bool:
    return (isinstance(line, str) and len(line) in (5, 7) and all(forms.is_hanzi(c) for c in line))


def _integer(v, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        else:
            raise ValueError(f"{what} must be a whole number (got {v!r})"[:120])
    if not lo <= int(v) <= hi:
        raise ValueError(f"{what} must be between {lo} and {hi} (got {v})")
    return int(v)


def _finite_vector(v, what: str, max_len: int, exact: bool = False) -> torch.Tensor:
    try:
        t = torch.as_tensor(v, dtype=torch.float32).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{what} must be a list of numbers") from None
    if isinstance(v, str) or (exact and t.numel() != max_len) or t.numel() > max_len:
        raise ValueError(f"{what} must hold {'exactly' if exact else 'at most'} {max_len} numbers")
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} must be finite numbers")
    return t


class TextVAEPipeline:
    """A loaded text-vae, its stored directions and metrics. Methods only read the model, so one
    pipeline may serve several threads."""

    def __init__(self, model, name: str = "", path: Path | None = None):
        if getattr(model, "kind", None) != "text-vae" or getattr(model, "tokenizer", None) is None:
            raise ValueError("TextVAEPipeline needs a text-vae model with a tokenizer")
        self.model = model.eval()
        self.tokenizer = model.tokenizer
        self.name = name
        self.path = Path(path) if path is not None else None
        self._dirs = None
        if self.path is not None and (self.path / latent.VECTORS_FILE).is_file():
            self._dirs = latent.load_directions(self.path, model.latent_dim, ckpt.weights_hash(self.path))

    @classmethod
    def from_pretrained(cls, name_or_path, device: str = "cpu", search=None) -> "TextVAEPipeline":
        from aigc.hub import resolve_model_path
        path = resolve_model_path(name_or_path, search)
        cfg = ckpt.read_config(path)
        if cfg.get("kind") != "text-vae":
            raise ValueError(f"{path.name} is not a text VAE (kind {cfg.get('kind')!r})")
        name = path.parent.name if path.name == "model" else path.name
        return cls(ckpt.from_pretrained(path, device=device), name=name, path=path)

    well_formed = staticmethod(well_formed)

    # -- checks ---------------------------------------------------------------------------------
    def check_line(self, line) -> str:
        if not isinstance(line, str):
            raise ValueError(f"a line must be text (got {type(line).__name__})")
        if len(line) > MAX_LINE_CHARS:
            raise ValueError(f"a line may have at most {MAX_LINE_CHARS} characters (got {len(line)})")
        s = line.strip(STRIP)
        if not s:
            raise ValueError("the line is empty: type a clause of 5 or 7 characters, e.g. 床前明月光")
        if self.tokenizer.count_unknown(s) == len(s):
            raise ValueError(f"none of the characters of {s[:20]!r} is known to the model "
                             "(it reads simplified-Chinese Tang poem lines)")
        return s

    # -- the latent space -----------------------------------------------------------------------
    @torch.no_grad()
    def _posterior(self, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, lengths = self.model.batch(lines)
        mu, logvar = self.model.encode(ids, lengths)
        return mu.float().cpu(), logvar.float().cpu()

    def _decode(self, z: torch.Tensor, temperature: float = 0.0, generator=None) -> list[str]:
        ids = self.model.decode(z, greedy=temperature == 0, temperature=temperature or 1.0, generator=generator)
        return [self.model.ids_to_text(r) for r in ids]

    def encode(self, line: str) -> dict:
        s = self.check_line(line)
        mu, logvar = self._posterior([s])
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum()
        return {"line": s, "mu": [round(float(x), 6) for x in mu[0]], "kl": float(kl),
                "unknown_chars": self.tokenizer.count_unknown(s), "reconstruction": self._decode(mu)[0]}

    def decode(self, z) -> str:
        return self._decode(_finite_vector(z, "z", self.model.latent_dim, exact=True)[None])[0]

    def sample(self, n: int = 8, seed: int = 0, temperature: float = 1.0) -> list[str]:
        """n lines from the model: z ~ N(0, I) then the decoder's characters at `temperature`
        (1 = the model's own distribution, 0 = greedy). A seed names the lines."""
        n = _integer(n, "n", 1, MAX_N)
        seed = _integer(seed, "seed", 0, SEED_MAX)
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
                or not 0 <= float(temperature) <= TEXT_TEMP_MAX:
            raise ValueError(f"temperature must be a number between 0 (greedy) and {TEXT_TEMP_MAX:g}")
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.model.latent_dim, generator=g)
        return self._decode(z, float(temperature), g)

    def interpolate(self, a: str, b: str, steps: int = 8) -> list[str]:
        """Greedy decodes of `steps` points on the straight line between the two posterior means,
        both ends included."""
        a, b = self.check_line(a), self.check_line(b)
        steps = _integer(steps, "steps", MIN_STEPS, MAX_STEPS)
        mu, _ = self._posterior([a, b])
        return self._decode(latent.lerp(mu[0], mu[1], torch.linspace(0, 1, steps)))

    # -- directions -----------------------------------------------------------------------------
    def directions(self) -> list[dict]:
        """Principal directions of posterior means (stored beside the weights; [] if none):
        variance = the posterior means' variance along it, explained = its share of the total."""
        d = self._dirs
        if d is None:
            return []
        return [{"name": d.names[i], "variance": float(d.scales[i]) ** 2, "explained": float(d.explained[i])}
                for i in range(len(d))]

    def edit(self, line: str, coords) -> dict:
        """Move the line's posterior mean by coords[i] standard deviations along direction i
        (missing coordinates count as 0) and decode greedily."""
        s = self.check_line(line)
        k = 0 if self._dirs is None else len(self._dirs)
        c = _finite_vector(coords, "coords", k)
        if c.numel() and c.abs().max().item() > 10:
            raise ValueError("coords must be between -10 and 10 standard deviations")
        mu, _ = self._posterior([s])
        z = mu[0] + (self._dirs.offset(c.tolist()) if c.numel() else 0)
        out = self._decode(z[None])[0]
        return {"line": out, "well_formed": well_formed(out)}

    def diagnostics(self) -> dict:
        metrics = ckpt.read_metrics(self.path) if self.path is not None else {}
        return {"latent_dim": self.model.latent_dim, **metrics}


# -- directions and evaluation ---------------------------------------------------------------------
def compute_directions(pipe: TextVAEPipeline, lines: list[str], k: int = N_DIRECTIONS) -> latent.Directions:
    """PCA of the posterior means of `lines`, plus the mean KL per dimension (as for image VAEs)."""
    mus, kls = [], []
    for i in range(0, len(lines), 1000):
        mu, logvar = pipe._posterior(lines[i:i + 1000])
        mus.append(mu)
        kls.append((0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).sum(0))
    mu = torch.cat(mus)
    kl = torch.stack(kls).sum(0) / len(mu)
    k = max(1, min(k, mu.shape[1]))
    _, s, vt = torch.linalg.svd(mu - mu.mean(0, keepdim=True), full_matrices=False)
    var = s.pow(2) / max(1, len(mu) - 1)
    return latent.Directions(latent._unit_rows(vt[:k]).contiguous(), var[:k].sqrt().contiguous(),
                             (var[:k] / var.sum()).contiguous(), [f"PC{i + 1}" for i in range(k)], k,
                             "pca-posterior-means", kl=kl.contiguous(), dim_order=latent.kl_order(kl))


def store_directions(pipe: TextVAEPipeline, lines: list[str]) -> latent.Directions:
    d = compute_directions(pipe, lines)
    d.weights_hash = ckpt.weights_hash(pipe.path)
    latent.save_directions(pipe.path, d)
    pipe._dirs = d
    return d


@torch.no_grad()
def evaluate(pipe: TextVAEPipeline, lines: list[str], n: int = EVAL_MAX_LINES, seed: int = 0,
             pairs: int = EVAL_PAIRS, steps: int = EVAL_STEPS) -> dict:
    """The diagnostics (module doc) on the first n of `lines` after a seeded shuffle."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lines), generator=g)[:n].tolist()
    lines = [lines[i] for i in order]
    if len(lines) < 2:
        raise ValueError("need at least two held-out lines")
    m = pipe.model
    nll, rec, kl, mus, recon, same_len, same_char = 0.0, 0.0, 0.0, [], 0, 0, 0
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
    mu = torch.cat(mus)
    var = mu.var(0)
    k = min(pairs, len(lines) // 2)
    t = torch.linspace(0, 1, steps)
    path_lines = []
    for j in range(k):
        path_lines += pipe._decode(latent.lerp(mu[2 * j], mu[2 * j + 1], t))
    ok = [well_formed(s) for s in path_lines]
    inner = [o for i, o in enumerate(ok) if 0 < i % steps < steps - 1]
    prior = pipe.sample(64, seed=seed, temperature=0) + pipe.sample(64, seed=seed + 1, temperature=0)
    N = len(lines)
    return {"lines": N, "latent_dim": m.latent_dim,
            "kl_per_line": round(kl / N, 4), "nll_per_line": round(nll / N, 4), "rec_per_line": round(rec / N, 4),
            "nll_per_char": round(nll / sum(len(s) + 1 for s in lines), 4),
            "active_units": int((var > 0.01).sum()), "active_threshold": 0.01,
            "recon_acc": round(recon / N, 4), "recon_len_acc": round(same_len / N, 4),
            "recon_char_acc": round(same_char / sum(map(len, lines)), 4),
            "interp_well_formed": round(sum(ok) / len(ok), 4),
            "interp_inner_well_formed": round(sum(inner) / max(1, len(inner)), 4),
            "interp_paths": k, "interp_steps": steps, "interp_method": "lerp of posterior means",
            "prior_greedy_well_formed": round(sum(map(well_formed, prior)) / len(prior), 4),
            "seed": seed, "protocol": "held-out lines: distinct clauses of held-out poems, unseen in training, "
                                      "no unknown character; nll: one posterior sample"}


def heldout_lines(pipe: TextVAEPipeline, dataset: str | None = None) -> list[str]:
    from aigc.data.lines import load_line_corpus
    dataset = dataset or pipe.model.meta.get("dataset") or "tang-lines"
    _, val, _, tok = load_line_corpus(dataset)
    if tok != pipe.tokenizer:   # another vocabulary: keep the lines this model can write
        val = [s for s in val if pipe.tokenizer.count_unknown(s) == 0]
    return val


# -- CLI branches (called from aigc/__main__.py and aigc/textcli.py) ---------------------------------
def cli_sample(path, args) -> int:
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


def cli_eval(path, args) -> int:
    n = _integer(args.n, "--n", 2, 10 ** 9)
    pipe = TextVAEPipeline.from_pretrained(path, device=getattr(args, "device", "cpu"))
    res = evaluate(pipe, heldout_lines(pipe, getattr(args, "data", None)), n=min(n, EVAL_MAX_LINES),
                   seed=_integer(args.seed, "--seed", 0, SEED_MAX))
    res["model"] = pipe.name
    if args.save:
        from aigc.hub import record_metrics
        record_metrics(Path(path), res)
    if args.json:
        print(json.dumps(res, ensure_ascii=False))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return 0


def main(argv=None) -> int:
    """`python -m aigc.pipelines.textvae directions MODEL [--n 10000]`: compute and store the principal
    directions of the posterior means of n training lines (seeded choice) beside the weights."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m aigc.pipelines.textvae")
    p.add_argument("command", choices=["directions"])
    p.add_argument("model")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from aigc.data.lines import load_line_corpus
    pipe = TextVAEPipeline.from_pretrained(a.model)
    train, _, _, _ = load_line_corpus(pipe.model.meta.get("dataset") or "tang-lines")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(a.seed))[:a.n].tolist()
    d = store_directions(pipe, [train[i] for i in order])
    print(json.dumps({"model": pipe.name, "lines": min(a.n, len(train)), "directions": pipe.directions(),
                      "dim_order": d.dim_order}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
