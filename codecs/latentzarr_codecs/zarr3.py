"""The Zarr v3 front end: an array-to-bytes codec (use it as ``serializer=``), registered as ``latentzarr.latent``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec

from latentzarr_codecs.config import (
    CODEC_NAME,
    CONFIG_KEYS,
    DEFAULT_LEVEL,
    FORMAT_VERSION,
    parse_dtype,
    parse_level,
    parse_version,
)
from latentzarr_codecs.engine import resolve_dtype
from latentzarr_codecs.numcodecs_codec import LatentPCodec

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

__all__ = ["EngineBytesCodec", "LatentCodec"]


def _native(dtype: np.dtype) -> np.dtype:
    """``dtype`` in the machine's byte order (the engine works on native values)."""
    return dtype.newbyteorder("=") if dtype.byteorder in "<>" else dtype


class EngineBytesCodec(ArrayBytesCodec):
    """Zarr v3 plumbing shared by latentzarr's array-to-bytes codecs.

    A subclass (a frozen dataclass with a ``dtype`` field: the configured value dtype, ``None`` until the array
    is created) defines ``_engine``, a numcodecs codec that encodes one chunk to bytes and decodes bytes into a
    preallocated array of native byte order. Chunks are encoded and decoded in worker threads.
    """

    is_fixed_size = False

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        """Record the array's dtype in the configuration when none was given."""
        if self.dtype is None:
            return replace(self, dtype=resolve_dtype(array_spec.dtype.to_native_dtype(), None))
        return self

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        dtype = chunk_spec.dtype.to_native_dtype()
        resolve_dtype(dtype, self.dtype)
        out = np.empty(chunk_spec.shape, dtype=_native(dtype))
        self._engine.decode(chunk_bytes.to_bytes(), out=out)
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(out.astype(dtype, copy=False))

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        encoded = self._engine.encode(np.ascontiguousarray(chunk_array.as_numpy_array()))
        return chunk_spec.prototype.buffer.from_bytes(encoded)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        """Not known in advance (variable-size output)."""
        raise NotImplementedError


@dataclass(frozen=True)
class LatentCodec(EngineBytesCodec):
    """Lossless pcodec-based array-to-bytes codec for latent tensors.

    Parameters
    ----------
    dtype
        Value dtype: ``"float32"``, ``"float16"``, ``"bfloat16"`` (stored as its bits in a ``uint16`` array),
        ``"uint16"`` or ``"uint32"``; ``None`` (default) takes the array's dtype when the array is created.
    level
        pcodec compression level 0-12 (default 8, as numcodecs' ``PCodec``). Only encoding depends on it.
    version
        Configuration / chunk format version: 1 or 2 (the default); they decode alike and differ in how the
        encoder picks a chunk's layout.

    Examples
    --------
    >>> import zarr
    >>> from latentzarr_codecs import LatentCodec
    >>> z = zarr.create_array({}, shape=(2, 4, 8, 8), chunks=(1, 4, 8, 8), dtype="uint16",
    ...                       serializer=LatentCodec(dtype="bfloat16"))
    """

    version: int = FORMAT_VERSION
    dtype: str | None = None
    level: int = DEFAULT_LEVEL

    def __init__(self, *, version: int = FORMAT_VERSION, dtype: str | None = None, level: int = DEFAULT_LEVEL) -> None:
        object.__setattr__(self, "version", parse_version(version))
        object.__setattr__(self, "dtype", parse_dtype(dtype))
        object.__setattr__(self, "level", parse_level(level))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from ``{"name": "latentzarr.latent", "configuration": {...}}`` (configuration optional)."""
        if not isinstance(data, dict) or data.get("name") != CODEC_NAME:
            raise ValueError(f"Expected a codec dict named {CODEC_NAME!r}. Got {data!r} instead.")
        config = data.get("configuration", {})
        if not isinstance(config, dict):
            raise ValueError(f"Expected the configuration to be a dict. Got {config!r} instead.")
        parse_version(config.get("version", FORMAT_VERSION))  # a newer version explains unknown keys
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"Expected configuration keys among {sorted(CONFIG_KEYS)}. Got unknown keys {unknown!r} instead."
            )
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON metadata; ``dtype`` is left out while it is ``None``."""
        config: dict[str, Any] = {"version": self.version}
        if self.dtype is not None:
            config["dtype"] = self.dtype
        config["level"] = self.level
        return {"name": CODEC_NAME, "configuration": config}

    @cached_property
    def _engine(self) -> LatentPCodec:
        return LatentPCodec(dtype=self.dtype, level=self.level, version=self.version)

    def validate(
        self, *, shape: tuple[int, ...], dtype: ZDType[TBaseDType, TBaseScalar], chunk_grid: ChunkGrid
    ) -> None:
        """Refuse array dtypes the configured ``dtype`` cannot be read from (raises ``TypeError``)."""
        resolve_dtype(dtype.to_native_dtype(), self.dtype)
