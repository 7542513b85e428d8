"""What the loop does differently for images and for text, as one small strategy per modality.

The loop asks its task for the training data, the throughput unit, the periodic samples and the
held-out measurement; it never tests the modality itself."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from aigc import checkpoint as ckpt
from aigc.data.grid import make_grid, to_uint8
from aigc.kinds import make_config

TEXT_EVAL_WINDOWS = 400     # held-out windows per periodic text evaluation: seconds on a CPU


class ImageTask:
    rate_key = "img_per_s"

    def __init__(self, heldout=None):
        self.heldout = heldout

    def load_data(self, opts, data):
        from aigc.data import load_dataset
        return data if data is not None else load_dataset(opts.data, "train")

    def eval_metric(self, asked: str, data) -> str:
        return asked

    def check_base(self, base, data, init_from: str) -> None:
        if base.image_shape != data.shape:
            raise ValueError(f"--init-from {init_from} makes {base.image_shape} images; the data is {data.shape}")

    def attach(self, model, data) -> None:
        """Give a new model what the data carries beside the examples (images: nothing)."""

    def rate(self, examples_per_s: float, model) -> float:
        return examples_per_s

    def batch(self, x, channels_last: bool):
        return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x

    def save_samples(self, model, device, path: Path) -> None:
        """A grid of 64 samples on fixed seeds, so that grids of one run compare step to step."""
        g = torch.Generator().manual_seed(12345)
        z = model.sample_latent(64, generator=g).to(device)     # a VaDE draws from its mixture
        labels = torch.arange(64, device=device) % model.num_classes if model.num_classes else None
        img = make_grid(to_uint8(model.sample(64, z=z, labels=labels)), nrow=8)
        with ckpt.atomic_path(path.with_suffix(".png")) as tmp:
            img.save(tmp, format="PNG")

    def evaluate(self, model, data, names: list[str], eval_n: int, device) -> dict:
        from aigc.data.images import canonical_name
        from aigc.eval import evaluate
        try:
            canonical_name(data.name)
            reference = None            # a built-in dataset: compared with its own splits
        except ValueError:
            reference = data            # an upload has no test split: compared with itself
        return evaluate(model, data.name, metrics=names, n=eval_n, device=str(device), seed=0, reference=reference)


class TextTask(ImageTask):
    rate_key = "tok_per_s"

    def __init__(self, heldout=None):
        super().__init__(heldout)
        self._val_ids, self._val_what = None, ""

    def load_data(self, opts, data):
        """The training text, in the block size (and tokenizer) the model will have."""
        if data is not None:
            return data
        from aigc.data.lines import LINE_DATASETS, load_line_dataset
        from aigc.data.text import load_text_dataset
        base = ckpt.from_pretrained(opts.init_from) if opts.init_from else None
        if opts.data in LINE_DATASETS:            # one line per example (the sentence VAE)
            return load_line_dataset(opts.data, "train", tokenizer=base.tokenizer if base else None)
        if base is not None:
            return load_text_dataset(opts.data, "train", base.config.block_size, tokenizer=base.tokenizer)
        block = make_config(opts.model, tiny=opts.tiny, **opts.config).block_size
        return load_text_dataset(opts.data, "train", block)

    def eval_metric(self, asked: str, data) -> str:
        if asked == "domain_fd":                  # the image default means nothing for text
            return getattr(data, "eval_metric", "nats_per_char")
        return asked

    def check_base(self, base, data, init_from: str) -> None:
        if getattr(data, "tokenizer", None) != base.tokenizer:
            raise ValueError(f"--init-from {init_from}: the text must be encoded with that model's tokenizer")

    def attach(self, model, data) -> None:
        if getattr(data, "tokenizer", None) is not None:
            model.set_tokenizer(data.tokenizer)   # saved beside the weights as tokenizer.json

    def rate(self, examples_per_s: float, model) -> float:
        return examples_per_s * model.config.block_size

    def batch(self, x, channels_last: bool):
        return x

    def save_samples(self, model, device, path: Path) -> None:
        ckpt.atomic_write_text(path.with_suffix(".txt"), model.preview_text())

    def evaluate(self, model, data, names: list[str], eval_n: int, device) -> dict:
        """Held-out nats/char on an evenly spaced subset of full-context windows (see CharLM.nll)."""
        windows = max(1, min(TEXT_EVAL_WINDOWS, int(eval_n)))
        if self._val_ids is None:
            if self.heldout is not None:
                self._val_ids = getattr(self.heldout, "ids", self.heldout)
                self._val_what = f"a held-out slice of {data.name} ({len(self._val_ids):,} characters)"
            else:
                from aigc.data.text import load_text_dataset
                self._val_ids = load_text_dataset(data.name, "val", model.config.block_size,
                                                  tokenizer=model.tokenizer).ids
                self._val_what = f"the {data.name} validation split"
        nats = model.nats_per_char(self._val_ids, max_windows=windows, batch_size=64)
        return {"nats_per_char": nats, "bits_per_char": nats / math.log(2),
                "protocol": (f"held-out cross-entropy (nats/char) on {self._val_what}: at most {windows} "
                             f"evenly spaced windows of {model.config.block_size} characters, each "
                             f"scoring only characters it sees with full context")}


TASKS = {"image": ImageTask, "text": TextTask}


def make_task(modality: str, heldout=None):
    return TASKS[modality](heldout)
