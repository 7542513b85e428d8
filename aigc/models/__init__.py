"""Model definitions: nn.Modules and their config dataclasses only (no training, no files)."""
from .base import GenerativeModel
from .vae import VAE, VAEConfig
from .gan import DCGAN, DCGANConfig
from .seedgan import SeedGAN, SeedGANConfig
from .charlm import CharLM, CharLMConfig

__all__ = ["GenerativeModel", "VAE", "VAEConfig", "DCGAN", "DCGANConfig", "SeedGAN", "SeedGANConfig",
           "CharLM", "CharLMConfig"]
