"""The text fine-tune's recipe: its settings (text_recipe: the short-text defaults below for an upload under
SMALL_CORPUS_CHARS on a saved base), held-out spans from several places of a story, and rehearsal batches from
the base's own training corpus, drawn from its paragraphs most like the story.

    recipe = text_recipe(spec, base, chars=len(text))                # lr, dropout, rehearsal, ... (a dict)
    train, held, note = split_heldout_spans(story, block_size=96, share=0.15, spans=4)
    like, info = paragraphs_like(train, corpus_data, chars=200_000)   # TextData of the nearest paragraphs
    data = RehearsalData(story_data, like, share=0.5)   # half of each batch from them

A short story's tail alone (a few hundred characters) is a noisy early-stop signal and one part of
its plot; spans from several places measure the whole story. Held-out spans are cut at line breaks
and never trained on: the training text is what lies between them, joined.
"""
from __future__ import annotations

import torch

# a saved char-lm on one short text, under SMALL_CORPUS_CHARS (bench/story_finetune.py measured these;
# bench/README.md); a longer text is not memorised in a run's budget and trains as any model does
TEXT_FINETUNE_LR = 1e-4         # with 75% rehearsal, a slower descent to a lower held-out score than 3e-4 (round 2)
TEXT_FINETUNE_PATIENCE = 8      # at 1e-4 the held-out score creeps down a long plateau: 4 evaluations stop too soon
TEXT_FINETUNE_EVAL_EVERY = 10   # a held-out score costs ~2 s on one thread: cheap enough to score every 10 steps
TEXT_FINETUNE_DROPOUT = 0.1     # with rehearsal, the best story held-out score of five recipes (bench/README.md)
TEXT_FINETUNE_LAYERS = "all"    # freezing the embeddings (tied to the output) scored worse on the held-out spans
TEXT_FINETUNE_REHEARSAL = 0.75  # 3/4 of each batch from the base's own corpus: beat 0.5 on the held-out spans, 2 seeds
TEXT_FINETUNE_REHEARSAL_LIKE = 200_000  # rehearse the corpus's paragraphs most like the story, ~7% of zh-modern (round 5)
TEXT_FINETUNE_HELDOUT_SPANS = 4     # four spans over the story, not its tail alone: a steadier early-stop score
TEXT_FINETUNE_HELDOUT_SHARE = 0.15  # ~680 of 4,561 characters held out (the tail was 412)


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


LIKE_MIN_CHARS = 40             # a shorter paragraph's score is a few characters' luck
LIKE_UNIGRAM_PRIOR = 1000.0     # a story's character frequencies lean on the corpus's until it has ~1,000 characters
LIKE_BIGRAM_PRIOR = 50.0        # a pair seen once in a short story nudges its probability, it does not set it


