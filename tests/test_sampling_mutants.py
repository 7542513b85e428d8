"""The text sampler's edges (aigc/models/sampling.py), pinned exactly: the repetition penalty's
arithmetic, top-k / top-p at their bounds, the defaults, and draws at the very ends of the cdf."""
import pytest
import torch

from aigc.models import sampling
from aigc.models.sampling import apply_repetition_penalty, filter_logits, sample_next

INF = float("inf")


def _t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    out = apply_repetition_penalty(_t(2.0, -2.0, 1.0, 0.5, 0.0), [0, 1, 0, 3, 4], 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0, 0.25, 0.0]      # each seen token once; 2 is untouched
    assert apply_repetition_penalty(_t(2.0, -2.0), [0, 1], 0.5).tolist() == [4.0, -1.0]   # < 1 favours them


def test_repetition_penalty_of_one_or_empty_context_changes_nothing():
    logits = _t(2.0, -2.0, 1.0)
    assert apply_repetition_penalty(logits, [], 2.0).tolist() == [2.0, -2.0, 1.0]
    assert apply_repetition_penalty(logits, [0, 1], 1.0).tolist() == [2.0, -2.0, 1.0]
    apply_repetition_penalty(logits, [0, 1], 3.0)
    assert logits.tolist() == [2.0, -2.0, 1.0]                     # the input is not modified


@pytest.mark.parametrize("penalty", [0.0, -1.0])
def test_repetition_penalty_must_be_positive(penalty):
    with pytest.raises(ValueError, match=r"^repetition_penalty must be > 0$"):
        apply_repetition_penalty(_t(1.0, 2.0), [0], penalty)


def test_top_k_bounds_and_ties():
    logits = _t(3.0, 1.0, 2.0, 2.0, -1.0)
    assert torch.isfinite(filter_logits(logits, top_k=1)).tolist() == [True, False, False, False, False]
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [True, False, True, True, False]  # tie kept
    for k in (0, -1, 5, 9, None):                                   # no top-k filtering at all
        assert torch.equal(filter_logits(logits, top_k=k), logits), k
    filter_logits(logits, top_k=1)
    assert torch.isfinite(logits).all()                             # the input is not modified


def test_top_p_bounds_are_exclusive():
    logits = _t(0.0, -50.0)           # the second token's mass rounds away next to the first's
    for p in (0.0, 1.0, 1.5, None):
        assert torch.isfinite(filter_logits(logits, top_p=p)).all(), p
    assert torch.isfinite(filter_logits(logits, top_p=0.999)).tolist() == [True, False]


def test_top_p_keeps_the_smallest_set_reaching_p_exactly():
    logits = torch.zeros(4, dtype=torch.float64)      # 0.25 each: masses before are 0, .25, .5, .75 exactly
    assert int(torch.isfinite(filter_logits(logits, top_p=0.5)).sum()) == 2
    assert int(torch.isfinite(filter_logits(logits, top_p=0.25)).sum()) == 1
    assert int(torch.isfinite(filter_logits(logits, top_p=0.2500001)).sum()) == 2


def test_top_k_then_top_p():
    logits = _t(3.0, 1.0, 2.0, 0.0)
    out = filter_logits(logits, top_k=3, top_p=0.999)
    assert torch.isfinite(out).tolist() == [True, True, True, False]
    assert out[:3].tolist() == [3.0, 1.0, 2.0]                     # kept logits are unchanged


def _draws(n=400, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return [sample_next(_t(1.0, 0.0, 0.5, -0.5), [0, 2], generator=g, **kw) for _ in range(n)]


def test_sampler_defaults_are_plain_sampling():
    assert _draws() == _draws(temperature=1.0, top_k=None, top_p=None, repetition_penalty=1.0)
    assert _draws() != _draws(temperature=2.0)
    assert _draws() != _draws(repetition_penalty=2.0)
    assert set(_draws()) == {0, 1, 2, 3}


def test_sampler_follows_the_probabilities():
    g = torch.Generator().manual_seed(1)
    draws = [sample_next(_t(0.0, 0.0, -INF), [], generator=g) for _ in range(2000)]
    assert set(draws) == {0, 1} and 900 < draws.count(1) < 1100       # 0.5 each; the filtered one never
    g = torch.Generator().manual_seed(1)
    draws = [sample_next(_t(2.0, 0.0), [], temperature=0.5, generator=g) for _ in range(2000)]
    assert 25 < draws.count(1) < 80                                    # 1 / (1 + e^4) = 1.8 %


def test_temperature_zero_is_argmax_after_the_penalty():
    assert sample_next(_t(1.0, 3.0, 2.0), [], temperature=0) == 1
    assert sample_next(_t(1.0, 3.0, 2.0), [1], temperature=0, repetition_penalty=2.0) == 2
    assert sample_next(_t(1.0, 3.0, 2.0), [], temperature=1.0, top_k=1) == 1


@pytest.mark.parametrize("logits, u, expected", [
    ([0.0, 0.0], 1.0, 1),                  # u at the top of the cdf: the last token
    ([0.0, 0.0, -INF], 1.0, 1),            # ... stepping back over a filtered one
    ([0.0, -INF, -INF], 1.0, 0),           # ... over several, down to the first token
    ([-INF, 0.0, 0.0], 0.0, 1),            # u at the bottom: the first kept token, not a filtered one
    ([0.0, -INF, 0.0], 0.5, 2),            # u on a step of the cdf: the token above it
])
def test_draws_at_the_ends_of_the_cdf_land_on_kept_tokens(monkeypatch, logits, u, expected):
    monkeypatch.setattr(sampling.torch, "rand", lambda *a, **k: torch.tensor(u, dtype=torch.float64))
    assert sample_next(_t(*logits), []) == expected
