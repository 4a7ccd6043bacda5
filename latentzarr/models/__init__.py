"""Latent autoencoders (encode pixels to latents, decode latents to pixels) and image encoding.

Everything here works in numpy at the edges: uint8 RGB images (N, H, W, 3) and stored latents (N, C, h, w).
Names are imported lazily, so ``from latentzarr.models import encode_image, MEDIA_TYPES`` (e.g. in an HTTP front
end) does not load torch; the autoencoder names do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from latentzarr._lazy import lazy_exports

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "LatentAutoencoder": "latentzarr.models.autoencoder",
    "default_device": "latentzarr.models.autoencoder",
    "default_dtype": "latentzarr.models.autoencoder",
    "psnr": "latentzarr.models.autoencoder",
    "DiffusersAutoencoder": "latentzarr.models.diffusers_vae",
    "DEFAULT_QUALITY": "latentzarr.models.images",
    "FORMATS": "latentzarr.models.images",
    "MEDIA_TYPES": "latentzarr.models.images",
    "InvalidImageError": "latentzarr.models.images",
    "InvalidRenditionError": "latentzarr.models.images",
    "Rendition": "latentzarr.models.images",
    "encode_image": "latentzarr.models.images",
    "pixel_digest": "latentzarr.models.images",
    "DIFFUSERS_PREFIX": "latentzarr.models.loading",
    "load_model": "latentzarr.models.loading",
    "TinyAutoencoder": "latentzarr.models.tiny",
    "DEFAULT_TILING": "latentzarr.models.tiling",
    "Tiling": "latentzarr.models.tiling",
    "ENV_VAR": "latentzarr.models.weights",
    "KNOWN_WEIGHTS": "latentzarr.models.weights",
    "ensure_weights": "latentzarr.models.weights",
    "models_dir": "latentzarr.models.weights",
    "sha256_file": "latentzarr.models.weights",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.models.autoencoder import LatentAutoencoder, default_device, default_dtype, psnr  # noqa: F401
    from latentzarr.models.diffusers_vae import DiffusersAutoencoder  # noqa: F401
    from latentzarr.models.images import (  # noqa: F401
        DEFAULT_QUALITY,
        FORMATS,
        MEDIA_TYPES,
        InvalidImageError,
        InvalidRenditionError,
        Rendition,
        encode_image,
        pixel_digest,
    )
    from latentzarr.models.loading import DIFFUSERS_PREFIX, load_model  # noqa: F401
    from latentzarr.models.tiling import DEFAULT_TILING, Tiling  # noqa: F401
    from latentzarr.models.tiny import TinyAutoencoder  # noqa: F401
    from latentzarr.models.weights import ENV_VAR, KNOWN_WEIGHTS, ensure_weights, models_dir, sha256_file  # noqa: F401