def _pair_lookup(ids: torch.Tensor, vocab: int):
    """A function (prev, cur) -> how often that pair occurs in `ids` (float64)."""
    keys, counts = torch.unique(ids[:-1] * vocab + ids[1:], return_counts=True)

    def count(prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        q = prev * vocab + cur
        i = torch.searchsorted(keys, q).clamp(max=max(0, keys.numel() - 1))
        if not keys.numel():
            return torch.zeros(q.shape, dtype=torch.float64)
        return torch.where(keys[i] == q, counts[i], 0).double()
    return count


def paragraph_scores(sample_ids: torch.Tensor, corpus_ids: torch.Tensor, sizes: list[int], vocab: int) -> torch.Tensor:
    """Per paragraph of the corpus (`sizes`: its characters, separator included, in order; they add up to
    the corpus), the mean log-likelihood ratio of a character-bigram model of the sample over one of the
    corpus (Moore & Lewis 2010): the higher, the more the paragraph reads like the sample rather than like
    the corpus at large (only the order is used). The sample's model is smoothed towards the corpus's (the
    priors above), so a character or pair a short sample lacks is unlikely in it, not impossible."""
    s, c = sample_ids.long(), corpus_ids.long()
    if sum(sizes) != c.numel():
        raise ValueError("the paragraph sizes do not add up to the corpus")
    cu = torch.bincount(c, minlength=vocab).double()
    su = torch.bincount(s, minlength=vocab).double()
    pc = (cu + 1) / (cu.sum() + vocab)                                   # the corpus's unigram, add-one
    ps = (su + LIKE_UNIGRAM_PRIOR * pc) / (su.sum() + LIKE_UNIGRAM_PRIOR)
    prev, cur = c[:-1], c[1:]
    lp_s = torch.log((_pair_lookup(s, vocab)(prev, cur) + LIKE_BIGRAM_PRIOR * ps[cur]) / (su[prev] + LIKE_BIGRAM_PRIOR))
    lp_c = torch.log((_pair_lookup(c, vocab)(prev, cur) + LIKE_BIGRAM_PRIOR * pc[cur]) / (cu[prev] + LIKE_BIGRAM_PRIOR))
    # position t (predicting c[t+1]) belongs to the paragraph holding character t+1
    size = torch.tensor(sizes)
    owner = torch.repeat_interleave(torch.arange(len(sizes)), size)[1:]
    total = torch.zeros(len(sizes), dtype=torch.float64).index_add_(0, owner, lp_s - lp_c)
    return total / size.clamp(min=1).double()


def paragraphs_like(sample: str, corpus, chars: int):
    """(TextData of the corpus's paragraphs most like `sample`, at least `chars` characters of them in corpus
    order, and a dict of what was kept), by paragraph_scores; (None, why) when no paragraph can be judged.
    A paragraph is what blank lines part when the corpus has them (a poem, a speech), else a line; those
    under LIKE_MIN_CHARS are passed over. The sample is the upload's TRAINING text: its held-out spans must
    not choose what it rehearses."""
    from aigc.data.text import TextData
    sep = "\n\n" if "\n\n" in corpus.text else "\n"
    paras = corpus.text.split(sep)
    sizes = [len(p) + len(sep) for p in paras]
    sizes[-1] -= len(sep)                                  # the last one has no separator after it
    if sum(sizes) != corpus.ids.numel():
        raise ValueError("the corpus text and its ids differ in length: cannot split it into paragraphs")
    scores = paragraph_scores(torch.tensor(corpus.tokenizer.encode(sample)), corpus.ids, sizes,
                              corpus.tokenizer.vocab_size)
    order = [i for i in torch.argsort(scores, descending=True, stable=True).tolist()
             if len(paras[i].strip()) >= LIKE_MIN_CHARS]
    kept, n = [], 0
    for i in order:
        if n >= chars:
            break
        kept.append(i)
        n += len(paras[i]) + len(sep)
    if n < corpus.block_size + 2:
        return None, f"no paragraph of {LIKE_MIN_CHARS} characters or more to choose from in {corpus.name}"
    kept.sort()
    text = "".join(paras[i] + sep for i in kept)
    info = {"paragraphs": len(kept), "of": len(paras), "chars": len(text), "asked": int(chars),
            "lowest_score": round(float(scores[kept].min()), 4),
            "nearest": paras[order[0]].strip()[:60].replace("\n", " ")}
    data = TextData(name=corpus.name, text=text, tokenizer=corpus.tokenizer, block_size=corpus.block_size,
                    split=corpus.split, info={"selected": info})
    return data, info


def text_recipe(spec, base, chars: int) -> dict:
    """The text fine-tune's settings for an upload of `chars` characters on `base` (a run.Base; `spec` a
    run.FinetuneSpec): the spec's, else the TEXT_FINETUNE_* defaults for a saved base and a short upload.
    A model trained from scratch, or a saved one on an upload of SMALL_CORPUS_CHARS or more, keeps its own
    learning rate and dropout, trains every layer, rehearses nothing: on a long upload the short-story recipe
    brakes against memorising that cannot happen (100 KB of licences learned a third less, bench/README.md)."""
    from aigc.data.uploads.text import SMALL_CORPUS_CHARS
    short = base.path is not None and chars < SMALL_CORPUS_CHARS
    pick = (lambda given, default, other: given if given is not None else (default if short else other))
    return {"lr": pick(spec.lr, TEXT_FINETUNE_LR, None),
            "dropout": pick(spec.dropout, TEXT_FINETUNE_DROPOUT, None),
            "train_layers": pick(spec.train_layers, TEXT_FINETUNE_LAYERS, "all"),
            "rehearsal": 0.0 if base.path is None else pick(spec.rehearsal, TEXT_FINETUNE_REHEARSAL, 0.0),
            "rehearsal_like": TEXT_FINETUNE_REHEARSAL_LIKE if spec.rehearsal_like is None else spec.rehearsal_like,
            "short_text": short,
            "patience": TEXT_FINETUNE_PATIENCE if spec.patience is None else spec.patience,
            "eval_every": TEXT_FINETUNE_EVAL_EVERY if spec.eval_every is None else spec.eval_every}


def recipe_line(recipe: dict, rehearsal_what: str = "") -> str:
    """The recipe in words, for the report, the card and bench/story_finetune.py."""
    lr = f"{recipe['lr']:g}" if recipe.get("lr") else "the model's default"
    drop = "the model's own" if recipe.get("dropout") is None else f"{recipe['dropout']:g} (while fine-tuning only)"
    reh = (f"{recipe['rehearsal']:.0%} of each batch from {rehearsal_what}" if recipe.get("rehearsal") and rehearsal_what
           else "off")
    which = "the short-text recipe: " if recipe.get("short_text") else ""
    return (f"recipe: {which}learning rate {lr}; dropout {drop}; layers trained: {recipe['train_layers']}; "
            f"rehearsal: {reh}; evaluated every {recipe['eval_every']} steps, patience {recipe['patience']}")


def heldout_split(text: str, block: int) -> tuple[str, str, str]:
    """Held-out spans from several places of the text; its tail alone when it is too short for them.
    A long text keeps at most TEXT_HELDOUT_MAX_CHARS out, as the tail does: the score reads a capped
    number of windows, so more held out would only take text from training."""
    from aigc.data.uploads import TEXT_HELDOUT_MAX_CHARS, split_heldout
    return (split_heldout_spans(text, block, TEXT_FINETUNE_HELDOUT_SHARE, TEXT_FINETUNE_HELDOUT_SPANS,
                                TEXT_HELDOUT_MAX_CHARS) or split_heldout(text, block))


def with_rehearsal(data, base, recipe: dict, report: dict):
    """(the data, with rehearsal batches when the recipe asks and the base's corpus is here; what it rehearses)."""
    if not recipe["rehearsal"]:
        return data, ""
    dataset = (base.config or {}).get("dataset")
    corpus, why = rehearsal_corpus(dataset, data.tokenizer, data.block_size)
    if corpus is None:
        recipe["rehearsal"] = 0.0
        report["rehearsal_note"] = f"rehearsal off: {why}"
        return data, ""
    what = f"{dataset}'s training paragraphs (held-out ones excluded)"
    if recipe["rehearsal_like"] and recipe["rehearsal_like"] < len(corpus.text):
        like, info = paragraphs_like(data.text, corpus, recipe["rehearsal_like"])
        if like is None:            # nothing to choose from: the whole corpus, at random, as before
            report["rehearsal_note"] = f"rehearsal from the whole corpus: {info}"
        else:
            corpus = like
            report["rehearsal_selected"] = info
            what = (f"the {info['paragraphs']:,} of {dataset}'s {info['of']:,} training paragraphs most like the "
                    f"upload ({info['chars']:,} characters; character-bigram cross-entropy difference)")
    return RehearsalData(data, corpus, recipe["rehearsal"]), what


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
