"""Training: a model-agnostic loop (loop.py), per-kind objectives (objectives.py), DDP glue."""
