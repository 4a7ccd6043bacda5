"""Encode a latent batch to stored bytes in a precision mode, and back: exactly what a store would keep.

Each image is one chunk of shape (1, C, h, w), as in the store (one image per chunk), encoded with the mode's
codec (:meth:`PrecisionMode.numcodecs_codec`), so bytes per image here are the bytes a store would write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from latentzarr.precision.modes import PrecisionMode, parse_mode

__all__ = ["EncodedLatents", "decode_latents", "encode_latents", "resolve_mode", "roundtrip"]


def _value_dtype(dtype: np.dtype) -> str:
    name = np.dtype(dtype).name
    if name not in ("float16", "float32", "bfloat16"):
        raise ValueError(f"Expected latents of dtype float16, float32 or bfloat16. Got {name} instead.")
    return name


@dataclass(frozen=True)
class EncodedLatents:
    """A batch in stored form: one encoded chunk per image, plus what is needed to decode it.

    Attributes
    ----------
    chunks
        Encoded bytes, one per image.
    mode
        The precision mode they were written in.
    shape
        (N, C, h, w) of the batch.
    dtype
        Value dtype name of the latents that were encoded (``"float16"``, ``"bfloat16"``, ``"float32"``).
    """

    chunks: tuple[bytes, ...]
    mode: PrecisionMode
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> np.ndarray:
        """Stored bytes of each image (int64, shape (N,))."""
        return np.array([len(c) for c in self.chunks], dtype=np.int64)

    @property
    def bytes_per_image(self) -> float:
        """Mean stored bytes per image (0.0 for an empty batch)."""
        return float(self.nbytes.mean()) if self.chunks else 0.0


def resolve_mode(mode: str | PrecisionMode, model: Any = None, latents: np.ndarray | None = None, *,
                 progress: bool = False) -> PrecisionMode:
    """Parse ``mode`` and, for ``wstep``, fix its per-channel steps from ``model``'s channel sensitivities.

    ``latents`` (N, C, h, w) are where the sensitivity is measured (default: taef2-style latents of two
    sample photos at 128x128, encoded with ``model``; that default is computed once per model setup and cached,
    see :func:`~latentzarr.precision.sensitivity.cached_channel_sensitivity`). Other modes are returned as parsed.
    """
    parsed = parse_mode(mode)
    if parsed.resolved:
        return parsed
    if model is None:
        raise ValueError(f"Expected a model to resolve {parsed.name!r} (its steps depend on the decoder). Got None.")
    from latentzarr.precision.sensitivity import cached_channel_sensitivity, channel_sensitivity

    if latents is None:
        return parsed.with_sensitivity(cached_channel_sensitivity(model, progress=progress))
    return parsed.with_sensitivity(channel_sensitivity(model, latents, progress=progress))


def encode_latents(latents: np.ndarray, mode: str | PrecisionMode = "lossless", *, level: int = 9) -> EncodedLatents:
    """Encode latents (N, C, h, w) of float16, float32 or ml_dtypes bfloat16 in ``mode``, one chunk per image.

    Raises
    ------
    ValueError
        Unknown mode text, an unresolved ``wstep`` mode, a non-float dtype, a wrong rank, or NaN/Inf in a
        lossy mode.
    """
    parsed = parse_mode(mode)
    arr = np.asarray(latents)
    if arr.ndim != 4:
        raise ValueError(f"Expected latents of shape (N, C, h, w). Got shape {arr.shape} instead.")
    dtype = _value_dtype(arr.dtype)
    codec = parsed.numcodecs_codec(dtype=dtype, level=level)
    chunks = tuple(bytes(codec.encode(np.ascontiguousarray(arr[i : i + 1]))) for i in range(len(arr)))
    return EncodedLatents(chunks, parsed, tuple(arr.shape), dtype)


def decode_latents(encoded: EncodedLatents, dtype: Any = None) -> np.ndarray:
    """Decode a batch back to (N, C, h, w) values.

    ``dtype`` of the result: by default the encoded dtype for ``lossless`` and ``bitround`` (bit-exact /
    rounded values) and float32 for the quantising modes (their reconstruction, without a further rounding).
    """
    parsed = encoded.mode
    if dtype is None:
        dtype = np.float32 if parsed.kind in ("q", "step", "wstep") else _numpy_dtype(encoded.dtype)
    out = np.empty(encoded.shape, dtype=np.dtype(dtype))
    if parsed.kind == "lossless":
        codec = parsed.numcodecs_codec(dtype=encoded.dtype)
        for i, chunk in enumerate(encoded.chunks):
            values = np.asarray(codec.decode(chunk)).reshape(encoded.shape[1:])
            out[i] = values if values.dtype == out.dtype else values.astype(out.dtype)
        return out
    codec = parsed.numcodecs_codec(dtype=encoded.dtype)
    for i, chunk in enumerate(encoded.chunks):
        codec.decode(chunk, out=out[i])
    return out


def roundtrip(
    latents: np.ndarray, mode: str | PrecisionMode = "lossless", *, dtype: Any = None, level: int = 9
) -> tuple[np.ndarray, np.ndarray]:
    """Encode and decode ``latents`` in ``mode``; return (decoded values, stored bytes per image)."""
    encoded = encode_latents(latents, mode, level=level)
    return decode_latents(encoded, dtype), encoded.nbytes


def _numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)
