"""The encoding engine shared by the Zarr v3 and numcodecs front ends.

A chunk is encoded as a 9-byte header followed by a pcodec standalone payload::

    offset  size  field
    0       2     magic b"LZ"
    2       1     format version (1 or 2; the configuration's version)
    3       4     CRC-32 (zlib, little-endian) of bytes 0-2 and of every byte from offset 7 on
    7       1     mode: 0 empty, 1 plain pcodec, 2 pcodec with one chunk per 2-D plane
    8       1     value dtype code: index into ``config.DTYPES`` (float32, float16, bfloat16, uint16, uint32)
    9       ...   payload

Bytes 0-6 keep this layout in every future version, so a damaged chunk is always reported as corrupt (the CRC
is checked before the version) and a chunk from a newer version always as "upgrade latentzarr-codecs".

Encoding is lossless for every bit pattern: values are handed to pcodec as the integers or floats whose bits they
are (bfloat16 as uint16, which pcodec models as ordered integers; pcodec maps floats to ordered integers itself).
There are two layouts (the header's mode):

- plain: exactly what numcodecs' ``PCodec(level)`` writes (auto mode, auto delta, pages of up to 262144 values);
- planes: one pcodec chunk per 2-D plane (the last two axes; per latent channel for (1, C, h, w) chunks), so each
  channel gets its own bins.

Versions 1 and 2 share this chunk layout and decode the same way (a pcodec payload describes itself); they differ
only in how the encoder chooses, so that one configuration always writes the same bytes:

- version 1 encodes both layouts at ``level`` (auto delta) whenever planes have 256-262144 values, and keeps the
  smaller. The planes attempt costs 4-5x the plain one (pcodec's per-chunk bin optimisation and delta search
  dominate many small chunks), so it compresses at 0.15-0.2x of ``PCodec``'s speed.
- version 2 (the default) tries planes only when a plane has at least ``V2_MIN_PLANE_VALUES`` values (smaller planes
  lost to plain on every latent measured), encodes them with delta off (the delta search costs more than the
  plain encode on many small chunks and buys under 0.3%), ``V2_PLANES_LEVEL_DROP`` level below ``level`` while
  planes have fewer than ``V2_FULL_LEVEL_PLANE_VALUES`` values (the per-chunk bin optimisation dominates there),
  and keeps the smaller of the two; when it does not try planes it spends that time on the plain layout one level
  higher. On taef2 latents: 2-3x faster than version 1 at -0.1% to +0.3% bytes (BENCHMARKS.md "Codec").

Either way an encoded chunk is never more than 9 bytes larger than numcodecs' plain ``PCodec`` output at ``level``
(in total it is smaller: the planes layout or the higher level more than pays for the header).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from pcodec import ChunkConfig, DeltaSpec, ModeSpec, PagingSpec, standalone

from latentzarr_codecs.config import DEFAULT_LEVEL, DTYPES, FORMAT_VERSION, STORAGE_DTYPES
from latentzarr_codecs.errors import CorruptChunkError, UnsupportedVersionError

__all__ = [
    "HEADER_SIZE",
    "MODE_EMPTY",
    "MODE_PLAIN",
    "MODE_PLANES",
    "decode_chunk",
    "encode_chunk",
    "resolve_dtype",
]

MAGIC = b"LZ"
HEADER_SIZE = 9
"""Bytes of header in front of every encoded chunk."""
MODE_EMPTY, MODE_PLAIN, MODE_PLANES = 0, 1, 2
PLAIN_PAGE_VALUES = 262144
"""numcodecs' ``PCodec`` default ``equal_pages_up_to`` (values per pcodec page)."""
MIN_PLANE_VALUES = 256
"""Version 1: planes smaller than this many values are not worth their own pcodec chunk metadata."""
V2_MIN_PLANE_VALUES = 4096
"""Version 2: the planes layout is tried only for planes of at least this many values (64 x 64)."""
V2_PLANES_LEVEL_DROP = 1
"""Version 2: planes smaller than ``V2_FULL_LEVEL_PLANE_VALUES`` are encoded at ``level - V2_PLANES_LEVEL_DROP``."""
V2_FULL_LEVEL_PLANE_VALUES = 16384
"""Version 2: planes of at least this many values (128 x 128: 1024 px images) are encoded at ``level``."""
_NATIVE = ("float32", "float16", "uint16", "uint32")


