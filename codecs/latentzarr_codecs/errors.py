"""Exceptions raised by the latent codec (this package cannot import ``latentzarr``)."""

from __future__ import annotations

__all__ = ["CorruptChunkError", "UnsupportedVersionError"]


class CorruptChunkError(ValueError):
    """An encoded chunk is damaged, truncated, or was not written by this codec.

    Raised instead of returning wrong values: every chunk carries a magic number and a CRC-32 of its bytes.
    """


class UnsupportedVersionError(ValueError):
    """A configuration or an encoded chunk comes from a newer format version than this package reads.

    The fix is always to upgrade ``latentzarr-codecs``; old versions are read forever.
    """
