"""Fine-tuning on a person's upload: one run (run.py: finetune(spec, on_progress) -> model folder), the
background jobs (jobs.py, with lifecycle.py, store.py, progress.py and the worker process worker.py),
who owns a published model (owners.py) and the model cards (cards.py)."""
