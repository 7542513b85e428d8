"""Sentence VAE (Bowman et al. 2016, "Generating Sentences from a Continuous Space") for short
lines of text: one Tang-poem clause (句) of 5 or 7 hanzi is one example.

    encoder   characters -> embedding -> bidirectional GRU -> last states (both directions)
              -> Linear -> (mu, logvar) of a diagonal Gaussian q(z|x)
    decoder   z -> tanh(Linear) = initial GRU state; every step reads [embedding(previous
              character), z]; output -> Linear -> logits through the (tied) embedding

An autoregressive decoder this strong can model a line without looking at z, and a plain
ELBO then drives q(z|x) onto the prior ("posterior collapse"). Three guards, all in `loss`:
  * KL annealing: the KL weight rises linearly from 0 to 1 over `kl_anneal_steps` (Bowman).
  * Word dropout: a share of the decoder's input characters is replaced by the unknown symbol,
    so the decoder must get what it cannot read from z (Bowman).
  * Free bits: each latent dimension's KL, averaged over the batch, costs at least `free_bits`
    nats (Kingma et al. 2016), so the optimiser gains nothing by squeezing a dimension below it.
Evaluation (`nll_bound`) uses the plain ELBO: no word dropout, no free bits, KL weight 1.

Special symbols live inside the model, not in the tokenizer: ids 0..V-1 are the tokenizer's
(0 = unknown), V = BOS (start of line), V+1 = EOS (end of line), V+2 = PAD. So tokenizer.json
holds only characters seen in the text, and no typed character can ever spell a control symbol
(a private-use character someone pastes in is simply unknown). The decoder never writes UNK,
BOS or PAD. The tokenizer travels with the weights as tokenizer.json (see CharLM).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from aigc.text.tokenizer import CharTokenizer
from aigc.models.base import GenerativeModel


@dataclass
class TextVAEConfig:
    # Characters of the tokenizer (id 0 = unknown); set from the training lines by the loop.
    vocab_size: int = 6973
    # Decoder steps: the longest line (7 hanzi) + EOS. The loop also reads it as tokens per
    # example. Longer inputs can still be encoded; decoding stops here.
    block_size: int = 8
    # Character embedding, shared by encoder, decoder input and output layer (tied): with ~7k
    # characters the embedding is most of the parameters, so 128 keeps the file near 8 MB and
    # the output softmax (the most expensive op on a CPU) cheap; 128 is plenty for characters.
    n_embd: int = 128
    # Encoder GRU width per direction; reading 5-7 characters needs little memory.
    enc_hidden: int = 192
    # Decoder GRU width: the decoder does the real work of writing a line (Bowman used 191 for
    # a word model; characters of classical Chinese carry about a word each).
    dec_hidden: int = 384
    # Latent size: 32 dimensions (Bowman: 13-32). With free bits each one must carry
    # information to be worth its KL, so the KL per line is at least ~latent_dim * free_bits.
    latent_dim: int = 32
    # Share of decoder input characters replaced by UNK during training (Bowman: 0.25-0.5 keeps
    # the KL away from zero). The first input (BOS) is never dropped.
    word_dropout: float = 0.3
    # Free bits per dimension, batch-averaged (Kingma et al. 2016): 0.25 nats x 32 = 8 nats of
    # information per line the optimiser may use "for free".
    free_bits: float = 0.25
    # Optimiser steps over which the KL weight rises 0 -> 1 (linear; Bowman used a sigmoid over a
    # few thousand steps). A 15-minute run on 2 CPU cores makes ~3,900 steps at batch 128; the
    # shipped textvae-tang used 400 (--set kl_anneal_steps=400) to spend most of its short run
    # on the true ELBO. With free bits the ramp matters less (the floor already keeps z in use).
    kl_anneal_steps: int = 1000
    # Dropout on the decoder's embeddings and outputs; off by default: one short run over
    # ~440k distinct lines does not memorise.
    dropout: float = 0.0


class TextVAE(GenerativeModel):
    kind = "text-vae"
    modality = "text"

    def __init__(self, config: TextVAEConfig):
        super().__init__(config)
        c = config
        if c.vocab_size < 2 or c.block_size < 2 or c.latent_dim < 1:
            raise ValueError("text-vae needs vocab_size >= 2, block_size >= 2 and latent_dim >= 1")
        if not 0 <= c.word_dropout < 1 or c.free_bits < 0 or not 0 <= c.dropout < 1:
            raise ValueError("text-vae: word_dropout and dropout in [0, 1), free_bits >= 0")
        self.bos_id, self.eos_id, self.pad_id = c.vocab_size, c.vocab_size + 1, c.vocab_size + 2
        self.emb = nn.Embedding(c.vocab_size + 3, c.n_embd)
        self.encoder = nn.GRU(c.n_embd, c.enc_hidden, batch_first=True, bidirectional=True)
        self.to_stats = nn.Linear(2 * c.enc_hidden, 2 * c.latent_dim)
        self.z_to_h = nn.Linear(c.latent_dim, c.dec_hidden)
        self.decoder = nn.GRU(c.n_embd + c.latent_dim, c.dec_hidden, batch_first=True)
        self.out = nn.Linear(c.dec_hidden, c.n_embd)      # then logits through emb.weight (tied)
        self.drop = nn.Dropout(c.dropout)
        nn.init.normal_(self.emb.weight, std=0.1)
        self.tokenizer: CharTokenizer | None = None

    # -- description ------------------------------------------------------------------------------
    @property
    def block_size(self) -> int:
        return self.config.block_size

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- tokenizer (same files as CharLM) ---------------------------------------------------------
    def set_tokenizer(self, tokenizer: CharTokenizer) -> "TextVAE":
        if tokenizer.vocab_size != self.config.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} symbols, the model's vocab_size is "
                             f"{self.config.vocab_size}")
        self.tokenizer = tokenizer
        return self

    def extra_files(self) -> dict:
        return {} if self.tokenizer is None else {"tokenizer.json": self.tokenizer.to_json()}

    def load_extra_files(self, directory) -> None:
        path = Path(directory) / "tokenizer.json"
        if not path.is_file():
            raise ValueError("tokenizer.json is missing beside the weights (a text-vae needs its vocabulary)")
        if path.stat().st_size > 16 << 20:
            raise ValueError("tokenizer.json is implausibly large")
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"tokenizer.json is not valid JSON ({e})") from None
        self.set_tokenizer(CharTokenizer.from_json(obj))

    def batch(self, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Lines -> (ids N x T padded with PAD, lengths N) on the model's device."""
        if self.tokenizer is None:
            raise ValueError("this text-vae has no tokenizer attached")
        enc = [self.tokenizer.encode(s) for s in lines]
        if any(len(e) == 0 for e in enc):
            raise ValueError("cannot encode an empty line")
        T = max(len(e) for e in enc)
        ids = torch.full((len(enc), T), self.pad_id, dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, :len(e)] = torch.tensor(e)
        return ids.to(self.device), torch.tensor([len(e) for e in enc], device=self.device)

    # -- encoder ----------------------------------------------------------------------------------
    def encode(self, ids: torch.Tensor, lengths: torch.Tensor | None = None):
        """ids: N x T characters (PAD or -1 after each line's end) -> (mu, logvar), both N x latent_dim."""
        ids = ids.masked_fill(ids < 0, self.pad_id)
        if lengths is None:
            lengths = (ids != self.pad_id).sum(1)
        packed = pack_padded_sequence(self.emb(ids), lengths.cpu().clamp_min(1), batch_first=True,
                                      enforce_sorted=False)
        _, h = self.encoder(packed)                       # 2 x N x H: last state of each direction
        mu, logvar = self.to_stats(torch.cat([h[0], h[1]], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)               # keeps exp(logvar) finite early on

    # -- decoder ----------------------------------------------------------------------------------
    def _hidden(self, z: torch.Tensor, inputs: torch.Tensor, h: torch.Tensor | None = None):
        """Teacher-forced (or one-step) decoder: inputs N x T ids -> (GRU outputs N x T x H, state)."""
        if h is None:
            h = torch.tanh(self.z_to_h(z))[None]
        x = torch.cat([self.drop(self.emb(inputs)), z[:, None, :].expand(-1, inputs.shape[1], -1)], 2)
        return self.decoder(x, h)

    def _project(self, y: torch.Tensor) -> torch.Tensor:
        """GRU outputs (... x H) -> logits (... x V+3) through the tied embedding."""
        return F.linear(self.drop(self.out(y)), self.emb.weight)

    def _logits(self, z: torch.Tensor, inputs: torch.Tensor, h: torch.Tensor | None = None):
        y, h = self._hidden(z, inputs, h)
        return self._project(y), h

    @torch.no_grad()
    def decode(self, z: torch.Tensor, greedy: bool = True, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents N x D -> ids N x block_size: characters, then EOS, then PAD. A line with no EOS
        within block_size steps is block_size characters long (too long to be a clause).
        greedy=True (or temperature 0) takes the argmax; otherwise one draw per step from the
        softmax at `temperature`, made on the CPU with `generator` (a seed names the line)."""
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        greedy = greedy or temperature == 0
        was_training = self.training
        self.eval()
        try:
            z = z.to(self.device, torch.float32)
            n = z.shape[0]
            out = torch.full((n, self.config.block_size), self.pad_id, dtype=torch.long)
            prev = torch.full((n, 1), self.bos_id, dtype=torch.long, device=self.device)
            done = torch.zeros(n, dtype=torch.bool)
            h = None
            for t in range(self.config.block_size):
                logits, h = self._logits(z, prev, h)
                last = logits[:, -1].float().cpu()
                last[:, [0, self.bos_id, self.pad_id]] = float("-inf")   # never write UNK/BOS/PAD
                if greedy:
                    nxt = last.argmax(1)
                else:
                    nxt = torch.multinomial(torch.softmax(last / temperature, 1), 1, generator=generator)[:, 0]
                out[:, t] = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
                done |= nxt == self.eos_id
                if done.all():
                    break
                prev = nxt[:, None].to(self.device)
            return out
        finally:
            self.train(was_training)

    def ids_to_text(self, ids) -> str:
        """One decoded row -> its characters (up to EOS)."""
        chars = []
        for i in (ids.tolist() if torch.is_tensor(ids) else ids):
            if i == self.eos_id or i == self.pad_id:
                break
            chars.append(int(i))
        return self.tokenizer.decode(chars)

    # -- the objective ----------------------------------------------------------------------------
    def _targets(self, ids: torch.Tensor, lengths: torch.Tensor):
        """Decoder inputs [BOS, c1..cn] and targets [c1..cn, EOS], PAD after; both N x (T+1)."""
        n, T = ids.shape
        inputs = torch.cat([torch.full((n, 1), self.bos_id, dtype=torch.long, device=ids.device), ids], 1)
        targets = torch.cat([ids, torch.full((n, 1), self.pad_id, dtype=torch.long, device=ids.device)], 1)
        targets[torch.arange(n, device=ids.device), lengths] = self.eos_id
        return inputs, targets

    def terms(self, ids: torch.Tensor, lengths: torch.Tensor, eps: torch.Tensor | None = None,
              keep: torch.Tensor | None = None, z: torch.Tensor | None = None) -> dict:
        """Per-line reconstruction (nats), KL (nats) and KL per dimension.
        eps: N x D noise for z = mu + sigma * eps (None: z = mu). keep: N x (T+1) bool mask of
        decoder inputs kept (the rest become UNK: word dropout); None keeps all."""
        ids = ids.masked_fill(ids < 0, self.pad_id)
        mu, logvar = self.encode(ids, lengths)
        if z is None:
            z = mu if eps is None else mu + (0.5 * logvar).exp() * eps.to(mu)
        inputs, targets = self._targets(ids, lengths)
        if keep is not None:
            inputs = torch.where(keep | (inputs == self.bos_id) | (inputs == self.pad_id), inputs,
                                 torch.zeros_like(inputs))
        y, _ = self._hidden(z, inputs)
        scored = targets != self.pad_id       # the softmax is most of the cost: skip padding
        logits = self._project(y[scored])
        ce = torch.zeros(targets.shape, device=ids.device).masked_scatter(
            scored, F.cross_entropy(logits.float(), targets[scored], reduction="none"))
        kl_dim = 0.5 * (mu.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float())
        return {"rec": ce.sum(1), "kl": kl_dim.sum(1), "kl_dim": kl_dim, "mu": mu, "logvar": logvar}

    def kl_weight(self, step: int) -> float:
        return min(1.0, step / max(1, self.config.kl_anneal_steps))

    def loss(self, ids: torch.Tensor, lengths: torch.Tensor, step: int, eps: torch.Tensor,
             keep: torch.Tensor) -> dict:
        """The training loss (mean over lines): rec + beta * sum_d max(batch-mean KL_d, free_bits)."""
        t = self.terms(ids, lengths, eps, keep)
        kl_fb = t["kl_dim"].mean(0).clamp_min(self.config.free_bits).sum()
        beta = self.kl_weight(step)
        rec, kl = t["rec"].mean(), t["kl"].mean()
        return {"loss": rec + beta * kl_fb, "rec": rec, "kl": kl, "beta": beta}

    def forward(self, ids, lengths, step: int = 0, eps=None, keep=None):
        return self.loss(ids, lengths, step, eps, keep)

    @torch.no_grad()
    def nll_bound(self, ids: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Negative ELBO per line (nats) with one posterior sample, plus its two terms."""
        was_training = self.training
        self.eval()
        try:
            eps = torch.randn(ids.shape[0], self.latent_dim, generator=generator)
            t = self.terms(ids, lengths, eps.to(self.device))
        finally:
            self.train(was_training)
        return {"nll": t["rec"] + t["kl"], "rec": t["rec"], "kl": t["kl"], "mu": t["mu"], "logvar": t["logvar"]}

    # -- the training loop's hooks ----------------------------------------------------------------
    def sample(self, n: int, *, generator=None, temperature: float = 1.0, **_) -> list[str]:
        z = torch.randn(n, self.latent_dim, generator=generator)
        ids = self.decode(z, greedy=temperature == 0, temperature=temperature or 1.0, generator=generator)
        return [self.ids_to_text(r) for r in ids]

    def preview_text(self, n: int = 8, length: int = 0) -> str:
        """Greedy decodes of fixed prior draws (seed 12345), for the loop's periodic samples."""
        lines = self.sample(n, generator=torch.Generator().manual_seed(12345), temperature=0)
        return "--- greedy decodes of z ~ N(0, I), seed 12345 ---\n" + "\n".join(lines) + "\n"
