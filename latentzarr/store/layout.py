"""The on-disk layout of a latent store: names, attributes, data types and codecs.

A store is one Zarr v3 group::

    <root>/zarr.json                  group; attrs {"latentzarr": {"format_version": 2, "shard_images": S, ...}}
    <root>/arrays/zarr.json           group holding one array per (model, latent shape, logical dtype)
    <root>/arrays/<name>/             array (rows, C, h, w), chunks (1, C, h, w), shards (S, C, h, w)
    <root>/index/<seq:010d>.parquet   one immutable commit file per successful ``put``
    <root>/index/checkpoint-<seq:010d>.parquet   merged commits 0..seq (optional, derived data)
    <root>/index/latest-checkpoint    seq of the newest checkpoint (a hint for readers)
    <root>/.latentzarr.lock           writer lock (file lock locally, lease object on object stores)

Array names look like ``taef2-32x64x64-float16``; an array of a lossy precision mode (see
:mod:`latentzarr.precision.modes`) adds the mode, e.g. ``taef2-32x64x64-float16-q8``, uses the mode's serializer
(``latentzarr.lossy``) and records the mode in its attributes (``latentzarr.precision``). Lossless arrays carry no
``precision`` attribute (their serializer, ``latentzarr.latent``, says so).

bfloat16 latents are stored as their uint16 bits (Zarr has no bfloat16 data type); the array attribute
``latentzarr.dtype`` records the logical dtype.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import ml_dtypes
import numpy as np
from zarr.abc.codec import ArrayBytesCodec

__all__ = [
    "ARRAYS_GROUP",
    "FORMAT_VERSION",
    "INDEX_DIR",
    "LOCK_NAME",
    "LOGICAL_DTYPES",
    "array_name",
    "fill_value",
    "latent_digest",
    "logical_dtype_name",
    "nan_rows",
    "numpy_dtype",
    "precision_suffix",
    "storage_dtype",
    "to_logical",
]

FORMAT_VERSION = 2
"""Store format version written by this code; stores with a larger version are refused.

1: append-only rows. 2: ids may move (move commits, see :mod:`latentzarr.store.index`) and rows no id points to
may be reclaimed (:meth:`LatentStore.vacuum`). New stores are created at 2, and a store of version 1 is raised to 2
by its first move, so that code which predates moves (and would read, or checkpoint, an id's old row) refuses it.
"""

ARRAYS_GROUP = "arrays"
INDEX_DIR = "index"
LOCK_NAME = ".latentzarr.lock"

LOGICAL_DTYPES = ("float16", "float32", "bfloat16")
"""The latent dtypes a store accepts, by name."""

_BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
_BF16_NAN_BITS = 0x7FC0
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def logical_dtype_name(dtype: np.dtype) -> str | None:
    """Name of ``dtype`` among :data:`LOGICAL_DTYPES`, or None when it is not one of them."""
    dtype = np.dtype(dtype)
    if dtype.byteorder in "<>":
        dtype = dtype.newbyteorder("=")
    if dtype == _BFLOAT16:
        return "bfloat16"
    if dtype in (np.dtype(np.float16), np.dtype(np.float32)):
        return dtype.name
    return None


def numpy_dtype(logical: str) -> np.dtype:
    """The numpy dtype of a logical dtype name (``ml_dtypes.bfloat16`` for ``"bfloat16"``)."""
    return _BFLOAT16 if logical == "bfloat16" else np.dtype(logical)


def storage_dtype(logical: str) -> np.dtype:
    """The Zarr data type that holds a logical dtype: uint16 bits for bfloat16, else the dtype itself."""
    return np.dtype(np.uint16) if logical == "bfloat16" else np.dtype(logical)


def fill_value(logical: str) -> float | int:
    """Fill value of unwritten rows: NaN (or bfloat16 NaN bits), which a committed latent never holds."""
    return _BF16_NAN_BITS if logical == "bfloat16" else float("nan")


def to_storage(latents: np.ndarray, logical: str) -> np.ndarray:
    """View latents of a logical dtype as little-endian storage values (no copy when already so)."""
    if logical == "bfloat16":
        return latents.view(np.uint16).astype("<u2", copy=False)
    return latents.astype(np.dtype(logical).newbyteorder("<"), copy=False)


def latent_digest(stored: np.ndarray) -> bytes:
    """SHA-256 (32 bytes) of one latent's stored little-endian bits (:func:`to_storage`): what the index records."""
    return hashlib.sha256(np.ascontiguousarray(stored).tobytes()).digest()


def to_logical(stored: np.ndarray, logical: str) -> np.ndarray:
    """View stored values as the logical dtype (uint16 bits -> ``ml_dtypes.bfloat16``), native byte order."""
    stored = stored.astype(stored.dtype.newbyteorder("="), copy=False)
    return stored.view(_BFLOAT16) if logical == "bfloat16" else stored


def nan_rows(stored: np.ndarray, logical: str) -> np.ndarray:
    """Boolean (N,) mask of unwritten or lost rows (first axis) of stored values.

    A chunk is one row and committed latents never hold NaN, so a row whose first value is the NaN fill value
    is a row without data; checking one value per row is enough.
    """
    first = stored.reshape(len(stored), -1)[:, 0]
    return (first & 0x7FFF) > 0x7F80 if logical == "bfloat16" else np.isnan(first)


def precision_suffix(mode_name: str) -> str:
    """The array-name suffix of a lossy precision mode's name: ``"q8"`` -> ``"q8"``, ``"bitround:7"`` ->
    ``"bitround7"``, ``"step:0.04"`` -> ``"step0.04"``; ``""`` for ``"lossless"``."""
    if mode_name == "lossless":
        return ""
    return _SAFE.sub("_", mode_name.replace(":", "")).strip("._") or "lossy"


def array_name(model: str, shape: tuple[int, int, int], logical: str, precision: str = "lossless") -> str:
    """The array name of a (model, latent shape (C, h, w), logical dtype), e.g. ``taef2-32x64x64-float16``.

    Characters of ``model`` outside ``[A-Za-z0-9._-]`` become ``_``; the exact model id is kept in the
    array's attributes. A lossy ``precision`` (a mode's name) adds a suffix: ``taef2-32x64x64-float16-q8``.
    """
    safe = _SAFE.sub("_", model).strip("._") or "model"
    name = f"{safe}-{'x'.join(str(int(s)) for s in shape)}-{logical}"
    suffix = precision_suffix(precision)
    return f"{name}-{suffix}" if suffix else name


def serializer(logical: str, precision: dict[str, Any] | None = None) -> ArrayBytesCodec:
    """The array-to-bytes codec of a new array holding ``logical`` latents (the one place that chooses it).

    ``LatentCodec`` checksums every chunk itself (CRC-32 in its header), so no bytes-to-bytes checksum codec
    follows it; bfloat16 bits arrive as uint16 and the codec is told what they mean. ``precision`` (a
    :meth:`PrecisionMode.to_config` dict; None: lossless) selects the lossy codec ``latentzarr.lossy`` instead,
    which checksums its chunks too.
    """
    if precision is not None and precision.get("lossy"):
        from latentzarr.precision.modes import PrecisionMode

        return PrecisionMode.from_config(precision).zarr_serializer(dtype=logical)
    from latentzarr_codecs.zarr3 import LatentCodec

    return LatentCodec(dtype=logical)
