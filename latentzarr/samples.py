"""Real sample pictures for demos, tests and benchmarks (scikit-image's bundled colour photos; no download).

Each picture is centre-cropped to a square and resized (Lanczos) to ``size`` x ``size`` pixels, uint8 RGB.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SAMPLE_NAMES", "sample_images"]

SAMPLE_NAMES: tuple[str, ...] = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
)
"""scikit-image data functions that return bundled colour photographs (present offline)."""


def _square(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(np.ascontiguousarray(img[top : top + s, left : left + s]))
    if s != size:
        crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(crop, dtype=np.uint8)


def sample_images(size: int = 512, names: tuple[str, ...] | list[str] | None = None) -> dict[str, np.ndarray]:
    """Return ``{name: uint8 array (size, size, 3)}`` for the bundled sample photos.

    ``size`` must be a positive multiple of 8 (the latent downscale factor of every supported model).
    """
    if size <= 0 or size % 8:
        raise ValueError(f"Expected a positive image size that is a multiple of 8. Got {size!r} instead.")
    from skimage import data

    out = {}
    for name in names or SAMPLE_NAMES:
        if name not in SAMPLE_NAMES:
            raise ValueError(f"Expected a sample name in {SAMPLE_NAMES}. Got {name!r} instead.")
        out[name] = _square(getattr(data, name)(), size)
    return out
