"""Decoded pictures to image files (PNG / WebP / JPEG bytes) and the pixel digest that identifies a decode.

Renditions: ``format`` is ``"png"`` (lossless), ``"webp"`` or ``"jpeg"`` (lossy, ``quality`` 1-100, default
:data:`DEFAULT_QUALITY`); ``size`` bounds the longest side in pixels, keeps the aspect ratio and **never
upscales** (a picture already within the bound is encoded as is), resampling with Lanczos. Encoding is
deterministic for a given Pillow build (no timestamps or random metadata), so equal pixels and equal
parameters give equal bytes.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from latentzarr.errors import InvalidImageError, InvalidRenditionError

__all__ = [
    "DEFAULT_QUALITY",
    "FORMATS",
    "MAX_SIZE",
    "MEDIA_TYPES",
    "InvalidImageError",
    "InvalidRenditionError",
    "Rendition",
    "encode_image",
    "pixel_digest",
]

MEDIA_TYPES: dict[str, str] = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
"""Format name -> HTTP media type."""

FORMATS: tuple[str, ...] = tuple(MEDIA_TYPES)
"""Supported output formats (``"jpg"`` is accepted as an alias of ``"jpeg"``)."""

DEFAULT_QUALITY: dict[str, int] = {"webp": 90, "jpeg": 90}
"""Quality used for the lossy formats when none is given."""

MAX_SIZE = 16384
"""Largest accepted ``size`` (WebP's limit is 16383 pixels per side; larger is surely a mistake)."""

_ALIASES = {"jpg": "jpeg"}
_PIL_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG"}


@dataclass(frozen=True)
class Rendition:
    """A validated, normalised (format, size, quality): equal requests compare (and hash) equal.

    Build it with :meth:`parse`; ``quality`` is ``None`` for PNG and filled with the default for lossy formats.
    """

    format: str = "png"
    size: int | None = None
    quality: int | None = None

    @classmethod
    def parse(cls, format: str = "png", size: int | None = None, quality: int | None = None) -> Rendition:
        """Validate and normalise; raises :class:`InvalidRenditionError` saying what is wrong."""
        fmt = _ALIASES.get(format.lower(), format.lower()) if isinstance(format, str) else None
        if fmt not in MEDIA_TYPES:
            raise InvalidRenditionError(f"Expected an image format in {FORMATS}. Got {format!r} instead.")
        if size is not None and (not _is_int(size) or not 1 <= size <= MAX_SIZE):
            raise InvalidRenditionError(
                f"Expected size to be None or an int from 1 to {MAX_SIZE} (pixels, longest side). Got {size!r} instead."
            )
        if fmt == "png":
            if quality is not None:
                raise InvalidRenditionError(
                    f"Expected quality=None for png (it is lossless). Got {quality!r} instead; use webp or jpeg "
                    "for a quality setting."
                )
        elif quality is None:
            quality = DEFAULT_QUALITY[fmt]
        elif not _is_int(quality) or not 1 <= quality <= 100:
            raise InvalidRenditionError(f"Expected quality to be an int from 1 to 100. Got {quality!r} instead.")
        return cls(fmt, None if size is None else int(size), None if quality is None else int(quality))

    @property
    def media_type(self) -> str:
        """HTTP media type, e.g. ``"image/webp"``."""
        return MEDIA_TYPES[self.format]

    @property
    def token(self) -> str:
        """Short stable text form for keys and file names, e.g. ``"webp-s512-q90"`` or ``"png"``."""
        parts = [self.format]
        if self.size is not None:
            parts.append(f"s{self.size}")
        if self.quality is not None:
            parts.append(f"q{self.quality}")
        return "-".join(parts)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the encoded picture for an input of ``height`` x ``width`` (never larger)."""
        longest = max(height, width)
        if self.size is None or longest <= self.size:
            return height, width
        scale = self.size / longest
        return max(1, round(height * scale)), max(1, round(width * scale))


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_pixels(pixels: object) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape:
        raise InvalidImageError(
            f"Expected a uint8 RGB picture of shape (H, W, 3). Got dtype {arr.dtype} and shape {arr.shape} instead."
        )
    return arr


def encode_image(pixels: np.ndarray, format: str = "png", size: int | None = None, quality: int | None = None) -> bytes:
    """Encode a uint8 RGB picture (H, W, 3) as PNG, WebP or JPEG bytes.

    Parameters
    ----------
    pixels
        uint8 (H, W, 3) RGB.
    format
        ``"png"``, ``"webp"`` or ``"jpeg"`` (``"jpg"``), case-insensitive.
    size
        Bound on the longest side in pixels; the aspect ratio is kept and a smaller picture is never upscaled.
    quality
        1-100 for webp/jpeg (default :data:`DEFAULT_QUALITY`); must be ``None`` for png.

    Raises
    ------
    InvalidRenditionError
        Unknown format, or size/quality out of range.
    InvalidImageError
        ``pixels`` is not uint8 (H, W, 3).
    """
    rendition = Rendition.parse(format, size, quality)
    arr = _check_pixels(pixels)
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(arr))
    height, width = rendition.output_shape(*arr.shape[:2])
    if (height, width) != arr.shape[:2]:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    options: dict[str, object] = {}
    if rendition.format == "png":
        options["compress_level"] = 6
    elif rendition.format == "webp":
        options.update(quality=rendition.quality, method=4)
    else:
        options.update(quality=rendition.quality, optimize=False)
    buf = io.BytesIO()
    image.save(buf, format=_PIL_FORMATS[rendition.format], **options)
    return buf.getvalue()


def pixel_digest(pixels: np.ndarray) -> str:
    """sha256 hex digest identifying a decoded picture: its shape and its uint8 bytes.

    Exactly ``sha256(b"<H>x<W>x<C>:" + C-order bytes)`` with the shape in decimal, e.g. ``b"256x256x3:"``; the
    shape prefix keeps two pictures with the same bytes but different shapes apart.

    Raises
    ------
    InvalidImageError
        ``pixels`` is not a uint8 array with 3 dimensions (H, W, C).
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise InvalidImageError(
            f"Expected a uint8 picture of shape (H, W, C). Got dtype {arr.dtype} and shape {arr.shape} instead."
        )
    h = hashlib.sha256("x".join(map(str, arr.shape)).encode() + b":")
    h.update(np.ascontiguousarray(arr).data)
    return h.hexdigest()
