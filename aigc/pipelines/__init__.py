"""Inference objects (the diffusers pipeline idea): a loaded model plus what a person needs to use
it; `__call__(..., seed)` gives the same result for the same seed. image.py (GAN, VAE), charlm.py
(language models), textvae.py (the sentence VAE), recipes.py (what re-creates a picture)."""
