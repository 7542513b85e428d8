"""Fine-tuning on a person's upload: the background jobs (jobs.py) and the model cards (cards.py)."""