def resolve_dtype(array_dtype: np.dtype, configured: str | None) -> str:
    """Return the value dtype name for an array of ``array_dtype`` under the configured ``dtype``.

    ``bfloat16`` is accepted as ml_dtypes' ``bfloat16`` or as its bits in ``uint16``. Raises ``TypeError``
    for any other combination (never casts: a cast could lose bits).
    """
    name = np.dtype(array_dtype).name
    if name == "bfloat16" and configured in (None, "bfloat16"):
        return "bfloat16"
    if name in _NATIVE:
        if configured is None or configured == name:
            return name
        if configured == "bfloat16" and name == "uint16":
            return "bfloat16"
    wanted = (
        "float32, float16, bfloat16 (ml_dtypes, or its bits as uint16), uint16 or uint32"
        if configured is None
        else f"{configured}" + (" (ml_dtypes bfloat16, or its bits as uint16)" if configured == "bfloat16" else "")
    )
    raise TypeError(
        f"Expected an array of dtype {wanted}. Got {np.dtype(array_dtype)!s} instead. Pass the values in their "
        f"own dtype or set the codec's dtype; the codec never casts."
    )


def _config(level: int, paging: PagingSpec, delta: DeltaSpec | None = None) -> ChunkConfig:
    return ChunkConfig(
        compression_level=level,
        mode_spec=ModeSpec.auto(),
        delta_spec=DeltaSpec.auto() if delta is None else delta,
        paging_spec=paging,
    )


def _header(mode: int, dtype_name: str, payload: bytes, version: int = FORMAT_VERSION) -> bytes:
    head = MAGIC + bytes([version])
    tail = bytes([mode, DTYPES.index(dtype_name)])
    crc = zlib.crc32(payload, zlib.crc32(tail, zlib.crc32(head)))
    return head + struct.pack("<I", crc) + tail


def encode_chunk(
    array: np.ndarray, dtype: str | None = None, level: int = DEFAULT_LEVEL, version: int = FORMAT_VERSION
) -> bytes:
    """Encode ``array`` (any shape, C or F order) losslessly.

    Parameters
    ----------
    array
        The values; see :func:`resolve_dtype` for accepted dtypes. Read in C order.
    dtype
        The configured value dtype, or ``None`` for the array's own.
    level
        pcodec compression level (0-12).
    version
        Format version whose encoder choices to follow (1 or 2; see the module docstring).

    Returns
    -------
    bytes
        Header plus payload; at most ``HEADER_SIZE`` bytes larger than plain pcodec at ``level``.
    """
    array = np.asarray(array)
    name = resolve_dtype(array.dtype, dtype)
    storage = np.dtype(STORAGE_DTYPES[name])
    native = array.dtype.newbyteorder("=") if array.dtype.byteorder in "<>" else array.dtype
    flat = np.ascontiguousarray(array, dtype=native).reshape(-1).view(storage)
    if flat.size == 0:
        return _header(MODE_EMPTY, name, b"", version)
    plane = array.shape[-1] * array.shape[-2] if array.ndim >= 3 else 0
    n_planes = flat.size // plane if plane else 0
    smallest = MIN_PLANE_VALUES if version == 1 else V2_MIN_PLANE_VALUES
    try_planes = n_planes >= 2 and smallest <= plane <= PLAIN_PAGE_VALUES
    plain_level = level if version == 1 or try_planes else min(level + 1, 12)
    mode = MODE_PLAIN
    payload = standalone.simple_compress(flat, _config(plain_level, PagingSpec.equal_pages_up_to(PLAIN_PAGE_VALUES)))
    if try_planes:
        paging = PagingSpec.exact_page_sizes([plane] * n_planes)
        if version == 1:
            config = _config(level, paging)
        else:
            drop = V2_PLANES_LEVEL_DROP if plane < V2_FULL_LEVEL_PLANE_VALUES else 0
            config = _config(max(level - drop, 0), paging, DeltaSpec.no_op())
        planes = standalone.simple_compress(flat, config)
        if len(planes) < len(payload):
            mode, payload = MODE_PLANES, planes
    return _header(mode, name, payload, version) + payload


