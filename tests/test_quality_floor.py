"""A quality floor for every shipped model: a few hundred samples (or a slice of held-out text)
measured with the project's own metrics, against thresholds well below each model's card (its
metrics.json, measured on 10,000 samples or the whole held-out split) and well above the same
architecture untrained. The second test proves the last part: an untrained copy fails every
threshold, so a floor cannot pass by accident.

Measured here (shipped / untrained [card]); images n=300 seed 0, char-lms the first 2,000 held-out
characters, the sentence VAE 200 held-out lines:
  dcgan-mnist       domain_fd 58 / 2128 [26]   label_acc 1.00 / 0.10 [0.98] diversity 1.02 / 0.01 kid_randconv 0.001 / 1.01
  dcgan-fashion     domain_fd 33 / 1088 [24]   label_acc 0.89 / 0.10 [0.89] diversity 0.92 / 0.02 kid_randconv 0.001 / 0.54
  vae-mnist         domain_fd 112 / 2128 [97]  diversity 1.06 / 0.00   kid_randconv 0.001 / 1.05
  vae-fashion       domain_fd 55 / 1093 [43]   diversity 0.95 / 0.00   kid_randconv 0.002 / 0.59
  vade-mnist        domain_fd 56 / 2120 [29]   diversity 0.91 / 0.01   cluster_acc 0.94 / 0.14 [0.95]
  vade-fashion      domain_fd 69 / 1065 [34]   diversity 0.80 / 0.04   cluster_acc 0.63 / 0.13 [0.61]
  seed-gan-mnist    domain_fd 519 / 2058 [521] diversity 0.86 / 0.06   kid_randconv 0.001 / 0.99
  seed-gan-fashion  domain_fd 483 / 981 [473]  diversity 0.81 / 0.17   kid_randconv 0.014 / 0.54
  char-shakespeare  nats/char 1.46 / 4.57 [1.32]   char-shakespeare-small 1.63 / 4.43 [1.41]
  char-tang         nats/char 4.04 / 8.93 [4.13]   char-zh 3.49 / 8.66 [3.95]
  textvae-tang      kl/line 9.0 / 0.05 [9.0]   active units 32 / 0 [32]   well-formed steps 1.0 / 0.0 [1.0]
                    nll/char 5.6 / 8.9 [5.5]
"""
from __future__ import annotations

import operator

import pytest
import torch

from aigc import checkpoint as ckpt
from aigc.eval import evaluate
from aigc.eval import text as text_eval
from aigc.hub import WEIGHTS_DIR

pytestmark = pytest.mark.slow

N_SAMPLES = 300          # images per image model
TEXT_CHARS = 2000        # held-out characters per char-lm
VAE_LINES = 200          # held-out lines for the sentence VAE (10 interpolation paths)

LE, GE = operator.le, operator.ge
FLOORS = {
    "dcgan-mnist": {"domain_fd": (LE, 200), "label_acc": (GE, 0.9), "diversity": (GE, 0.6), "kid_randconv": (LE, 0.1)},
    "dcgan-fashion": {"domain_fd": (LE, 150), "label_acc": (GE, 0.75), "diversity": (GE, 0.6),
                      "kid_randconv": (LE, 0.1)},
    "vae-mnist": {"domain_fd": (LE, 350), "diversity": (GE, 0.4), "kid_randconv": (LE, 0.2)},
    "vae-fashion": {"domain_fd": (LE, 250), "diversity": (GE, 0.4), "kid_randconv": (LE, 0.2)},
    "vade-mnist": {"domain_fd": (LE, 200), "diversity": (GE, 0.4), "cluster_acc": (GE, 0.8)},
    "vade-fashion": {"domain_fd": (LE, 250), "diversity": (GE, 0.4), "cluster_acc": (GE, 0.45)},
    "seed-gan-mnist": {"domain_fd": (LE, 1000), "diversity": (GE, 0.4), "kid_randconv": (LE, 0.2)},
    "seed-gan-fashion": {"domain_fd": (LE, 750), "diversity": (GE, 0.4), "kid_randconv": (LE, 0.2)},
    "char-shakespeare": {"nats_per_char": (LE, 1.8)},
    "char-shakespeare-small": {"nats_per_char": (LE, 2.0)},
    "char-tang": {"nats_per_char": (LE, 5.5)},
    "char-zh": {"nats_per_char": (LE, 5.5)},
    "textvae-tang": {"kl_per_line": (GE, 3.0), "active_units": (GE, 16), "interp_well_formed": (GE, 0.8),
                     "nll_per_char": (LE, 7.0)},
}


def _load(name: str, untrained: bool):
    model = ckpt.from_pretrained(WEIGHTS_DIR / name)
    if untrained:                      # the same architecture (and tokenizer) at its initial weights
        torch.manual_seed(0)
        model.load_state_dict(type(model)(model.config).state_dict())
    return model


def measure(name: str, untrained: bool = False) -> dict:
    model = _load(name, untrained)
    if model.kind == "char-lm":
        return text_eval.score_heldout(model, max_chars=TEXT_CHARS)
    if model.kind == "text-vae":
        from aigc.pipelines.textvae import TextVAEPipeline
        pipe = TextVAEPipeline(model, name=name)
        return text_eval.evaluate_lines(pipe, text_eval.heldout_lines(pipe), n=VAE_LINES, pairs=10)
    metrics = [m for m in FLOORS[name] if m != "label_acc"] + (["label_acc"] if model.num_classes else [])
    return evaluate(model, model.meta["dataset"], metrics=metrics, n=N_SAMPLES, seed=0)


def test_every_shipped_model_has_a_floor():
    shipped = sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "model.safetensors").is_file())
    assert shipped == sorted(FLOORS)


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_shipped_model_meets_its_floor(name):
    res = measure(name)
    missed = {k: res[k] for k, (ok, bound) in FLOORS[name].items() if not ok(res[k], bound)}
    assert not missed, f"{name} below its floor: {missed} (floors {FLOORS[name]})"


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_untrained_model_fails_every_threshold(name):
    res = measure(name, untrained=True)
    passed = {k: res[k] for k, (ok, bound) in FLOORS[name].items() if ok(res[k], bound)}
    assert not passed, f"untrained {name} passes {passed}: that threshold proves nothing"
