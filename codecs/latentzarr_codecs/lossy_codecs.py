"""numcodecs and Zarr v3 front ends of the lossy stage (``latentzarr.lossy``); see :mod:`latentzarr_codecs.lossy`.

Configuration (format version 1), as JSON, with exactly one of ``keepbits`` / ``bits`` / ``steps``::

    {"version": 1, "scheme": "affine", "bits": 8, "dtype": "float16", "level": 9}
    {"version": 1, "scheme": "bitround", "keepbits": 7}
    {"version": 1, "scheme": "step", "steps": [0.04, 0.02, ...]}

An array written with this codec is lossy: readers can tell from its serializer name alone. The stored bytes do
not depend on the array's dtype, so a lossy ``affine`` or ``step`` array can be float32 at no storage cost
(its values are then the reconstruction itself, without a further rounding to float16).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_bytes

from latentzarr_codecs.config import parse_dtype, parse_level
from latentzarr_codecs.engine import resolve_dtype
from latentzarr_codecs.lossy import (
    LOSSY_CONFIG_KEYS,
    LOSSY_FORMAT_VERSION,
    LOSSY_NAME,
    cast_values,
    decode_lossy_chunk,
    encode_lossy_chunk,
    parse_scheme,
)
from latentzarr_codecs.zarr3 import EngineBytesCodec

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

__all__ = ["LossyCodec", "LossyPCodec"]

LOSSY_DEFAULT_LEVEL = 9
"""pcodec level of the lossy codec's entropy stage (its inner chunks follow the lossless format version 1)."""


def _parse_version(data: Any) -> int:
    if isinstance(data, bool) or not isinstance(data, int) or data < 1:
        raise ValueError(f"Expected a positive integer codec version. Got {data!r} instead.")
    if data > LOSSY_FORMAT_VERSION:
        from latentzarr_codecs.errors import UnsupportedVersionError

        raise UnsupportedVersionError(
            f"Expected {LOSSY_NAME} configuration version <= {LOSSY_FORMAT_VERSION}. Got version {data!r} instead: "
            "it was written by a newer latentzarr-codecs. Upgrade latentzarr-codecs (pip install -U latentzarr-codecs)."
        )
    return data


def _check_keys(config: dict[str, Any]) -> None:
    _parse_version(config.get("version", LOSSY_FORMAT_VERSION))
    unknown = sorted(set(config) - LOSSY_CONFIG_KEYS)
    if unknown:
        raise ValueError(
            f"Expected configuration keys among {sorted(LOSSY_CONFIG_KEYS)}. Got unknown keys {unknown!r} instead."
        )


class LossyPCodec(Codec):
    """Lossy latent codec: bit rounding or quantisation, then the lossless pcodec-based engine.

    Parameters
    ----------
    scheme
        ``"bitround"``, ``"affine"`` or ``"step"`` (see :mod:`latentzarr_codecs.lossy` for their error bounds).
    keepbits, bits, steps
        The scheme's parameter: mantissa bits kept; code bits (1-16); the step, or one step per channel.
    dtype
        Value dtype (``"float32"``, ``"float16"``, ``"bfloat16"``) or ``None`` for the array's own.
    level
        pcodec compression level of the entropy stage (0-12).
    version
        Configuration format version; only 1 exists.

    Notes
    -----
    ``decode`` returns a flat array of the encoded value dtype (``bfloat16`` as ml_dtypes ``bfloat16``) or fills
    ``out`` of any float dtype (or ``uint16`` for bfloat16 bits), casting the reconstruction to it.
    """

    codec_id = LOSSY_NAME

    def __init__(
        self,
        scheme: str,
        keepbits: int | None = None,
        bits: int | None = None,
        steps: float | list[float] | tuple[float, ...] | None = None,
        dtype: str | None = None,
        level: int = LOSSY_DEFAULT_LEVEL,
        version: int = LOSSY_FORMAT_VERSION,
    ) -> None:
        self.version = _parse_version(version)
        self.scheme, self.keepbits, self.bits, parsed = parse_scheme(scheme, keepbits, bits, steps)
        self.steps = None if parsed is None else list(parsed)
        self.dtype = parse_dtype(dtype)
        if self.dtype in ("uint16", "uint32"):
            raise ValueError(f"Expected a float dtype (float32, float16, bfloat16) or None. Got {dtype!r} instead.")
        self.level = parse_level(level)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LossyPCodec:
        """Build from a config dict (without ``id``)."""
        _check_keys(config)
        return cls(**config)

    def encode(self, buf: Any) -> bytes:
        """Encode an array of float values (read in C order)."""
        return encode_lossy_chunk(
            np.asarray(buf),
            self.scheme,
            keepbits=self.keepbits,
            bits=self.bits,
            steps=self.steps,
            dtype=self.dtype,
            level=self.level,
        )

    def decode(self, buf: Any, out: Any = None) -> Any:
        """Decode bytes to the reconstructed values; fill and return ``out`` when given."""
        values, name, _ = decode_lossy_chunk(ensure_bytes(buf))
        if self.dtype is not None and name != self.dtype:
            from latentzarr_codecs.errors import CorruptChunkError

            raise CorruptChunkError(f"Expected a chunk of dtype {self.dtype}. Got a chunk of {name} instead.")
        if out is None:
            if name == "bfloat16":
                import ml_dtypes

                return cast_values(values, name, np.dtype(ml_dtypes.bfloat16))
            return cast_values(values, name, np.dtype(name))
        target = np.asarray(out)
        if not target.flags.c_contiguous or target.size != values.size:
            raise ValueError(
                f"Expected a C-contiguous out array of {values.size} values. Got shape {target.shape} instead."
            )
        target.reshape(-1)[...] = cast_values(values, name, target.dtype)
        return out


