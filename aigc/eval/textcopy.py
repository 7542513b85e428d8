"""Text copy rate: how much of what a language model writes is lifted verbatim from its training text.

    meter = TextCopyMeter(story_text)       # the upload's 12-character spans, once
    meter(model)                            # {"text_copy_rate": 0.04, "text_copy_spans": 600}

The model continues fixed prompts (short openings of lines of the text itself, where a model that
memorised would carry on word for word) on fixed seeds; every 12-character span of the generated
characters (the prompt not included) is looked up in a set of the text's 12-character spans. The
share found is the copy rate: prose written afresh shares almost no 12-character span with a
5,000-character story, a memorising model shares most of them. Fast: one set lookup per span.
"""
from __future__ import annotations

SPAN = 12              # characters: longer than any common phrase, short enough to catch stitched copies
COPY_WARN = 0.2        # above this share a fine-tune is copying its upload rather than learning its style
PROMPT_CHARS = 6
SAMPLES = 4
SAMPLE_CHARS = 160
TEMPERATURE = 0.8      # the studio's default sampling temperature


def spans(text: str, n: int = SPAN) -> set[str]:
    """Every n-character span of `text` (a set, for lookup)."""
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def copied_share(generated: list[str], reference: set[str], n: int = SPAN) -> tuple[float, int]:
    """(share of the generated n-character spans found in `reference`, how many spans there were)."""
    total = copied = 0
    for g in generated:
        for i in range(len(g) - n + 1):
            total += 1
            copied += g[i:i + n] in reference
    return (copied / total if total else 0.0), total


def story_prompts(text: str, k: int = SAMPLES, length: int = PROMPT_CHARS) -> list[str]:
    """The openings of k lines spread evenly over the text (lines at least `length` long); when it
    has fewer such lines, openings at evenly spaced positions."""
    lines = [ln.strip() for ln in text.split("\n")]
    lines = [ln[:length] for ln in lines if len(ln) >= length]
    if len(lines) >= k:
        return [lines[round(i * (len(lines) - 1) / max(1, k - 1))] for i in range(k)]
    step = max(1, (len(text) - length) // k)
    return [text[i * step:i * step + length] for i in range(k)]


class TextCopyMeter:
    """The copy rate of a char-lm against one text, with fixed prompts and seeds (comparable over a run)."""

    def __init__(self, text: str, prompts: list[str] | None = None, samples: int = SAMPLES,
                 length: int = SAMPLE_CHARS, temperature: float = TEMPERATURE, n: int = SPAN):
        if len(text) < n:
            raise ValueError(f"the copy rate needs a text of at least {n} characters")
        self.reference = spans(text, n)
        self.prompts = prompts or story_prompts(text, samples)
        self.samples, self.length, self.temperature, self.n = samples, length, temperature, n

    def generate(self, model) -> list[str]:
        return [model.generate_text(self.prompts[s % len(self.prompts)], self.length, seed=s,
                                    temperature=self.temperature) for s in range(self.samples)]

    def __call__(self, model) -> dict:
        rate, total = copied_share(self.generate(model), self.reference, self.n)
        return {"text_copy_rate": rate, "text_copy_spans": total}

    def protocol(self) -> str:
        return (f"text_copy_rate: share of the {self.n}-character spans of {self.samples} continuations "
                f"({self.length} characters, temperature {self.temperature:g}, seeds 0-{self.samples - 1}, prompts "
                f"{', '.join(repr(p) for p in self.prompts)}) found verbatim in the training text")
