"""Damaged chunks raise CorruptChunkError (never wrong values); chunks from a newer format ask for an upgrade."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import zarr
from codec_helpers import special_values
from latentzarr_codecs import FORMAT_VERSION, CorruptChunkError, LatentCodec, LatentPCodec, UnsupportedVersionError


@pytest.fixture(scope="module")
def encoded() -> bytes:
    # Small enough to flip every byte; large enough for the per-plane mode to be a candidate.
    return LatentPCodec().encode(special_values("float16", (1, 2, 16, 16), seed=5))


def _flip(data: bytes, position: int, mask: int = 0xFF) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= mask
    return bytes(damaged)


def test_every_single_byte_flip_is_detected(encoded: bytes) -> None:
    codec = LatentPCodec()
    for position in range(len(encoded)):
        for mask in (0x01, 0x80, 0xFF):
            with pytest.raises(CorruptChunkError):
                codec.decode(_flip(encoded, position, mask))


@pytest.mark.parametrize(
    ("position", "message"),
    [
        (0, "Expected a chunk starting with magic b'LZ'"),
        (2, "Expected CRC-32"),  # the version byte: damage, not a newer version
        (4, "Expected CRC-32"),
        (7, "Expected CRC-32"),
        (-1, "the chunk .* is corrupt"),
    ],
)
def test_flip_messages(encoded: bytes, position: int, message: str) -> None:
    with pytest.raises(CorruptChunkError, match=message):
        LatentPCodec().decode(_flip(encoded, position % len(encoded)))


def test_truncated_and_extended(encoded: bytes) -> None:
    codec = LatentPCodec()
    for length in range(len(encoded)):
        with pytest.raises(CorruptChunkError):
            codec.decode(encoded[:length])
    with pytest.raises(CorruptChunkError, match="Expected CRC-32"):
        codec.decode(encoded + b"\x00")
    with pytest.raises(CorruptChunkError, match=r"Expected an encoded latentzarr\.latent chunk of at least 9 bytes"):
        codec.decode(b"LZ\x01")


def test_not_our_format() -> None:
    import numcodecs

    plain = numcodecs.PCodec().encode(np.zeros(64, dtype=np.float16))
    with pytest.raises(CorruptChunkError, match=r"not written by latentzarr\.latent"):
        LatentPCodec().decode(plain)


def _with_version(data: bytes, version: int) -> bytes:
    """The chunk as a newer writer would frame it: same stable bytes 0-6 layout, valid CRC."""
    head = data[:2] + bytes([version])
    crc = zlib.crc32(data[7:], zlib.crc32(head))
    return head + struct.pack("<I", crc) + data[7:]


def test_future_chunk_version(encoded: bytes) -> None:
    assert _with_version(encoded, FORMAT_VERSION) == encoded  # the helper reproduces the real framing
    future = FORMAT_VERSION + 1
    with pytest.raises(UnsupportedVersionError, match=rf"Got version {future} instead.*Upgrade latentzarr-codecs"):
        LatentPCodec().decode(_with_version(encoded, future))


def test_corrupt_chunk_in_a_zarr_store(tmp_path) -> None:
    values = special_values("float32", (2, 3, 16, 16), seed=6)
    array = zarr.create_array(
        tmp_path, shape=values.shape, chunks=(1, 3, 16, 16), dtype="float32", serializer=LatentCodec(), compressors=None
    )
    array[:] = values
    chunk = tmp_path / "c" / "1" / "0" / "0" / "0"
    data = chunk.read_bytes()
    chunk.write_bytes(_flip(data, len(data) // 2))
    reopened = zarr.open_array(tmp_path, mode="r")
    np.testing.assert_array_equal(reopened[0].view(np.uint32), values[0].view(np.uint32))
    with pytest.raises(CorruptChunkError, match="Expected CRC-32"):
        reopened[1]
