"""Latent-space tools: directions (what the editor's sliders move along), interpolation, and
projection of a picture into a GAN's latent space (`aigc.latent.projection`, imported on use)."""
from aigc.latent.directions import (FORMAT, MAX_DIRECTIONS, MAX_NAME, NAMES_FILE, VECTORS_FILE, Directions,
                                    add_direction, check_name, compute_directions, early_features,
                                    ensure_directions, ganspace, kl_order, load_directions, posterior_stats,
                                    rename_direction, save_directions, training_images, vae_directions)
from aigc.latent.interpolation import gif_bytes, lerp, path, slerp

__all__ = ["FORMAT", "MAX_DIRECTIONS", "MAX_NAME", "NAMES_FILE", "VECTORS_FILE", "Directions", "add_direction",
           "check_name", "compute_directions", "early_features", "ensure_directions", "ganspace", "kl_order",
           "load_directions", "posterior_stats", "rename_direction", "save_directions", "training_images",
           "vae_directions", "gif_bytes", "lerp", "path", "slerp"]
