"""Per-request cost model and default object sizes: the published figures, in one place.

A read is served from the image tier (the ready image crosses the network), from the latent tier (one decode,
then the same path as an image hit), or from object storage (one GET of the latent, one decode, then the image
path). Defaults are the LatentBox (2026) figures quoted in ``design.md``:

==================  =========  =================================================================
quantity            default    source
==================  =========  =================================================================
image hit           15 ms      image-hit path including a 10 ms network transfer
decode              32.6 ms    SD3.5 VAE decode at 1024^2 on an H100 (67 ms on an RTX 4090)
store fetch         150 ms     S3 GET, 100-200 ms
image size          1.45 MB    PNG at 1024^2, 1.4-1.5 MB
latent size         0.30 MB    pcodec-compressed SD3.5 / FLUX.1 latent, 0.28-0.32 MB
==================  =========  =================================================================

So an image hit costs 15 ms, a latent hit 47.6 ms and a miss 197.6 ms by default. Every value is settable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "DEFAULT_DECODE_MS",
    "DEFAULT_FETCH_MS",
    "DEFAULT_IMAGE_HIT_MS",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_LATENT_SIZE",
    "CostModel",
]

DEFAULT_IMAGE_HIT_MS = 15.0
"""Latency of an image-tier hit in ms (includes a 10 ms network transfer)."""
DEFAULT_DECODE_MS = 32.6
"""Latency of one VAE decode in ms (SD3.5, 1024^2, H100)."""
DEFAULT_FETCH_MS = 150.0
"""Latency of one object-store GET of a latent in ms (S3: 100-200 ms)."""
DEFAULT_IMAGE_SIZE = 1_450_000
"""Size in bytes of one encoded image (PNG, 1024^2), used when a trace carries no sizes."""
DEFAULT_LATENT_SIZE = 300_000
"""Size in bytes of one compressed latent (SD3.5, 16 x 128 x 128), used when a trace carries no sizes."""


def _check_ms(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"Expected {name} to be a finite number of ms >= 0. Got {value!r} instead.")
    return value


@dataclass(frozen=True)
class CostModel:
    """Latency of each way a request can be served, in milliseconds.

    Parameters
    ----------
    image_hit_ms
        Cost of an image-tier hit.
    decode_ms
        Extra cost of a latent-tier hit (one decode) over an image hit.
    fetch_ms
        Extra cost of a miss (one object-store GET) over a latent hit.
    """

    image_hit_ms: float = DEFAULT_IMAGE_HIT_MS
    decode_ms: float = DEFAULT_DECODE_MS
    fetch_ms: float = DEFAULT_FETCH_MS

    def __post_init__(self) -> None:
        for name in ("image_hit_ms", "decode_ms", "fetch_ms"):
            object.__setattr__(self, name, _check_ms(name, getattr(self, name)))

    @property
    def latent_hit_ms(self) -> float:
        """Cost of a latent-tier hit: image hit + decode."""
        return self.image_hit_ms + self.decode_ms

    @property
    def miss_ms(self) -> float:
        """Cost of a miss: image hit + decode + store fetch."""
        return self.image_hit_ms + self.decode_ms + self.fetch_ms

    def mean_ms(self, image_hits: int, latent_hits: int, misses: int) -> float:
        """Mean latency in ms of a request mix; ``nan`` for zero requests."""
        n = image_hits + latent_hits + misses
        if n == 0:
            return math.nan
        total = image_hits * self.image_hit_ms + latent_hits * self.latent_hit_ms + misses * self.miss_ms
        return total / n
