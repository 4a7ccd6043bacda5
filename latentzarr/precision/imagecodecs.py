"""Lossy image codecs (through Pillow) for the rate-distortion comparison, and a quality search by size.

Each codec maps (uint8 RGB picture, quality 1-100) to bytes; every codec is set up for its best compression at
a given quality (JPEG with optimised Huffman tables, WebP ``method=6``, AVIF ``speed=6``), since the comparison
is at equal bytes. ``jpeg`` uses Pillow's default 4:2:0 chroma subsampling, ``jpeg444`` none; ``avif`` is 4:4:4.
JPEG XL has no Pillow support here unless a plugin (``pillow_jxl``) is installed; :func:`available_codecs` says
which codecs can run and why the others cannot.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

__all__ = ["IMAGE_CODECS", "CachedEncoder", "available_codecs", "decode_picture", "encode_picture", "match_quality"]

IMAGE_CODECS: tuple[str, ...] = ("jpeg", "jpeg444", "webp", "avif", "jxl")
"""Codec names understood by :func:`encode_picture` (when available)."""

_OPTIONS: dict[str, tuple[str, dict[str, object]]] = {
    "jpeg": ("JPEG", {"optimize": True}),
    "jpeg444": ("JPEG", {"optimize": True, "subsampling": 0}),
    "webp": ("WEBP", {"method": 6}),
    "avif": ("AVIF", {"speed": 6, "subsampling": "4:4:4"}),
    "jxl": ("JXL", {"effort": 7}),
}


def available_codecs() -> dict[str, str | None]:
    """``{codec: None}`` when it can run here, else ``{codec: "not available: <reason>"}``."""
    from PIL import features

    out: dict[str, str | None] = {"jpeg": None, "jpeg444": None}
    out["webp"] = None if features.check("webp") else "not available: Pillow built without WebP"
    out["avif"] = None if features.check("avif") else "not available: Pillow built without AVIF (libavif)"
    try:
        import pillow_jxl  # noqa: F401

        out["jxl"] = None
    except ImportError:
        out["jxl"] = "not available: Pillow has no JPEG XL support here (no pillow_jxl plugin)"
    if not features.check("jpg"):
        out["jpeg"] = out["jpeg444"] = "not available: Pillow built without libjpeg"
    return out


def encode_picture(pixels: np.ndarray, codec: str, quality: int) -> bytes:
    """Encode a uint8 RGB picture (H, W, 3) with ``codec`` at ``quality`` (1-100)."""
    if codec not in _OPTIONS:
        raise ValueError(f"Expected an image codec in {IMAGE_CODECS}. Got {codec!r} instead.")
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= quality <= 100:
        raise ValueError(f"Expected quality to be an int from 1 to 100. Got {quality!r} instead.")
    from PIL import Image

    if codec == "jxl":
        import pillow_jxl  # noqa: F401

    fmt, options = _OPTIONS[codec]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format=fmt, quality=int(quality), **options)
    return buf.getvalue()


class CachedEncoder:
    """``encoder(quality) -> bytes`` for one picture and codec, remembering every quality it encoded."""

    def __init__(self, pixels: np.ndarray, codec: str) -> None:
        self.pixels = pixels
        self.codec = codec
        self.encoded: dict[int, bytes] = {}

    def __call__(self, quality: int) -> bytes:
        if quality not in self.encoded:
            self.encoded[quality] = encode_picture(self.pixels, self.codec, quality)
        return self.encoded[quality]

    def size(self, quality: int) -> int:
        """Encoded size in bytes at ``quality``."""
        return len(self(quality))


def decode_picture(data: bytes) -> np.ndarray:
    """Image bytes -> uint8 RGB (H, W, 3)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def match_quality(size_of: Callable[[int], int], target: float, low: int = 1, high: int = 100) -> int:
    """The quality in ``low..high`` whose size is nearest to ``target`` bytes (bisection, then the two neighbours).

    ``size_of(quality)`` gives the encoded size in bytes (cache it: it is called about 8 times). Sizes are
    assumed to grow with quality; where they do not, the nearest of the qualities visited is returned.
    """
    lo, hi = low, high
    seen: dict[int, int] = {}

    def size(q: int) -> int:
        if q not in seen:
            seen[q] = size_of(q)
        return seen[q]

    if size(hi) <= target:
        return hi
    if size(lo) >= target:
        return lo
    while hi - lo > 1:  # invariant: size(lo) < target < size(hi)
        mid = (lo + hi) // 2
        if size(mid) < target:
            lo = mid
        else:
            hi = mid
    return min(seen, key=lambda q: (abs(seen[q] - target), q))
