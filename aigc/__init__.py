"""aigc: a latent-space studio for generative models.

Layers (each uses only the ones below it):
  pipelines / jobs  ->  train, eval  ->  registry, checkpoint  ->  models, data
"""
__version__ = "0.1.0"
