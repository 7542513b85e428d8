"""Next-token choice from a language model's logits: repetition penalty, top-k / top-p, one draw."""
from __future__ import annotations

from typing import Sequence

import torch


def apply_repetition_penalty(logits: torch.Tensor, context: Sequence[int], penalty: float) -> torch.Tensor:
    """CTRL's penalty: logits of tokens in `context` are divided by `penalty` if positive and
    multiplied by it if negative (so they always become less likely for penalty > 1)."""
    if penalty == 1.0 or not len(context):
        return logits
    if penalty <= 0:
        raise ValueError("repetition_penalty must be > 0")
    idx = torch.tensor(sorted(set(int(i) for i in context)), device=logits.device)
    sel = logits[idx]
    logits = logits.clone()
    logits[idx] = torch.where(sel > 0, sel / penalty, sel * penalty)
    return logits


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """1-D logits -> logits with everything outside the top-k / nucleus set to -inf.

    top_k keeps the k largest (ties at the k-th value are kept too); top_p keeps the smallest set
    of most likely tokens whose probability reaches p (the most likely token is always kept)."""
    logits = logits.clone()
    if top_k is not None and top_k > 0 and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if top_p is not None and 0 < top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs       # mass of the strictly more likely tokens
        drop = before >= top_p
        drop[0] = False
        logits[order[drop]] = float("-inf")
    return logits


def sample_next(logits: torch.Tensor, context: Sequence[int], temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                generator: torch.Generator | None = None) -> int:
    """One next-token choice from the last position's logits (1-D), on the CPU in float64."""
    logits = logits.detach().float().cpu().double()
    logits = apply_repetition_penalty(logits, context, repetition_penalty)
    if temperature == 0:
        return int(torch.argmax(logits))
    logits = filter_logits(logits / temperature, top_k, top_p)
    probs = torch.softmax(logits, dim=-1)
    cdf = torch.cumsum(probs, dim=-1)
    u = torch.rand((), generator=generator, dtype=torch.float64) * cdf[-1]
    i = int(torch.searchsorted(cdf, u, right=True))
    i = min(i, probs.numel() - 1)
    while probs[i] == 0 and i > 0:     # u at the very top of the cdf: step back to a kept token
        i -= 1
    return i
