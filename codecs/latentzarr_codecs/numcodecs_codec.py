"""The numcodecs front end: ``numcodecs.get_codec({"id": "latentzarr.latent", ...})``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes

from latentzarr_codecs.config import (
    CODEC_NAME,
    CONFIG_KEYS,
    DEFAULT_LEVEL,
    FORMAT_VERSION,
    parse_dtype,
    parse_level,
    parse_version,
)
from latentzarr_codecs.engine import decode_chunk, encode_chunk

__all__ = ["LatentPCodec"]


def _bfloat16() -> np.dtype:
    try:
        import ml_dtypes
    except ImportError as err:  # pragma: no cover - ml_dtypes is present wherever bfloat16 arrays are made
        raise ImportError(
            "Expected ml_dtypes to be installed to return bfloat16 values. Got ImportError instead: "
            "pip install ml_dtypes, or pass out= a uint16 array to receive the raw bits."
        ) from err
    return np.dtype(ml_dtypes.bfloat16)


class LatentPCodec(Codec):
    """Lossless pcodec-based codec for latent tensors (float32, float16, bfloat16; uint16, uint32 as integers).

    Parameters
    ----------
    dtype
        Value dtype (``"float32"``, ``"float16"``, ``"bfloat16"``, ``"uint16"``, ``"uint32"``), or ``None`` to
        take the dtype of each array encoded (and of each chunk decoded). With ``"bfloat16"`` the input may be an
        ml_dtypes ``bfloat16`` array or its bits as ``uint16``.
    level
        pcodec compression level 0-12 (default 8, as numcodecs' ``PCodec``).
    version
        Format version of this configuration: 1 or 2 (the default); they decode alike and differ in how the
        encoder picks a chunk's layout (see ``latentzarr_codecs.engine``).

    Notes
    -----
    ``encode`` reads the array in C order and returns bytes at most 9 bytes larger than
    ``numcodecs.PCodec(level)`` would. ``decode`` returns a flat array (``bfloat16`` values as ml_dtypes
    ``bfloat16``) or fills ``out`` (any C-contiguous buffer of the same number of bytes). Damaged input raises
    :class:`~latentzarr_codecs.errors.CorruptChunkError`.
    """

    codec_id = CODEC_NAME

    def __init__(self, dtype: str | None = None, level: int = DEFAULT_LEVEL, version: int = FORMAT_VERSION) -> None:
        self.version = parse_version(version)
        self.dtype = parse_dtype(dtype)
        self.level = parse_level(level)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LatentPCodec:
        """Build from a config dict (without ``id``); a newer ``version`` is reported before unknown keys."""
        parse_version(config.get("version", FORMAT_VERSION))
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"Expected configuration keys among {sorted(CONFIG_KEYS)}. Got unknown keys {unknown!r} instead."
            )
        return cls(**config)

    def encode(self, buf: Any) -> bytes:
        """Encode an array (or an object exposing the buffer protocol with a typed format) to bytes."""
        return encode_chunk(np.asarray(buf), self.dtype, self.level, self.version)

    def decode(self, buf: Any, out: Any = None) -> Any:
        """Decode bytes; fill and return ``out`` when given, else return a new flat array."""
        values, name = decode_chunk(ensure_bytes(buf), self.dtype)
        if out is None:
            return values.view(_bfloat16()) if name == "bfloat16" else values
        target = np.asarray(out)
        if not target.flags.c_contiguous:
            raise ValueError(f"Expected a C-contiguous out array. Got strides {target.strides!r} instead.")
        if target.nbytes != values.nbytes:
            raise ValueError(
                f"Expected out to hold {values.nbytes} bytes ({values.size} {name} values). "
                f"Got {target.nbytes} bytes instead."
            )
        target.reshape(-1).view(np.uint8)[...] = values.view(np.uint8)
        return out
