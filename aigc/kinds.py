"""One registry: kind name -> (model class, config class, modality, training objective), plus tiny
presets for tests and optional named presets (aigc.configs, e.g. char-lm's "gpu" / "cpu"), chosen
with the config field `preset`. Values for configs saved before a field existed are in aigc.legacy.

Everything that turns a name into a model goes through here: checkpoint loading, the CLI, the
training loop. A new model kind is one `register` call.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from aigc.models import DCGAN, DCGANConfig, SeedGAN, SeedGANConfig, VaDE, VaDEConfig, VAE, VAEConfig
from aigc.configs.charlm import PRESETS as CHARLM_PRESETS
from aigc.configs.vade import PRESETS as VADE_PRESETS
from aigc.models.charlm import CharLM, CharLMConfig
from aigc.models.textvae import TextVAE, TextVAEConfig


@dataclass(frozen=True)
class Kind:
    name: str
    model_cls: type
    config_cls: type
    modality: str
    tiny: dict          # overrides giving a model small enough for a test to train in seconds
    presets: dict = None  # name -> config overrides, selected by overrides["preset"]
    objective: str | None = None  # the training objective (aigc.train.objectives); None: the loop cannot train it


KINDS: dict[str, Kind] = {}


def register(name, model_cls, config_cls, modality="image", tiny=None, presets=None, objective=None):
    KINDS[name] = Kind(name, model_cls, config_cls, modality, dict(tiny or {}), dict(presets or {}), objective)


register("vae", VAE, VAEConfig, objective="vae", tiny={"width": 8, "hidden": 32, "latent_dim": 4})
register("vade", VaDE, VaDEConfig, objective="vade", presets=VADE_PRESETS,
         tiny={"arch": "mlp", "mlp_hidden": [32, 16], "latent_dim": 3, "n_clusters": 3})
register("dcgan", DCGAN, DCGANConfig, objective="dcgan", tiny={"ngf": 8, "ndf": 8, "latent_dim": 8, "embed_dim": 4})
register("seed-gan", SeedGAN, SeedGANConfig, objective="seed-gan",
         tiny={"g_hidden": 16, "d_hidden": 16, "latent_dim": 8})
register("char-lm", CharLM, CharLMConfig, objective="char-lm", modality="text",
         tiny={"n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.0},
         presets=CHARLM_PRESETS)
register("text-vae", TextVAE, TextVAEConfig, objective="text-vae", modality="text",
         tiny={"n_embd": 16, "enc_hidden": 16, "dec_hidden": 32, "latent_dim": 4, "kl_anneal_steps": 10})


def get_kind(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def make_config(kind: str, tiny: bool = False, **overrides):
    """Build a config for `kind`, rejecting unknown fields with a clear message.

    Precedence: defaults < named preset (overrides["preset"]) < tiny < the other overrides."""
    k = get_kind(kind)
    known = {f.name for f in fields(k.config_cls)}
    overrides = dict(overrides)
    preset = overrides.pop("preset", None)
    values = {}
    if preset is not None:
        if preset not in (k.presets or {}):
            raise ValueError(f"{kind}: unknown preset {preset!r}; known: {', '.join(k.presets or {}) or 'none'}")
        values.update(k.presets[preset])
    if tiny:
        values.update(k.tiny)
    values.update(overrides)
    bad = sorted(set(values) - known)
    if bad:
        raise ValueError(f"{kind}: unknown config field(s) {', '.join(bad)}")
    return k.config_cls(**values)


def build(kind: str, tiny: bool = False, **overrides):
    return get_kind(kind).model_cls(make_config(kind, tiny=tiny, **overrides))
