"""Latent autoencoders (encode pixels to latents, decode latents to pixels) and image encoding.

Everything here works in numpy at the edges: uint8 RGB images (N, H, W, 3) and stored latents (N, C, h, w).
"""

from __future__ import annotations

from latentzarr.models.autoencoder import LatentAutoencoder, default_device, default_dtype, psnr
from latentzarr.models.images import (
    DEFAULT_QUALITY,
    FORMATS,
    MEDIA_TYPES,
    InvalidImageError,
    InvalidRenditionError,
    Rendition,
    encode_image,
    pixel_digest,
)
from latentzarr.models.loading import DIFFUSERS_PREFIX, load_model
from latentzarr.models.tiny import TinyAutoencoder
from latentzarr.models.weights import ENV_VAR, KNOWN_WEIGHTS, ensure_weights, models_dir, sha256_file

__all__ = [
    "DEFAULT_QUALITY",
    "DIFFUSERS_PREFIX",
    "ENV_VAR",
    "FORMATS",
    "KNOWN_WEIGHTS",
    "MEDIA_TYPES",
    "DiffusersAutoencoder",
    "InvalidImageError",
    "InvalidRenditionError",
    "LatentAutoencoder",
    "Rendition",
    "TinyAutoencoder",
    "default_device",
    "default_dtype",
    "encode_image",
    "ensure_weights",
    "load_model",
    "models_dir",
    "pixel_digest",
    "psnr",
    "sha256_file",
]


def __getattr__(name: str):
    # diffusers is an optional dependency: import its wrapper only when asked for
    if name == "DiffusersAutoencoder":
        from latentzarr.models.diffusers_vae import DiffusersAutoencoder

        return DiffusersAutoencoder
    raise AttributeError(f"module 'latentzarr.models' has no attribute {name!r}")
