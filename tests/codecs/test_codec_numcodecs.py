"""The numcodecs front end: every dtype bit-exact, buffer types, config, invalid values, size vs plain PCodec."""

from __future__ import annotations

import latentzarr_codecs
import numcodecs
import numpy as np
import pytest
from codec_helpers import (
    BF16,
    VALUE_DTYPES,
    assert_same_bits,
    check_numcodecs_config,
    check_numcodecs_roundtrip,
    special_values,
)
from latentzarr_codecs import LatentPCodec, UnsupportedVersionError


@pytest.mark.parametrize("dtype_name", list(VALUE_DTYPES))
@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (1, 4, 8, 40), (5,), (3, 7), ()])
def test_roundtrip_every_dtype_and_shape(dtype_name: str, shape: tuple[int, ...]) -> None:
    array = special_values(dtype_name, shape)
    check_numcodecs_roundtrip(LatentPCodec(), array)
    check_numcodecs_roundtrip(LatentPCodec(dtype=dtype_name), array)


@pytest.mark.parametrize("dtype_name", list(VALUE_DTYPES))
@pytest.mark.parametrize("shape", [(0,), (1, 0, 4, 4)])
def test_empty(dtype_name: str, shape: tuple[int, ...]) -> None:
    array = np.empty(shape, dtype=VALUE_DTYPES[dtype_name])
    codec = LatentPCodec()
    encoded = codec.encode(array)
    decoded = codec.decode(encoded)
    assert decoded.shape == (0,)
    assert decoded.dtype == array.dtype


def test_bfloat16_bits_as_uint16_decode_as_bfloat16() -> None:
    array = special_values("bfloat16")
    codec = LatentPCodec(dtype="bfloat16")
    from_bits = codec.encode(array.view(np.uint16))
    assert from_bits == codec.encode(array)
    decoded = codec.decode(from_bits)
    assert decoded.dtype == BF16
    assert_same_bits(decoded, array)
    out = np.empty(array.shape, dtype=np.uint16)
    codec.decode(from_bits, out=out)
    assert_same_bits(out, array)


def test_dtype_in_chunk_header_beats_missing_config() -> None:
    """A codec without a dtype decodes a bfloat16 chunk as bfloat16, not as raw uint16."""
    array = special_values("bfloat16")
    encoded = LatentPCodec(dtype="bfloat16").encode(array.view(np.uint16))
    assert LatentPCodec().decode(encoded).dtype == BF16


@pytest.mark.parametrize(
    ("codec", "array"),
    [
        (LatentPCodec(dtype="float16"), np.zeros(4, dtype=np.float32)),
        (LatentPCodec(dtype="bfloat16"), np.zeros(4, dtype=np.float32)),
        (LatentPCodec(dtype="uint16"), np.zeros(4, dtype=BF16)),
        (LatentPCodec(), np.zeros(4, dtype=np.float64)),
        (LatentPCodec(), np.zeros(4, dtype=np.int16)),
        (LatentPCodec(), b"\x00\x01"),
    ],
)
def test_refuses_other_dtypes_instead_of_casting(codec: LatentPCodec, array: object) -> None:
    with pytest.raises(TypeError, match="Expected an array of dtype"):
        codec.encode(array)


def test_decode_refuses_a_chunk_of_another_dtype() -> None:
    encoded = LatentPCodec().encode(np.zeros(8, dtype=np.float16))
    with pytest.raises(latentzarr_codecs.CorruptChunkError, match="Expected a chunk of dtype bfloat16"):
        LatentPCodec(dtype="bfloat16").decode(encoded)


def test_decode_out_of_the_wrong_size() -> None:
    encoded = LatentPCodec().encode(np.zeros(8, dtype=np.float16))
    with pytest.raises(ValueError, match="Expected out to hold 16 bytes"):
        LatentPCodec().decode(encoded, out=np.empty(9, dtype=np.float16))


@pytest.mark.parametrize("codec", [LatentPCodec(), LatentPCodec(dtype="bfloat16", level=3)])
def test_config(codec: LatentPCodec) -> None:
    check_numcodecs_config(codec)
    assert codec.get_config() == {"id": "latentzarr.latent", "version": 2, "dtype": codec.dtype, "level": codec.level}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"level": 13}, "Expected level to be an integer from 0 to 12. Got 13 instead."),
        ({"level": True}, "Expected level"),
        ({"level": "8"}, "Expected level"),
        ({"dtype": "float64"}, "Expected dtype to be one of"),
        ({"dtype": np.float16}, "Expected dtype to be one of"),
        ({"version": 0}, "Expected a positive integer codec version. Got 0 instead."),
        ({"version": "1"}, "Expected a positive integer codec version"),
    ],
)
def test_invalid_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LatentPCodec(**kwargs)
    with pytest.raises(ValueError, match=message):
        numcodecs.get_codec({"id": "latentzarr.latent", **kwargs})


def test_future_config_version() -> None:
    with pytest.raises(UnsupportedVersionError, match=r"Got version 3 instead.*Upgrade latentzarr-codecs"):
        numcodecs.get_codec({"id": "latentzarr.latent", "version": 3, "new_key": 1})


def test_registered_on_import() -> None:
    assert numcodecs.registry.codec_registry["latentzarr.latent"] is LatentPCodec


@pytest.mark.parametrize("dtype_name", ["float32", "float16", "bfloat16"])
def test_real_latents_lossless_and_never_larger_than_plain_pcodec(taef2_latents, dtype_name: str) -> None:
    """On real taef2 latents each chunk is bit-exact and at most plain PCodec(level=8)'s size; in total over the
    latents it is smaller than PCodec."""
    codec = LatentPCodec(dtype=dtype_name)
    plain = numcodecs.PCodec(level=8)
    ours_total = plain_total = 0
    for latent in taef2_latents:
        values = np.ascontiguousarray(latent[None].astype(VALUE_DTYPES[dtype_name]))
        encoded = codec.encode(values)
        assert_same_bits(codec.decode(encoded), values)
        baseline = plain.encode(values.view(np.uint16) if dtype_name == "bfloat16" else values)
        assert len(encoded) <= len(baseline), (len(encoded), len(baseline))
        ours_total += len(encoded)
        plain_total += len(baseline)
    assert ours_total < plain_total


def test_other_levels_and_old_chunks_still_decode() -> None:
    """Chunks from the version-1 encoder settings (both layouts at level 9, auto delta) decode bit-exactly: the
    encoder's level and delta choice are not part of the format."""
    rng = np.random.default_rng(5)
    values = np.cumsum(rng.normal(size=(1, 4, 32, 32)), axis=-1).astype(np.float16)
    for level in (0, 3, 9, 12):
        codec = LatentPCodec(level=level)
        assert_same_bits(LatentPCodec().decode(codec.encode(values)), values)
