"""The sentence VAE (aigc.models.textvae) as an inference object and its principal
directions. No UI code here.

    pipe = TextVAEPipeline.from_pretrained("textvae-tang")
    pipe.encode("床前明月光")            # posterior mean, KL, greedy reconstruction
    pipe.interpolate("床前明月光", "黄河入海流", steps=8)
    pipe.sample(n=8, seed=0)
    pipe.edit("床前明月光", [1.5, 0, -1])  # move along the stored principal directions

Interpolation is linear (lerp) between the two posterior means, as in Bowman et al. 2016's
"homotopies": posterior means are not spread on the prior's shell, so slerp's argument (keep the
norm of a Gaussian draw) does not apply to them, and a straight line is the simplest path.

A line is "well-formed" (aigc.text.forms.well_formed) when it is exactly 5 or 7 hanzi and nothing
else; the decoder writes an end symbol after 5 or 7 characters or the line is not a clause (it
stops after 8 characters: too long).

Input rules (ValueError with a message otherwise): a line is a str of at most MAX_LINE_CHARS
characters; surrounding whitespace and clause punctuation (，。？！；,.?!;) are stripped; what is
left must be non-empty and hold at least one character the model knows (unknown ones are read
as the unknown symbol and counted in "unknown_chars").

Diagnostics on held-out lines (`python -m aigc eval textvae-tang --json`) live in aigc.eval.text.
"""
from __future__ import annotations

from pathlib import Path

import torch

from aigc import checkpoint as ckpt
from aigc import latent
from aigc.limits import TEXT_TEMP_MAX, check_float, check_int, check_seed
from aigc.text.forms import well_formed

MAX_LINE_CHARS = 64
MIN_STEPS, MAX_STEPS = 2, 32
MAX_N = 64
STRIP = " \t\r\n\u3000，。？！；、,.?!;"
N_DIRECTIONS = 10


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
        n = check_int(n, 1, MAX_N, "n")
        seed = check_seed(seed)
        temperature = check_float(temperature, 0, TEXT_TEMP_MAX, "temperature")
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.model.latent_dim, generator=g)
        return self._decode(z, temperature, g)

    def interpolate(self, a: str, b: str, steps: int = 8) -> list[str]:
        """Greedy decodes of `steps` points on the straight line between the two posterior means,
        both ends included."""
        a, b = self.check_line(a), self.check_line(b)
        steps = check_int(steps, MIN_STEPS, MAX_STEPS, "steps")
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


# -- directions -----------------------------------------------------------------------------------
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
