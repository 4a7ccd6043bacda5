"""Decoded pictures to image files (PNG / WebP / JPEG bytes) and the pixel digest that identifies a decode.

Renditions: ``format`` is ``"png"`` (lossless), ``"webp"``, ``"jpeg"`` or ``"avif"`` (lossy, ``quality``
1-100, default :data:`DEFAULT_QUALITY`); ``size`` bounds the longest side in pixels, keeps the aspect ratio and
**never upscales** (a picture already within the bound is encoded as is), resampling with Lanczos.

``width`` / ``height`` with a ``fit`` (imgproxy's resizing types, see :data:`FITS`) resize like imgproxy does:

- ``fit``: keep the aspect ratio, fit inside width x height (a missing side follows the aspect ratio);
- ``fill``: keep the aspect ratio, cover width x height, then crop the overflow where ``gravity`` says
  (:data:`GRAVITIES`: centre, edges, corners);
- ``fill-down``: ``fill``, but a request larger than the picture is scaled down to fit inside it first (same
  aspect ratio, so the result keeps the requested shape);
- ``force``: exactly width x height, aspect ratio not kept (a missing side keeps the picture's);
- ``auto``: ``fill`` when the picture and the request have the same orientation, else ``fit``.

Without ``enlarge`` nothing is ever scaled up: the scale factor is capped at 1 (``fill`` then crops to at most
the picture's size, ``force`` caps each side). Encoding is deterministic for a given Pillow build (no timestamps
or random metadata, AVIF on one encoder thread), so equal pixels and equal parameters give equal bytes.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np

from latentzarr.errors import InvalidImageError, InvalidRenditionError

__all__ = [
    "DEFAULT_QUALITY",
    "FITS",
    "FORMATS",
    "GRAVITIES",
    "MAX_SIZE",
    "MEDIA_TYPES",
    "InvalidImageError",
    "InvalidRenditionError",
    "Rendition",
    "encode_image",
    "pixel_digest",
    "render_image",
]

MEDIA_TYPES: dict[str, str] = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg", "avif": "image/avif"}
"""Format name -> HTTP media type."""

FORMATS: tuple[str, ...] = tuple(MEDIA_TYPES)
"""Supported output formats (``"jpg"`` is accepted as an alias of ``"jpeg"``)."""

DEFAULT_QUALITY: dict[str, int] = {"webp": 90, "jpeg": 90, "avif": 65}
"""Quality used for the lossy formats when none is given."""

MAX_SIZE = 16384
"""Largest accepted ``size`` (WebP's limit is 16383 pixels per side; larger is surely a mistake)."""

FITS: tuple[str, ...] = ("fit", "fill", "fill-down", "force", "auto")
"""Resizing types (imgproxy's names); ``fit`` is the default."""

GRAVITIES: tuple[str, ...] = ("ce", "no", "so", "ea", "we", "noea", "nowe", "soea", "sowe")
"""Where a ``fill`` crop keeps the picture: centre, north (top), south, east (right), west and the corners."""

_ALIASES = {"jpg": "jpeg"}
_PIL_FORMATS = {"png": "PNG", "webp": "WEBP", "jpeg": "JPEG", "avif": "AVIF"}


@dataclass(frozen=True)
class Rendition:
    """A validated, normalised rendition: equal requests compare (and hash) equal.

    Build it with :meth:`parse`; ``quality`` is ``None`` for PNG and filled with the default for lossy formats.
    ``size`` (longest side) and ``width``/``height`` exclude each other. Options that cannot change the result
    are normalised away (``fit`` without both sides is ``fit`` unless ``force``; ``gravity`` only matters for a
    crop), so two spellings of one picture share one cache entry.
    """

    format: str = "png"
    size: int | None = None
    quality: int | None = None
    width: int | None = None
    height: int | None = None
    fit: str = "fit"
    gravity: str = "ce"
    enlarge: bool = False

    @classmethod
    def parse(cls, format: str = "png", size: int | None = None, quality: int | None = None, *,
              width: int | None = None, height: int | None = None, fit: str = "fit", gravity: str = "ce",
              enlarge: bool = False) -> Rendition:
        """Validate and normalise; raises :class:`InvalidRenditionError` saying what is wrong.

        ``width`` / ``height`` of 0 mean "not set" (imgproxy's convention).
        """
        fmt = _ALIASES.get(format.lower(), format.lower()) if isinstance(format, str) else None
        if fmt not in MEDIA_TYPES:
            raise InvalidRenditionError(f"Expected an image format in {FORMATS}. Got {format!r} instead.")
        if size is not None and (not _is_int(size) or not 1 <= size <= MAX_SIZE):
            raise InvalidRenditionError(
                f"Expected size to be None or an int from 1 to {MAX_SIZE} (pixels, longest side). Got {size!r} instead."
            )
        for name, side in (("width", width), ("height", height)):
            if side is not None and (not _is_int(side) or not 0 <= side <= MAX_SIZE):
                raise InvalidRenditionError(
                    f"Expected {name} to be None or an int from 0 to {MAX_SIZE} (pixels). Got {side!r} instead.")
        width = int(width) if width else None
        height = int(height) if height else None
        if size is not None and (width or height):
            raise InvalidRenditionError(
                f"Expected either size or width/height. Got size={size!r} with width={width!r}, height={height!r}.")
        if fit not in FITS:
            raise InvalidRenditionError(f"Expected fit to be one of {', '.join(FITS)}. Got {fit!r} instead.")
        if gravity not in GRAVITIES:
            raise InvalidRenditionError(
                f"Expected gravity to be one of {', '.join(GRAVITIES)}. Got {gravity!r} instead.")
        if not isinstance(enlarge, bool | np.bool_):
            raise InvalidRenditionError(f"Expected enlarge to be True or False. Got {enlarge!r} instead.")
        if fmt == "png":
            if quality is not None:
                raise InvalidRenditionError(
                    f"Expected quality=None for png (it is lossless). Got {quality!r} instead; use webp, jpeg or "
                    "avif for a quality setting."
                )
        elif quality is None:
            quality = DEFAULT_QUALITY[fmt]
        elif not _is_int(quality) or not 1 <= quality <= 100:
            raise InvalidRenditionError(f"Expected quality to be an int from 1 to 100. Got {quality!r} instead.")
        both = width is not None and height is not None
        if not (width or height):
            fit, enlarge = "fit", False
        elif not both and fit != "force":
            fit = "fit"  # with one side, fill / fill-down / auto crop nothing: they are fit
        if fit not in ("fill", "fill-down", "auto") or not both:
            gravity = "ce"
        return cls(fmt, None if size is None else int(size), None if quality is None else int(quality),
                   width, height, fit, gravity, bool(enlarge))

    @property
    def media_type(self) -> str:
        """HTTP media type, e.g. ``"image/webp"``."""
        return MEDIA_TYPES[self.format]

    @property
    def token(self) -> str:
        """Short stable text form for keys and file names, e.g. ``"webp-s512-q90"``, ``"png"`` or
        ``"avif-w300-h200-rfill-gno-q65"``; the renditions that existed before width/height keep their token."""
        parts = [self.format]
        if self.size is not None:
            parts.append(f"s{self.size}")
        if self.width is not None:
            parts.append(f"w{self.width}")
        if self.height is not None:
            parts.append(f"h{self.height}")
        if self.fit != "fit":
            parts.append("r" + self.fit.replace("-", ""))
        if self.gravity != "ce":
            parts.append(f"g{self.gravity}")
        if self.enlarge:
            parts.append("el")
        if self.quality is not None:
            parts.append(f"q{self.quality}")
        return "-".join(parts)

    @property
    def resizes(self) -> bool:
        """Whether this rendition may change the picture's geometry (False: the full picture as is)."""
        return self.size is not None or self.width is not None or self.height is not None

    def with_format(self, format: str, quality: int | None = None) -> Rendition:
        """This rendition in another ``format`` (``quality`` dropped for png, defaulted for lossy formats)."""
        fmt = _ALIASES.get(format.lower(), format.lower())
        return Rendition.parse(fmt, self.size, None if fmt == "png" else quality, width=self.width,
                               height=self.height, fit=self.fit, gravity=self.gravity, enlarge=self.enlarge)

    def plan(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
        """How to make this rendition of a ``height`` x ``width`` picture: the ``(height, width)`` to resize to,
        then a crop box ``(top, left, height, width)`` in the resized picture (None: no crop)."""
        if self.size is not None:
            return self.output_shape(height, width), None
        w, h = self.width, self.height
        if w is None and h is None:
            return (height, width), None
        fit = self.fit
        if fit == "force":
            out_w, out_h = w or width, h or height
            if not self.enlarge:
                out_w, out_h = min(out_w, width), min(out_h, height)
            return (out_h, out_w), None
        if fit == "auto":
            fit = "fill" if (h >= w) == (height >= width) else "fit"
        if fit == "fit":
            scale = min(w / width if w else np.inf, h / height if h else np.inf)
            if not self.enlarge:
                scale = min(scale, 1.0)
            return (max(1, round(height * scale)), max(1, round(width * scale))), None
        if fit == "fill-down" and not self.enlarge and (w > width or h > height):
            shrink = min(width / w, height / h)
            w, h = max(1, round(w * shrink)), max(1, round(h * shrink))
        scale = max(w / width, h / height)
        if not self.enlarge:
            scale = min(scale, 1.0)
        rh, rw = max(1, round(height * scale)), max(1, round(width * scale))
        ch, cw = min(h, rh), min(w, rw)
        if (ch, cw) == (rh, rw):
            return (rh, rw), None
        g = self.gravity
        top = 0 if g.startswith("no") else rh - ch if g.startswith("so") else (rh - ch) // 2
        left = 0 if g.endswith("we") else rw - cw if g.endswith("ea") else (rw - cw) // 2
        return (rh, rw), (top, left, ch, cw)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the encoded picture for an input of ``height`` x ``width``."""
        if self.size is None:
            (rh, rw), crop = self.plan(height, width)
            return (rh, rw) if crop is None else (crop[2], crop[3])
        longest = max(height, width)
        if longest <= self.size:
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


def encode_image(pixels: np.ndarray, format: str | Rendition = "png", size: int | None = None,
                 quality: int | None = None) -> bytes:
    """Encode a uint8 RGB picture (H, W, 3) as PNG, WebP, JPEG or AVIF bytes.

    Parameters
    ----------
    pixels
        uint8 (H, W, 3) RGB.
    format
        ``"png"``, ``"webp"``, ``"jpeg"`` (``"jpg"``) or ``"avif"``, case-insensitive; or a whole
        :class:`Rendition` (then ``size`` and ``quality`` must be None).
    size
        Bound on the longest side in pixels; the aspect ratio is kept and a smaller picture is never upscaled.
    quality
        1-100 for webp/jpeg/avif (default :data:`DEFAULT_QUALITY`); must be ``None`` for png.

    Raises
    ------
    InvalidRenditionError
        Unknown format, or size/quality out of range.
    InvalidImageError
        ``pixels`` is not uint8 (H, W, 3).
    """
    if isinstance(format, Rendition):
        if size is not None or quality is not None:
            raise InvalidRenditionError(
                f"Expected size=None and quality=None with a Rendition. Got {size!r}, {quality!r} instead.")
        return render_image(pixels, format)
    return render_image(pixels, Rendition.parse(format, size, quality))


def render_image(pixels: np.ndarray, rendition: Rendition) -> bytes:
    """Resize / crop a uint8 RGB picture (H, W, 3) as ``rendition`` says (:meth:`Rendition.plan`; Lanczos) and
    encode it. Raises :class:`InvalidImageError` when ``pixels`` is not uint8 (H, W, 3)."""
    arr = _check_pixels(pixels)
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(arr))
    (height, width), crop = rendition.plan(*arr.shape[:2])
    if (height, width) != arr.shape[:2]:
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    if crop is not None:
        top, left, ch, cw = crop
        image = image.crop((left, top, left + cw, top + ch))
    options: dict[str, object] = {}
    if rendition.format == "png":
        options["compress_level"] = 6
    elif rendition.format == "webp":
        options.update(quality=rendition.quality, method=4)
    elif rendition.format == "avif":
        options.update(quality=rendition.quality, speed=8, max_threads=1)
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
