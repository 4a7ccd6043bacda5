"""Shared helpers for the codec tests (modelled on numcodecs' ``tests/common.py``)."""

from __future__ import annotations

import json
import pickle

import ml_dtypes
import numcodecs
import numpy as np
from latentzarr_codecs import LatentCodec, LatentPCodec

BF16 = np.dtype(ml_dtypes.bfloat16)
BITS = {"float32": np.uint32, "float16": np.uint16, "bfloat16": np.uint16, "uint16": np.uint16, "uint32": np.uint32}
VALUE_DTYPES = {
    "float32": np.dtype("float32"),
    "float16": np.dtype("float16"),
    "bfloat16": BF16,
    "uint16": np.dtype("uint16"),
    "uint32": np.dtype("uint32"),
}


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bits of ``array`` as unsigned integers of the same width, flattened in C order."""
    array = np.ascontiguousarray(array)
    return array.reshape(-1).view(np.dtype(f"u{array.dtype.itemsize}"))


def assert_same_bits(got: np.ndarray, expected: np.ndarray) -> None:
    """Compare bits, not values: -0.0 vs 0.0 and NaN payloads must survive."""
    assert got.dtype.itemsize == expected.dtype.itemsize, (got.dtype, expected.dtype)
    assert got.size == expected.size
    np.testing.assert_array_equal(bits(got), bits(expected))


def special_values(dtype_name: str, shape: tuple[int, ...] = (2, 3, 16, 16), seed: int = 0) -> np.ndarray:
    """Random bit patterns of ``dtype_name`` with -0.0, +-inf, NaNs with payloads and subnormals planted in."""
    rng = np.random.default_rng(seed)
    width = BITS[dtype_name]
    raw = rng.integers(0, np.iinfo(width).max, size=shape, dtype=width, endpoint=True)
    flat = raw.reshape(-1)
    if dtype_name in ("float16", "bfloat16", "float32"):
        if dtype_name == "float32":
            specials = [0x80000000, 0x7F800000, 0xFF800000, 0x7FC00001, 0xFFBADBAD, 0x00000001, 0x807FFFFF]
        elif dtype_name == "float16":
            specials = [0x8000, 0x7C00, 0xFC00, 0x7E01, 0xFD5A, 0x0001, 0x83FF]
        else:
            specials = [0x8000, 0x7F80, 0xFF80, 0x7FC1, 0xFFA5, 0x0001, 0x807F]
        flat[: len(specials)] = specials[: flat.size]
    return raw.view(VALUE_DTYPES[dtype_name])


def buffer_variants(array: np.ndarray) -> dict[str, object]:
    """The same values as several input objects: C array, F array, strided view, memoryview."""
    variants: dict[str, object] = {
        "C": np.ascontiguousarray(array),
        "F": np.asfortranarray(array),
    }
    doubled = np.repeat(array, 2, axis=-1)
    variants["strided"] = doubled[..., ::2]
    if array.dtype != BF16:
        variants["memoryview"] = memoryview(np.ascontiguousarray(array))
    return variants


def encoded_variants(data: bytes) -> dict[str, object]:
    """The same encoded bytes as bytes, bytearray, memoryview and a uint8 array."""
    return {
        "bytes": data,
        "bytearray": bytearray(data),
        "memoryview": memoryview(data),
        "ndarray": np.frombuffer(data, dtype=np.uint8),
    }


def check_numcodecs_roundtrip(codec: LatentPCodec, array: np.ndarray) -> bytes:
    """Encode every buffer variant, decode every encoded variant (with and without ``out``), compare bits."""
    reference = None
    for name, buf in buffer_variants(array).items():
        encoded = codec.encode(buf)
        assert isinstance(encoded, bytes), name
        if reference is None:
            reference = encoded
        assert encoded == reference, f"{name} input encoded differently from C order"
    assert reference is not None
    for name, data in encoded_variants(reference).items():
        decoded = codec.decode(data)
        assert decoded.dtype == array.dtype, name
        assert_same_bits(decoded, array)
        out = np.empty(array.shape, dtype=array.dtype)
        assert codec.decode(data, out=out) is out
        assert_same_bits(out, array)
    return reference


def check_numcodecs_config(codec: LatentPCodec) -> None:
    """Config JSON round trip through the numcodecs registry, repr, equality and pickling."""
    config = codec.get_config()
    assert config["id"] == "latentzarr.latent"
    again = numcodecs.get_codec(json.loads(json.dumps(config)))
    assert isinstance(again, LatentPCodec)
    assert again == codec
    assert again.get_config() == config
    assert pickle.loads(pickle.dumps(codec)) == codec
    text = repr(codec)
    assert text.startswith("LatentPCodec(") and f"level={codec.level}" in text


def check_zarr_config(codec: LatentCodec) -> None:
    """``to_dict``/``from_dict`` JSON round trip, zarr's own registry, pickling and repr."""
    from zarr.registry import get_codec_class

    meta = json.loads(json.dumps(codec.to_dict()))
    assert meta["name"] == "latentzarr.latent"
    assert set(meta) == {"name", "configuration"}
    assert LatentCodec.from_dict(meta) == codec
    assert get_codec_class("latentzarr.latent") is LatentCodec
    assert get_codec_class(meta["name"]).from_dict(meta) == codec
    assert pickle.loads(pickle.dumps(codec)) == codec
    assert repr(codec).startswith("LatentCodec(")