def decode_chunk(data: bytes, dtype: str | None = None) -> tuple[np.ndarray, str]:
    """Decode an encoded chunk to a flat array of its storage dtype.

    Parameters
    ----------
    data
        The encoded chunk.
    dtype
        The configured value dtype; ``None`` accepts whatever the chunk says.

    Returns
    -------
    values, dtype_name
        A 1-D array in the storage dtype (``uint16`` for bfloat16) and the value dtype name from the header.

    Raises
    ------
    CorruptChunkError
        Bad magic, CRC mismatch, truncated data, unknown mode or dtype code, or a dtype other than ``dtype``.
    UnsupportedVersionError
        The chunk is intact but was written by a newer format version.
    """
    view = memoryview(data).cast("B")
    if len(view) < HEADER_SIZE:
        raise CorruptChunkError(
            f"Expected an encoded latentzarr.latent chunk of at least {HEADER_SIZE} bytes. "
            f"Got {len(view)} bytes instead: the chunk is truncated."
        )
    if bytes(view[:2]) != MAGIC:
        raise CorruptChunkError(
            f"Expected a chunk starting with magic {MAGIC!r}. Got {bytes(view[:2])!r} instead: the chunk is "
            f"corrupt or was not written by latentzarr.latent."
        )
    (stored_crc,) = struct.unpack("<I", view[3:7])
    crc = zlib.crc32(view[7:], zlib.crc32(view[:3]))
    if crc != stored_crc:
        raise CorruptChunkError(
            f"Expected CRC-32 {stored_crc:#010x} (from the chunk header). Got {crc:#010x} instead: the chunk "
            f"({len(view)} bytes) is corrupt."
        )
    version = view[2]
    if version > FORMAT_VERSION or version < 1:
        raise UnsupportedVersionError(
            f"Expected a chunk of format version <= {FORMAT_VERSION}. Got version {version} instead: it was "
            f"written by a newer latentzarr-codecs. Upgrade latentzarr-codecs (pip install -U latentzarr-codecs)."
        )
    mode, code = view[7], view[8]
    if code >= len(DTYPES) or mode not in (MODE_EMPTY, MODE_PLAIN, MODE_PLANES):
        raise CorruptChunkError(f"Expected a known mode and dtype code. Got mode {mode}, dtype code {code} instead.")
    name = DTYPES[code]
    if dtype is not None and name != dtype:
        raise CorruptChunkError(
            f"Expected a chunk of dtype {dtype} (the codec configuration). Got a chunk encoded as {name} instead."
        )
    storage = np.dtype(STORAGE_DTYPES[name])
    payload = bytes(view[HEADER_SIZE:])
    if mode == MODE_EMPTY:
        if payload:
            raise CorruptChunkError(f"Expected no payload in an empty chunk. Got {len(payload)} bytes instead.")
        return np.empty(0, dtype=storage), name
    try:
        values = standalone.simple_decompress(payload)
    except (RuntimeError, TypeError, ValueError) as err:
        raise CorruptChunkError(f"Expected a valid pcodec payload. Got an error instead: {err}") from err
    if values is None or values.dtype != storage:
        got = None if values is None else values.dtype
        raise CorruptChunkError(f"Expected pcodec values of dtype {storage}. Got {got} instead.")
    return values, name
