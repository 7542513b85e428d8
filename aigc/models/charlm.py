"""Character-level language model: a small GPT (Radford et al. 2019) in the manner of nanoGPT.

A causal transformer reads up to `block_size` characters and predicts the next one. Layout:
token + learned position embeddings -> n_layer x [pre-LayerNorm attention, pre-LayerNorm MLP]
-> final LayerNorm -> logits through the (tied) token embedding. Attention is
`F.scaled_dot_product_attention(is_causal=True)`, which picks flash/memory-efficient kernels on a
GPU and a fused kernel on CPU.

Generation (`generate`) is an iterator that yields one token id at a time, so a UI can stream
text as it is written. It keeps a key/value cache: the prompt is read once, then every new token
costs one position of attention instead of a whole window. When the window is full the context
slides: it is cut to its last `block_size - block_size // 4` tokens and read again, so each new
token still sees at least three quarters of a window. The plain path (`use_cache=False`) follows
exactly the same context rule, recomputing the window for every token, and therefore gives the
same tokens for the same seed (tests/test_charlm.py checks it).

Evaluation (`nll`, `nats_per_char`, `bits_per_char`) scores every character of a long text once,
with windows that overlap by half (see `nll`).

The tokenizer travels with the weights: `extra_files()` writes tokenizer.json beside
model.safetensors and `load_extra_files` reads it back (aigc.checkpoint calls both).
Nothing here touches CUDA at import; the model works on whichever device it is moved to.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aigc.text.tokenizer import CharTokenizer
from aigc.models.base import GenerativeModel
from aigc.models.sampling import sample_next

CPU_FP32_ATTENTION = True   # CPU bf16 training: run attention in fp32, see CausalSelfAttention.forward


@dataclass
class CharLMConfig:
    # Set from the training text's tokenizer (the loop passes it); Shakespeare needs 85.
    vocab_size: int = 85
    # Context in characters. 256 is ~4 lines of verse, enough to see the speaker's name and the
    # metre; attention cost grows with its square and gains flatten beyond this for characters.
    block_size: int = 256
    # Depth: composition of features (spelling -> words -> phrasing). 6 is nanoGPT's
    # Shakespeare choice; depth buys more than width at this size.
    n_layer: int = 6
    # Heads: several attention patterns per layer (previous char, word start, line start...);
    # n_embd / n_head = 64 is the usual head size and keeps SDPA on its fast kernels.
    n_head: int = 6
    # Width of the residual stream; parameters grow with its square (12 * n_layer * n_embd^2).
    n_embd: int = 384
    # Regularises against memorising the 4M-character corpus over many epochs; 0 for short runs.
    dropout: float = 0.1
    # Biases in Linear/LayerNorm: nanoGPT found them unnecessary (slightly better and faster).
    bias: bool = False


# -- the network -----------------------------------------------------------------------------------
class CausalSelfAttention(nn.Module):
    def __init__(self, c: CharLMConfig):
        super().__init__()
        if c.n_embd % c.n_head:
            raise ValueError(f"n_embd {c.n_embd} is not divisible by n_head {c.n_head}")
        self.n_head = c.n_head
        self.qkv = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = c.dropout
        self.resid_drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor, cache: tuple | None = None):
        """x: B x T x C. `cache`: this layer's (keys, values) of earlier positions, or None.
        Returns (output, (keys, values) including these positions)."""
        B, T, C = x.shape
        if cache is not None and T > 1:
            raise ValueError("a cached step takes one token at a time")
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        # With a cache, T is 1: the new position may attend to every cached one (no mask needed).
        causal = cache is None and T > 1
        p = self.dropout if self.training else 0.0
        if CPU_FP32_ATTENTION and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # PyTorch's fp32 CPU attention kernel is faster than its bf16 one; the matmuls stay bf16
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal, dropout_p=p)
            y = y.to(q.dtype)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, c: CharLMConfig):
        super().__init__()
        self.fc = nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.proj = nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm residual block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, c: CharLMConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.attn = CausalSelfAttention(c)
        self.ln2 = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.mlp = MLP(c)

    def forward(self, x, cache=None):
        a, kv = self.attn(self.ln1(x), cache)
        x = x + a
        return x + self.mlp(self.ln2(x)), kv


class CharLM(GenerativeModel):
    kind = "char-lm"
    modality = "text"

    def __init__(self, config: CharLMConfig):
        super().__init__(config)
        c = config
        if c.vocab_size < 2 or c.block_size < 1:
            raise ValueError("char-lm needs vocab_size >= 2 and block_size >= 1")
        self.tok_emb = nn.Embedding(c.vocab_size, c.n_embd)
        self.pos_emb = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        # The output layer is the token embedding itself (weight tying, Press & Wolf 2017): fewer
        # parameters, and one tensor in the checkpoint (safetensors refuses shared tensors).
        self.tokenizer: CharTokenizer | None = None
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):   # residual projections: GPT-2's 1/sqrt(2 * depth) scaling
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * max(1, c.n_layer)))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    # -- description ------------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return 0            # no latent space: randomness enters through sampling

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def sample(self, *args, **kwargs):
        raise NotImplementedError("char-lm makes text: use generate(prompt_ids, ...) or generate_text(...)")

    # -- forward ----------------------------------------------------------------------------------
    def _logits(self, idx: torch.Tensor, caches: list | None = None, pos0: int = 0):
        """idx: B x T ids at positions pos0..pos0+T-1 -> (logits B x T x V, new per-layer caches)."""
        T = idx.shape[1]
        if pos0 + T > self.config.block_size:
            raise ValueError(f"{pos0 + T} positions exceed the context window of {self.config.block_size}")
        pos = torch.arange(pos0, pos0 + T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        new = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if caches is None else caches[i])
            new.append(kv)
        x = self.ln_f(x)
        return F.linear(x, self.tok_emb.weight), new

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx: B x T token ids -> (logits B x T x V, mean cross-entropy in nats or None)."""
        logits, _ = self._logits(idx)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return logits, loss

    # -- tokenizer --------------------------------------------------------------------------------
    def set_tokenizer(self, tokenizer: CharTokenizer) -> "CharLM":
        if tokenizer.vocab_size != self.config.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} symbols, the model's vocab_size is "
                             f"{self.config.vocab_size}")
        self.tokenizer = tokenizer
        return self

    def _need_tokenizer(self) -> CharTokenizer:
        if self.tokenizer is None:
            raise ValueError("this char-lm has no tokenizer attached (set_tokenizer, or load a saved model)")
        return self.tokenizer

    @torch.no_grad()
    def grow_vocab(self, tokenizer: CharTokenizer) -> int:
        """Adopt a tokenizer that extends this model's (a fine-tune's new characters) -> symbols added.
        Old rows, and so the old characters' logits, stay as they are; a new row starts at the mean
        embedding, so its logit is the mean logit: far below the likely characters until trained."""
        old = self._need_tokenizer()
        if not tokenizer.extends(old):
            raise ValueError("a grown tokenizer must keep this model's vocabulary as its first symbols")
        w = self.tok_emb.weight
        added = tokenizer.vocab_size - old.vocab_size
        emb = nn.Embedding(tokenizer.vocab_size, w.shape[1], device=w.device, dtype=w.dtype)
        emb.weight.copy_(torch.cat([w, w.mean(0, keepdim=True).expand(added, -1)]))
        emb.train(self.training)
        self.tok_emb, self.config.vocab_size, self.tokenizer = emb, tokenizer.vocab_size, tokenizer
        return added

    def extra_files(self) -> dict:
        return {} if self.tokenizer is None else {"tokenizer.json": self.tokenizer.to_json()}

    def load_extra_files(self, directory) -> None:
        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise ValueError("tokenizer.json is missing beside the weights (a char-lm needs its vocabulary)")
        if path.stat().st_size > 16 << 20:
            raise ValueError("tokenizer.json is implausibly large")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"tokenizer.json is not valid JSON ({e})") from None
        self.set_tokenizer(CharTokenizer.from_json(obj))

    # -- generation -------------------------------------------------------------------------------
    def _start_ids(self, prompt_ids) -> list[int]:
        ids = [int(i) for i in (prompt_ids.tolist() if torch.is_tensor(prompt_ids) else prompt_ids)]
        bad = [i for i in ids if not 0 <= i < self.config.vocab_size]
        if bad:
            raise ValueError(f"token id(s) {bad[:5]} outside the vocabulary of {self.config.vocab_size}")
        if not ids:   # an empty prompt starts after a newline (or the unknown symbol)
            nl = self.tokenizer.stoi.get("\n") if self.tokenizer is not None else None
            ids = [nl if nl is not None else 0]
        return ids

    @torch.no_grad()
    def generate(self, prompt_ids: Sequence[int] | torch.Tensor, max_new: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
                 generator: torch.Generator | None = None, use_cache: bool = True,
                 allowed=None) -> Iterator[int]:
        """Yield up to `max_new` new token ids, one at a time (stop early by closing the iterator).

        temperature 0 is greedy (argmax); otherwise logits / temperature, then top-k, then top-p
        (nucleus) filtering, then one draw from `generator` (a CPU torch.Generator; a fresh
        randomly seeded one if None). The draw happens on the CPU whatever the model's device, so
        a seed names the same text on any machine up to floating-point differences in the logits.
        repetition_penalty > 1 lowers the logits of characters already in the context (CTRL,
        Keskar et al. 2019); for a character model keep it near 1 (<= 1.2), since nearly every
        letter is "already in the context". The unknown symbol is never generated.
        `allowed`, if given, is called before each draw with the ids generated so far and returns
        a bool mask over the vocabulary (True = may be written) or None (no restriction): a
        decoding constraint such as a poem form (aigc.text.forms). The mask is applied before
        temperature and top-k/top-p, so those choose among the allowed tokens only.
        """
        if max_new < 0:
            raise ValueError("max_new must be >= 0")
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        T = self.config.block_size
        keep = max(1, T - T // 4)          # context kept when the window slides
        ctx = self._start_ids(prompt_ids)[-T:]
        dev = self.device
        was_training = self.training
        self.eval()
        try:
            caches, n_cached = None, 0
            new: list[int] = []
            for _ in range(max_new):
                if use_cache:
                    if caches is None:     # (re)read the whole context
                        logits, caches = self._logits(torch.tensor([ctx], device=dev))
                    else:                  # one new position against the cache
                        logits, caches = self._logits(torch.tensor([ctx[-1:]], device=dev), caches, n_cached)
                    n_cached = len(ctx)
                else:
                    logits, _ = self._logits(torch.tensor([ctx], device=dev))
                last = logits[0, -1].float()
                if self.tokenizer is not None:     # never *write* the unknown symbol
                    last[self.tokenizer.unk_id] = float("-inf")
                if allowed is not None:
                    mask = allowed(new)
                    if mask is not None:
                        last = last.masked_fill(~mask.to(last.device), float("-inf"))
                nxt = sample_next(last, ctx, temperature, top_k, top_p, repetition_penalty, generator)
                yield nxt
                new.append(nxt)
                ctx.append(nxt)
                if len(ctx) > T:           # window full: slide, and read the kept context afresh
                    ctx = ctx[-keep:]
                    caches, n_cached = None, 0
        finally:
            self.train(was_training)

    def generate_text(self, prompt: str, max_new: int, seed: int | None = None, **kwargs) -> str:
        """Convenience: prompt string -> continuation string (without the prompt)."""
        tok = self._need_tokenizer()
        g = None
        if seed is not None:
            g = torch.Generator().manual_seed(int(seed))
        return tok.decode(self.generate(tok.encode(prompt), max_new, generator=g, **kwargs))

    preview_prompts = ("\n", "ROMEO.\n", "The ", "【五言绝句】", "【七言律诗】")   # those a vocabulary can write

    def preview_text(self, n: int = 2, length: int = 160) -> str:
        """A few continuations on fixed seeds, for the training loop's periodic samples."""
        tok = self._need_tokenizer()
        prompts = [p for p in self.preview_prompts if tok.count_unknown(p) == 0] or [""]
        parts = []
        for seed in range(n):
            prompt = prompts[seed % len(prompts)]
            text = self.generate_text(prompt, length, seed=seed, temperature=0.8)
            parts.append(f"--- seed {seed}, temperature 0.8, prompt {prompt!r} ---\n{prompt}{text}\n")
        return "\n".join(parts)

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def nll(self, ids, stride: int | None = None, max_windows: int | None = None,
            batch_size: int = 32) -> tuple[float, int]:
        """Total negative log-likelihood (nats) of a text, and how many characters were scored.

        Windows of block_size characters start every `stride` (default block_size // 2)
        characters, the last one flush with the end of the text. The first window scores all its
        characters; every later one scores only the characters the previous window did not reach
        (its last `stride`), each of them seen with at least block_size - stride characters of
        context. So every character after the first is predicted exactly once, almost always with
        a long context, and the score does not depend on where windows happen to start.
        `max_windows` evaluates an evenly spaced subset of those windows (each still scores only
        its new part with full context): an unbiased, faster estimate for periodic evaluation.
        Runs in fp32 with dropout off. `ids` may be a string (encoded with the tokenizer).
        """
        if isinstance(ids, str):
            ids = self._need_tokenizer().encode(ids)
        ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1).cpu()
        n = ids.numel()
        if n < 2:
            raise ValueError("need at least two characters to score")
        T = min(self.config.block_size, n - 1)
        s = max(1, min(stride or self.config.block_size // 2, T))
        starts = list(range(0, n - 1 - T + 1, s))
        if starts[-1] != n - 1 - T:
            starts.append(n - 1 - T)
        score_from = [0] + [T - (b - a) for a, b in zip(starts, starts[1:])]
        order = list(range(len(starts)))
        if max_windows is not None and max_windows < len(starts):
            order = torch.linspace(0, len(starts) - 1, max(1, max_windows)).round().long().unique().tolist()
        offsets = torch.arange(T + 1)
        dev = self.device
        was_training = self.training
        self.eval()
        total, count = 0.0, 0
        try:
            for i in range(0, len(order), batch_size):
                chunk = order[i:i + batch_size]
                w = ids[torch.tensor([starts[k] for k in chunk])[:, None] + offsets].to(dev)
                mask = torch.arange(T)[None, :] >= torch.tensor([score_from[k] for k in chunk])[:, None]
                mask = mask.to(dev)
                logits, _ = self._logits(w[:, :-1])
                ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                                     reduction="none").view(w.shape[0], T)
                total += float((ce * mask).sum())
                count += int(mask.sum())
        finally:
            self.train(was_training)
        return total, count

    def nats_per_char(self, ids, **kwargs) -> float:
        total, count = self.nll(ids, **kwargs)
        return total / count

    def bits_per_char(self, ids, **kwargs) -> float:
        return self.nats_per_char(ids, **kwargs) / math.log(2)
