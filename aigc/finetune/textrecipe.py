"""The text fine-tune's data recipe: held-out spans from several places of a story, and rehearsal
batches from the base's own training corpus.

    train, held, note = split_heldout_spans(story, block_size=96, share=0.15, spans=4)
    data = RehearsalData(story_data, corpus_data, share=0.5)   # half of each batch from the corpus

A short story's tail alone (a few hundred characters) is a noisy early-stop signal and one part of
its plot; spans from several places measure the whole story. Held-out spans are cut at line breaks
and never trained on: the training text is what lies between them, joined.
"""
from __future__ import annotations

import torch


def _snap(text: str, pos: int, reach: int) -> int:
    """`pos` moved forward to just after a line break within `reach`, else left as it is."""
    nl = text.find("\n", pos, pos + max(1, reach))
    return pos if nl == -1 else nl + 1


def heldout_span_bounds(text: str, block_size: int, share: float, spans: int,
                        max_chars: int | None = None) -> list[tuple[int, int]]:
    """[(start, end)] of `spans` held-out pieces spread evenly over `text` (each at least
    block_size + 2 characters, `share` of the text in all but at most about `max_chars`), cut at
    line breaks where one is near; [] when the text is too short to spare them (the caller falls
    back to the tail)."""
    n, k = len(text), max(1, int(spans))
    want = int(n * share) if max_chars is None else min(int(n * share), int(max_chars))
    each = max(block_size + 2, want // k)
    if k * each > n // 4 or n - k * each < block_size + 2:
        return []
    bounds, last_end = [], 0
    for i in range(k):
        centre = int((i + 0.5) * n / k)
        start = max(last_end, _snap(text, max(0, centre - each // 2), each // 4))
        end = min(n, _snap(text, start + each, each // 4))
        if end - start < block_size + 2:
            return []
        bounds.append((start, end))
        last_end = end
    return bounds


def split_heldout_spans(text: str, block_size: int, share: float, spans: int,
                        max_chars: int | None = None) -> tuple[str, str, str] | None:
    """(training text, held-out text, note), or None when the text is too short for the spans."""
    bounds = heldout_span_bounds(text, block_size, share, spans, max_chars)
    if not bounds:
        return None
    train, held, at = [], [], 0
    for s, e in bounds:
        train.append(text[at:s])
        held.append(text[s:e])
        at = e
    train.append(text[at:])
    held_n = sum(e - s for s, e in bounds)
    note = (f"held out {held_n:,} characters ({held_n / len(text):.0%}) in {len(bounds)} spans spread over the text "
            "to measure cross-entropy on text the model does not train on")
    return "".join(train), "".join(held), note


class RehearsalSource:
    """Batches whose last `share` of windows come from another text (rehearsal), the rest from the data."""

    def __init__(self, own, corpus_ids: torch.Tensor, block: int, share: float, device):
        self.own, self.block, self.share = own, block, share
        self.ids = corpus_ids.to(torch.int32).to(device)
        self.n = int(self.ids.numel())
        self.offsets = torch.arange(block + 1, device=self.ids.device)

    def __len__(self) -> int:
        return len(self.own)

    def split(self, b: int) -> int:
        """How many of `b` windows are rehearsal (at least one of each kind when b >= 2)."""
        m = round(self.share * b)
        return min(max(m, 1 if self.share > 0 else 0), b - 1) if b >= 2 else 0

    def get(self, idx: torch.Tensor, rng=None):
        m = self.split(len(idx))
        x, y = self.own.get(idx[:len(idx) - m], rng)
        if not m:
            return x, y
        if rng is not None:
            starts = rng.randint(0, self.n - self.block - 1, (m,)).to(self.ids.device)
        else:       # deterministic (tests): spread over the corpus
            starts = torch.linspace(0, self.n - self.block - 2, m).long().to(self.ids.device)
        w = self.ids[starts[:, None] + self.offsets].long()
        return torch.cat([x, w[:, :-1]]), torch.cat([y, w[:, 1:]])


class RehearsalData:
    """A TextData (the upload) whose training batches mix in windows of the base's corpus. Everything
    else (length, tokenizer, name, stats) is the upload's: epochs and reports count the upload."""

    def __init__(self, own, corpus, share: float):
        if not 0 < share < 1:
            raise ValueError(f"the rehearsal share must be more than 0 and below 1, not {share!r}")
        if corpus.block_size != own.block_size:
            raise ValueError("the rehearsal corpus must be cut in the upload's block size")
        self.own, self.corpus, self.share = own, corpus, float(share)

    def __getattr__(self, name):
        if name in ("own", "corpus", "share"):
            raise AttributeError(name)
        return getattr(self.own, name)

    def __len__(self) -> int:
        return len(self.own)

    def source(self, device) -> RehearsalSource:
        return RehearsalSource(self.own.source(device), self.corpus.ids, self.own.block_size, self.share, device)

    def stats(self) -> dict:
        return {**self.own.stats(), "rehearsal": {"corpus": self.corpus.name, "split": self.corpus.split,
                                                  "share": self.share, "chars": len(self.corpus.text)}}

    def model_meta(self) -> dict:
        return {"tokenizer": "tokenizer.json", "text_stats": self.stats()}


def rehearsal_corpus(dataset: str | None, tokenizer, block_size: int, data_dir=None):
    """(the base's TRAINING split as TextData, None) or (None, why not): never its held-out part."""
    from aigc.data.text import TEXT_DATASETS, load_text_dataset
    if not dataset or dataset not in TEXT_DATASETS:
        return None, f"the base's corpus ({dataset or 'unrecorded'}) is not a built-in text dataset"
    try:
        return load_text_dataset(dataset, "train", block_size, tokenizer=tokenizer, data_dir=data_dir), None
    except (OSError, ValueError) as e:
        return None, f"the base's corpus {dataset} is not available here ({type(e).__name__})"


def layers_to_freeze(train_layers: str, n_layer: int) -> str:
    """"all" -> ""; "no-embeddings" -> the token and position embeddings (the tied output layer too);
    "top-N" -> the embeddings and every block below the top N (the top N and the final norm train)."""
    if train_layers in (None, "", "all"):
        return ""
    emb = ["tok_emb", "pos_emb"]
    if train_layers == "no-embeddings":
        return ",".join(emb)
    if isinstance(train_layers, str) and train_layers.startswith("top-") and train_layers[4:].isdigit():
        top = int(train_layers[4:])
        if not 1 <= top <= n_layer:
            raise ValueError(f"train layers {train_layers}: the model has {n_layer} blocks (top-1 to top-{n_layer})")
        return ",".join(emb + [f"blocks.{i}" for i in range(n_layer - top)])
    raise ValueError(f"train layers must be all, no-embeddings or top-N (e.g. top-2), not {train_layers!r}")
