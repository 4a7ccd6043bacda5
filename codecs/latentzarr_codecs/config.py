"""The codec configuration: names, defaults and the ``parse_*`` validators shared by both front ends.

Configuration (format version 2), as JSON::

    {"version": 2, "dtype": "bfloat16", "level": 8}

- ``version``: format version of the configuration and of the chunks it writes: 1 or 2 (the default). Both
  decode the same way; they differ in how the encoder chooses a chunk's layout (``engine`` module docstring), so a
  given configuration always writes the same bytes. A larger value raises
  :class:`~latentzarr_codecs.errors.UnsupportedVersionError` ("upgrade latentzarr-codecs").
- ``dtype``: how to read the values: ``"float32"``, ``"float16"``, ``"bfloat16"``, ``"uint16"`` or ``"uint32"``.
  ``"bfloat16"`` values are kept as their raw bits in a ``uint16`` array (Zarr has no bfloat16 type).
  ``None`` (the default) means "the dtype of the array"; the Zarr codec fills it in from the array metadata.
- ``level``: pcodec compression level, 0-12 (default 8, numcodecs' ``PCodec`` default; stores written with
  version 1 say 9). Decoding ignores it.
"""

from __future__ import annotations

from typing import Any

from latentzarr_codecs.errors import UnsupportedVersionError

__all__ = [
    "CODEC_NAME",
    "CONFIG_KEYS",
    "DEFAULT_LEVEL",
    "DTYPES",
    "FORMAT_VERSION",
    "STORAGE_DTYPES",
    "parse_dtype",
    "parse_level",
    "parse_version",
]

CODEC_NAME = "latentzarr.latent"
"""Registered name: the Zarr v3 codec ``name`` and the numcodecs ``codec_id``."""

FORMAT_VERSION = 2
"""The newest configuration / chunk format version this package writes (by default) and reads."""

CONFIG_KEYS = frozenset({"version", "dtype", "level"})
"""Every configuration key of format versions 1 and 2 (the numcodecs config adds ``id``)."""

DEFAULT_LEVEL = 8
"""pcodec compression level (of the plain layout). Version 1 defaulted to 9, which saved 0.2-0.3% on taef2
latents for 1.5x the encode time of level 8; version 2 gets that saving more cheaply from its layout choice."""

STORAGE_DTYPES: dict[str, str] = {
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "uint16",
    "uint16": "uint16",
    "uint32": "uint32",
}
"""Value dtype name -> numpy dtype in which its bits are stored and handed to pcodec."""

DTYPES: tuple[str, ...] = tuple(STORAGE_DTYPES)
"""Supported value dtypes, in the order of their one-byte code in the chunk header (never reorder)."""


def parse_version(data: Any) -> int:
    """Return the configuration version, refusing unknown or future ones."""
    if isinstance(data, bool) or not isinstance(data, int) or data < 1:
        raise ValueError(f"Expected a positive integer codec version. Got {data!r} instead.")
    if data > FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"Expected codec configuration version <= {FORMAT_VERSION}. Got version {data!r} instead: it was "
            f"written by a newer latentzarr-codecs. Upgrade latentzarr-codecs (pip install -U latentzarr-codecs)."
        )
    return data


def parse_dtype(data: Any) -> str | None:
    """Return a supported dtype name (or ``None`` for "the array's dtype")."""
    if data is None:
        return None
    if isinstance(data, str) and data in STORAGE_DTYPES:
        return data
    raise ValueError(f"Expected dtype to be one of {list(DTYPES)} or None. Got {data!r} instead.")


def parse_level(data: Any) -> int:
    """Return a pcodec compression level in 0..12."""
    if isinstance(data, bool) or not isinstance(data, int) or not 0 <= data <= 12:
        raise ValueError(f"Expected level to be an integer from 0 to 12. Got {data!r} instead.")
    return data
