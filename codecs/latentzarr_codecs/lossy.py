"""The lossy stage for latents: bit rounding or quantisation, then the lossless ``latentzarr.latent`` engine.

Lossless storage of latents is capped near 1.2x (float16) because their mantissa bits are random. This module
trades a *bounded* error for bytes. Three schemes, each with a per-value error bound (``x`` the value given,
``x'`` the value decoded, before the cast to the output dtype; a cast to float16 or bfloat16 adds at most half a
unit in the last place of ``x'``):

``bitround`` (``keepbits`` = k)
    Keep k mantissa bits, rounding to nearest (ties to even), with numcodecs' ``BitRound`` for float16 and
    float32 (bfloat16 goes through float32, which holds it exactly). Bound: ``|x - x'| <= 2**(e - k - 1)``
    with ``e = max(floor(log2|x|), emin)`` (``emin`` -14 for float16, -126 for float32 / bfloat16), i.e. a
    relative error of at most ``2**-(k+1)``. A value whose rounding would overflow to infinity is truncated
    instead (its error is then below ``2**(e - k)``). The payload is the rounded floats (still floats).
``affine`` (``bits`` = b, 1-16)
    Per plane (the last two axes: one latent channel of a ``(1, C, h, w)`` chunk), ``offset = min``,
    ``scale = (max - min) / (2**b - 1)`` (float32, rounded up), code ``q = round((x - offset) / scale)`` in
    ``0 .. 2**b - 1``. Bound: ``|x - x'| <= scale / 2`` per plane. A constant plane is exact (scale 0).
    ``offset`` and ``scale`` are stored in the chunk (8 bytes per plane).
``step`` (``steps`` = one positive step, or one per channel)
    Uniform quantisation with an absolute step, the same for every chunk (so the bound is known before any data
    is seen): plane ``i`` uses ``steps[i % len(steps)]``, code ``q = round(x / step)``. Bound:
    ``|x - x'| <= step / 2``. Per-channel steps let a model's sensitive channels get finer steps.

The integer codes (``uint16``, or ``uint32`` when a plane of a ``step`` chunk spans 65536 codes or more) and the
rounded floats go through the lossless engine, so the entropy stage is the same pcodec coder as for lossless
latents. Values must be finite (``ValueError`` otherwise).

Chunk layout (format version 1)::

    offset  size  field
    0       2     magic b"LY"
    2       1     format version (1)
    3       4     CRC-32 (zlib, little-endian) of bytes 0-2 and of the rest of the header (7 .. payload)
    7       1     scheme: 1 bitround, 2 affine, 3 step
    8       1     value dtype code (index into ``config.DTYPES``)
    9       1     keepbits (bitround) or bits (affine); 0 for step
    10      4     P, planes with parameters (uint32 little-endian; 0 for bitround)
    14      8     values per plane (uint64 little-endian)
    22      ...   affine: P float32 offsets, P float32 scales; step: P float64 steps, P int64 code bases
    ...     ...   payload: a latentzarr.latent chunk (it carries its own CRC)
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numcodecs import BitRound

from latentzarr_codecs.config import DTYPES, STORAGE_DTYPES
from latentzarr_codecs.engine import decode_chunk, encode_chunk, resolve_dtype
from latentzarr_codecs.errors import CorruptChunkError, UnsupportedVersionError

__all__ = [
    "LOSSY_CONFIG_KEYS",
    "LOSSY_FORMAT_VERSION",
    "LOSSY_NAME",
    "MANTISSA_BITS",
    "SCHEMES",
    "decode_lossy_chunk",
    "encode_lossy_chunk",
    "error_bound",
    "parse_scheme",
]

LOSSY_NAME = "latentzarr.lossy"
"""Registered name: the Zarr v3 codec ``name`` and the numcodecs ``codec_id``."""
LOSSY_FORMAT_VERSION = 1
LOSSY_CONFIG_KEYS = frozenset({"version", "scheme", "keepbits", "bits", "steps", "dtype", "level"})
SCHEMES: tuple[str, ...] = ("bitround", "affine", "step")
"""Scheme names, in the order of their one-byte code minus one (never reorder)."""
MANTISSA_BITS: dict[str, int] = {"float16": 10, "bfloat16": 7, "float32": 23}
"""Explicit mantissa bits per float value dtype (the most ``keepbits`` can be)."""
_EMIN = {"float16": -14, "bfloat16": -126, "float32": -126}
_MAGIC = b"LY"
_FIXED = 22


def parse_scheme(
    scheme: Any, keepbits: Any = None, bits: Any = None, steps: Any = None
) -> tuple[str, int | None, int | None, tuple[float, ...] | None]:
    """Validate a scheme and its one parameter; return ``(scheme, keepbits, bits, steps)`` with the others None."""
    if scheme not in SCHEMES:
        raise ValueError(f"Expected scheme to be one of {list(SCHEMES)}. Got {scheme!r} instead.")
    given = {"keepbits": keepbits, "bits": bits, "steps": steps}
    wanted = {"bitround": "keepbits", "affine": "bits", "step": "steps"}[scheme]
    extra = sorted(k for k, v in given.items() if v is not None and k != wanted)
    if extra:
        raise ValueError(f"Expected only {wanted!r} with scheme {scheme!r}. Got also {extra!r} instead.")
    if scheme == "bitround":
        if isinstance(keepbits, bool) or not isinstance(keepbits, int) or not 0 <= keepbits <= 23:
            raise ValueError(f"Expected keepbits to be an integer from 0 to 23. Got {keepbits!r} instead.")
        return scheme, keepbits, None, None
    if scheme == "affine":
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"Expected bits to be an integer from 1 to 16. Got {bits!r} instead.")
        return scheme, None, bits, None
    values = [steps] if isinstance(steps, int | float) and not isinstance(steps, bool) else steps
    if (
        not isinstance(values, Sequence)
        or isinstance(values, str)
        or not values
        or not all(isinstance(s, int | float) and not isinstance(s, bool) for s in values)
        or not all(math.isfinite(s) and s > 0 for s in values)
    ):
        raise ValueError(
            f"Expected steps to be a positive finite number or a non-empty list of them. Got {steps!r} instead."
        )
    return scheme, None, None, tuple(float(s) for s in values)


# ---------------------------------------------------------------------------------------------- value helpers
def _as_float(array: np.ndarray, name: str) -> np.ndarray:
    """The values of ``array`` (value dtype ``name``) as float64 (bfloat16 bits widened exactly)."""
    if name == "bfloat16":
        bits = np.ascontiguousarray(array).reshape(-1).view(np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).astype(np.float64)
    return np.asarray(array, dtype=np.float64).reshape(-1)


def bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float values -> bfloat16 bits (uint16), round to nearest even (finite inputs)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) >> 16).astype(np.uint16)


def _plane_size(shape: tuple[int, ...]) -> int:
    return int(shape[-1] * shape[-2]) if len(shape) >= 2 else int(np.prod(shape, dtype=np.int64))


def _check_finite(values: np.ndarray) -> None:
    if not np.isfinite(values).all():
        bad = int(values.size - np.isfinite(values).sum())
        raise ValueError(f"Expected finite values for lossy encoding. Got {bad} NaN/Inf values instead.")


def _bitround(array: np.ndarray, name: str, keepbits: int) -> np.ndarray:
    """Rounded values in the storage dtype (bfloat16 as uint16 bits); overflow to inf is truncated instead."""
    if keepbits > MANTISSA_BITS[name]:
        raise ValueError(
            f"Expected keepbits <= {MANTISSA_BITS[name]} for {name} values. Got keepbits={keepbits} instead."
        )
    if name == "bfloat16":
        f32 = (np.ascontiguousarray(array).reshape(-1).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        rounded = _bitround(f32, "float32", keepbits).view(np.float32)
        return (rounded.view(np.uint32) >> 16).astype(np.uint16)  # exact: at most 7 mantissa bits left
    flat = np.ascontiguousarray(array, dtype=np.dtype(name)).reshape(-1)
    rounded = np.asarray(BitRound(keepbits=keepbits).encode(flat)).view(np.dtype(name))
    overflow = ~np.isfinite(rounded)
    if overflow.any():
        int_dtype = np.dtype(f"i{flat.dtype.itemsize}")
        drop = MANTISSA_BITS[name] - keepbits
        mask = (np.array(-1, dtype=int_dtype) >> drop) << drop
        rounded = rounded.copy()
        rounded[overflow] = (flat[overflow].view(int_dtype) & mask).view(flat.dtype)
    return rounded


def error_bound(
    values: np.ndarray,
    scheme: str,
    *,
    keepbits: int | None = None,
    bits: int | None = None,
    steps: Sequence[float] | None = None,
    dtype: str | None = None,
) -> np.ndarray:
    """The documented bound on ``|x - x'|`` for every value of ``values`` (float64, same shape).

    ``dtype`` is the value dtype (default: the array's; ``"bfloat16"`` for its bits as uint16). The bound is on
    the reconstruction before its cast to the output dtype (see the module docstring).
    """
    arr = np.asarray(values)
    name = resolve_dtype(arr.dtype, dtype)
    x = _as_float(arr, name).reshape(arr.shape)
    scheme, keepbits, bits, steps = parse_scheme(scheme, keepbits, bits, steps)
    if scheme == "bitround":
        ax = np.abs(x)
        with np.errstate(divide="ignore"):
            e = np.maximum(np.floor(np.log2(np.where(ax > 0, ax, 1.0))), _EMIN[name])
        return np.where(ax > 0, np.exp2(e - keepbits - 1), 0.0)
    plane = _plane_size(arr.shape)
    planes = x.reshape(-1, plane) if plane else x.reshape(0, 0)
    if scheme == "affine":
        _offsets, scales = _affine_params(planes, bits)
        per_plane = scales.astype(np.float64) / 2
    else:
        per_plane = np.array([steps[i % len(steps)] for i in range(len(planes))]) / 2
    return np.broadcast_to(per_plane[:, None], planes.shape).reshape(arr.shape).copy()


def _affine_params(planes: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-plane float32 offsets (the minima, exact) and scales (rounded up so the maximum stays in range)."""
    if planes.shape[1] == 0:
        return np.zeros(len(planes), np.float32), np.zeros(len(planes), np.float32)
    lo = planes.min(axis=1)
    hi = planes.max(axis=1)
    offsets = lo.astype(np.float32)
    exact = (hi - offsets.astype(np.float64)) / (2**bits - 1)
    scales = exact.astype(np.float32)
    low = scales.astype(np.float64) < exact
    scales[low] = np.nextafter(scales[low], np.float32(np.inf))
    return offsets, scales


# ---------------------------------------------------------------------------------------------- encode / decode
def _header(scheme: str, name: str, nbits: int, params: bytes, n_params: int, plane: int) -> bytes:
    head = _MAGIC + bytes([LOSSY_FORMAT_VERSION])
    rest = bytes([SCHEMES.index(scheme) + 1, DTYPES.index(name), nbits]) + struct.pack("<IQ", n_params, plane)
    rest += params
    crc = zlib.crc32(rest, zlib.crc32(head))
    return head + struct.pack("<I", crc) + rest


def encode_lossy_chunk(
    array: np.ndarray,
    scheme: str,
    *,
    keepbits: int | None = None,
    bits: int | None = None,
    steps: Sequence[float] | None = None,
    dtype: str | None = None,
    level: int = 9,
) -> bytes:
    """Encode ``array`` (float16, float32, or bfloat16 / its uint16 bits with ``dtype="bfloat16"``) lossily.

    Returns header, parameters and a ``latentzarr.latent`` payload; see the module docstring for the bounds.
    """
    arr = np.asarray(array)
    name = resolve_dtype(arr.dtype, dtype)
    if name not in MANTISSA_BITS:
        raise TypeError(f"Expected float values (float16, float32, bfloat16) for lossy encoding. Got {name} instead.")
    scheme, keepbits, bits, steps = parse_scheme(scheme, keepbits, bits, steps)
    x = _as_float(arr, name)
    _check_finite(x)
    plane = _plane_size(arr.shape)
    if scheme == "bitround":
        rounded = _bitround(arr, name, keepbits)
        payload = encode_chunk(rounded, "bfloat16" if name == "bfloat16" else name, level, version=1)
        return _header(scheme, name, keepbits, b"", 0, plane) + payload
    planes = x.reshape(-1, plane) if plane else x.reshape(0, 0)
    if scheme == "affine":
        offsets, scales = _affine_params(planes, bits)
        safe = np.where(scales > 0, scales, 1).astype(np.float64)
        codes = np.rint((planes - offsets.astype(np.float64)[:, None]) / safe[:, None])
        codes = np.clip(codes, 0, 2**bits - 1).astype(np.uint16)
        params = offsets.astype("<f4").tobytes() + scales.astype("<f4").tobytes()
        return _header(scheme, name, bits, params, len(planes), plane) + encode_chunk(
            codes.reshape(-1), None, level, version=1
        )
    step_per_plane = np.array([steps[i % len(steps)] for i in range(len(planes))], dtype=np.float64)
    q = np.rint(planes / step_per_plane[:, None]) if planes.size else planes
    if planes.size and np.abs(q).max() >= 2.0**62:
        raise ValueError(f"Expected steps that give codes below 2**62 for these values. Got steps={steps!r} instead.")
    q = q.astype(np.int64)
    bases = q.min(axis=1) if planes.shape[1] else np.zeros(len(planes), np.int64)
    codes = q - bases[:, None]
    span = int(codes.max()) if codes.size else 0
    if span >= 2**32:
        raise ValueError(
            f"Expected steps that give at most 2**32 codes per plane. Got {span + 1} codes with steps={steps!r} "
            "instead; use a larger step."
        )
    codes = codes.astype(np.uint16 if span < 2**16 else np.uint32)
    params = step_per_plane.astype("<f8").tobytes() + bases.astype("<i8").tobytes()
    return _header(scheme, name, 0, params, len(planes), plane) + encode_chunk(
        codes.reshape(-1), None, level, version=1
    )


def decode_lossy_chunk(data: bytes) -> tuple[np.ndarray, str, str]:
    """Decode a lossy chunk.

    Returns
    -------
    values, dtype_name, scheme
        For ``bitround`` the flat rounded values in their storage dtype (bfloat16 as uint16 bits); for ``affine``
        and ``step`` the flat float64 reconstruction. ``dtype_name`` is the value dtype that was encoded.

    Raises
    ------
    CorruptChunkError, UnsupportedVersionError
        As for ``latentzarr.latent`` chunks.
    """
    view = memoryview(data).cast("B")
    if len(view) < _FIXED:
        raise CorruptChunkError(
            f"Expected an encoded {LOSSY_NAME} chunk of at least {_FIXED} bytes. Got {len(view)} bytes instead."
        )
    if bytes(view[:2]) != _MAGIC:
        raise CorruptChunkError(
            f"Expected a chunk starting with magic {_MAGIC!r}. Got {bytes(view[:2])!r} instead: the chunk is "
            f"corrupt or was not written by {LOSSY_NAME}."
        )
    scheme_code, code, _nbits = view[7], view[8], view[9]
    n_params, plane = struct.unpack("<IQ", view[10:_FIXED])
    width = {1: 0, 2: 8, 3: 16}.get(scheme_code, 0) * n_params
    end = _FIXED + width
    (stored_crc,) = struct.unpack("<I", view[3:7])
    if len(view) < end or zlib.crc32(view[7:end], zlib.crc32(view[:3])) != stored_crc:
        raise CorruptChunkError(f"Expected a valid {LOSSY_NAME} header (CRC-32 match). Got a corrupt header instead.")
    if not 1 <= view[2] <= LOSSY_FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"Expected a chunk of format version <= {LOSSY_FORMAT_VERSION}. Got version {view[2]} instead: it was "
            f"written by a newer latentzarr-codecs. Upgrade latentzarr-codecs (pip install -U latentzarr-codecs)."
        )
    if scheme_code not in (1, 2, 3) or code >= len(DTYPES) or DTYPES[code] not in MANTISSA_BITS:
        raise CorruptChunkError(f"Expected a known scheme and float dtype. Got {scheme_code}, {code} instead.")
    name, scheme = DTYPES[code], SCHEMES[scheme_code - 1]
    inner, _ = decode_chunk(bytes(view[end:]))
    if scheme == "bitround":
        if inner.dtype != np.dtype(STORAGE_DTYPES[name]):
            raise CorruptChunkError(f"Expected {name} values in a bitround chunk. Got {inner.dtype} instead.")
        return inner, name, scheme
    if inner.size != n_params * plane:
        raise CorruptChunkError(f"Expected {n_params * plane} codes. Got {inner.size} instead.")
    codes = inner.astype(np.float64).reshape(n_params, plane) if plane else inner.astype(np.float64)
    if scheme == "affine":
        offsets = np.frombuffer(view[_FIXED : _FIXED + 4 * n_params], "<f4").astype(np.float64)
        scales = np.frombuffer(view[_FIXED + 4 * n_params : end], "<f4").astype(np.float64)
        values = offsets[:, None] + codes * scales[:, None]
    else:
        step = np.frombuffer(view[_FIXED : _FIXED + 8 * n_params], "<f8")
        bases = np.frombuffer(view[_FIXED + 8 * n_params : end], "<i8").astype(np.float64)
        values = (codes + bases[:, None]) * step[:, None]
    return values.reshape(-1), name, scheme


def cast_values(values: np.ndarray, source: str, target: np.dtype) -> np.ndarray:
    """Decoded values (storage dtype for bitround, float64 otherwise) -> ``target`` dtype.

    ``target`` may be float16/32/64, ml_dtypes bfloat16, or uint16 (bfloat16 bits, only for bfloat16 values).
    """
    target = np.dtype(target)
    if values.dtype == np.uint16 and source == "bfloat16":  # bitround bfloat16 bits
        if target == np.uint16 or target.name == "bfloat16":
            return values.view(target)
        values = (values.astype(np.uint32) << 16).view(np.float32)
    if target == np.uint16:
        if source != "bfloat16":
            raise TypeError(f"Expected a float output dtype for {source} values. Got uint16 instead.")
        return bfloat16_bits(values)
    if target.name == "bfloat16":
        return bfloat16_bits(values).view(target)
    if target.kind != "f":
        raise TypeError(f"Expected a float output dtype. Got {target} instead.")
    return values.astype(target)