@dataclass(frozen=True)
class LossyCodec(EngineBytesCodec):
    """Zarr v3 array-to-bytes codec for lossy latents (use it as ``serializer=``), registered as
    ``latentzarr.lossy``. Parameters as :class:`LossyPCodec`; ``steps`` is kept as a tuple.

    Examples
    --------
    >>> import zarr
    >>> from latentzarr_codecs import LossyCodec
    >>> z = zarr.create_array({}, shape=(2, 4, 8, 8), chunks=(1, 4, 8, 8), dtype="float32",
    ...                       serializer=LossyCodec(scheme="affine", bits=8))
    """

    scheme: str = "affine"
    keepbits: int | None = None
    bits: int | None = None
    steps: tuple[float, ...] | None = None
    dtype: str | None = None
    level: int = LOSSY_DEFAULT_LEVEL
    version: int = LOSSY_FORMAT_VERSION

    def __init__(
        self,
        *,
        scheme: str,
        keepbits: int | None = None,
        bits: int | None = None,
        steps: float | list[float] | tuple[float, ...] | None = None,
        dtype: str | None = None,
        level: int = LOSSY_DEFAULT_LEVEL,
        version: int = LOSSY_FORMAT_VERSION,
    ) -> None:
        engine = LossyPCodec(scheme, keepbits, bits, steps, dtype, level, version)
        for key in ("scheme", "keepbits", "bits", "dtype", "level", "version"):
            object.__setattr__(self, key, getattr(engine, key))
        object.__setattr__(self, "steps", None if engine.steps is None else tuple(engine.steps))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from ``{"name": "latentzarr.lossy", "configuration": {...}}``."""
        if not isinstance(data, dict) or data.get("name") != LOSSY_NAME:
            raise ValueError(f"Expected a codec dict named {LOSSY_NAME!r}. Got {data!r} instead.")
        config = data.get("configuration", {})
        if not isinstance(config, dict):
            raise ValueError(f"Expected the configuration to be a dict. Got {config!r} instead.")
        _check_keys(config)
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON metadata (parameters that are ``None`` are left out)."""
        config: dict[str, Any] = {"version": self.version, "scheme": self.scheme}
        for key in ("keepbits", "bits", "dtype"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        if self.steps is not None:
            config["steps"] = list(self.steps)
        config["level"] = self.level
        return {"name": LOSSY_NAME, "configuration": config}

    @cached_property
    def _engine(self) -> LossyPCodec:
        return LossyPCodec(self.scheme, self.keepbits, self.bits, self.steps, self.dtype, self.level, self.version)

    def validate(
        self, *, shape: tuple[int, ...], dtype: ZDType[TBaseDType, TBaseScalar], chunk_grid: ChunkGrid
    ) -> None:
        """Refuse array dtypes that cannot hold float values (raises ``TypeError``)."""
        name = resolve_dtype(dtype.to_native_dtype(), self.dtype)
        if name not in ("float16", "float32", "bfloat16"):
            raise TypeError(f"Expected a float array for {LOSSY_NAME}. Got {name} instead.")
