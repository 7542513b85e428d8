"""Training: a model-agnostic loop (loop.py), grouped options (options.py), per-kind objectives
(objectives/), what images and text do differently (modality.py), periodic evaluation, DDP glue."""
