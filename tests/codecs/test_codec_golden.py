"""Backwards compatibility: every golden chunk (written once by tests/golden/make_golden.py) still decodes bit-exactly,
and re-encoding its input gives the same bytes (pcodec output is deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from codec_helpers import assert_same_bits
from latentzarr_codecs import LatentCodec, LatentPCodec

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "latentzarr.latent"
VERSIONS = sorted(path.name for path in GOLDEN.iterdir() if path.is_dir())
CASES = [
    (version, name)
    for version in VERSIONS
    for name in sorted(json.loads((GOLDEN / version / "config.json").read_text()))
]


def _load(version: str, name: str) -> tuple[LatentPCodec, np.ndarray, bytes]:
    folder = GOLDEN / version
    meta = json.loads((folder / "config.json").read_text())[name]
    codec = LatentCodec.from_dict(meta)  # the Zarr metadata of the case must still parse
    numcodecs_codec = LatentPCodec(**meta["configuration"])
    assert codec.to_dict() == meta
    assert numcodecs_codec.get_config() == {"id": "latentzarr.latent", "dtype": None, **meta["configuration"]}
    return numcodecs_codec, np.load(folder / f"{name}.npy", allow_pickle=False), (folder / f"{name}.dat").read_bytes()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_golden_set_is_complete(version: str) -> None:
    assert version in VERSIONS
    names = {name for v, name in CASES if v == version}
    assert {"float32", "float16", "bfloat16", "empty", "tiny"} <= names
    chunks = [(GOLDEN / version / f"{name}.dat").read_bytes() for name in names]
    assert {chunk[7] for chunk in chunks} == {0, 1, 2}, "golden files must cover the empty, plain and per-plane modes"
    assert {chunk[2] for chunk in chunks} == {int(version[1:])}, "each chunk carries its format version"


@pytest.mark.parametrize(("version", "name"), CASES)
def test_golden_decodes_bit_exact(version: str, name: str) -> None:
    codec, expected, encoded = _load(version, name)
    decoded = codec.decode(encoded)
    assert_same_bits(decoded, expected)
    out = np.empty_like(expected)
    codec.decode(encoded, out=out)
    assert_same_bits(out, expected)


@pytest.mark.parametrize(("version", "name"), CASES)
def test_golden_reencodes_identically(version: str, name: str) -> None:
    codec, expected, encoded = _load(version, name)
    assert codec.encode(expected) == encoded
