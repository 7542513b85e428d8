"""Model definitions: nn.Modules and their config dataclasses only (no training, no files)."""
from aigc.models.base import GenerativeModel
from aigc.models.vae import VAE, VAEConfig
from aigc.models.gan import DCGAN, DCGANConfig
from aigc.models.seedgan import SeedGAN, SeedGANConfig
from aigc.models.charlm import CharLM, CharLMConfig
from aigc.models.vade import VaDE, VaDEConfig

__all__ = ["GenerativeModel", "VAE", "VAEConfig", "DCGAN", "DCGANConfig", "SeedGAN", "SeedGANConfig",
           "CharLM", "CharLMConfig", "VaDE", "VaDEConfig"]
