"""The Zarr v3 front end: metadata round trip, validation, and real arrays on disk (sharded, bfloat16 as uint16)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from codec_helpers import BF16, assert_same_bits, check_zarr_config, special_values
from latentzarr_codecs import LatentCodec, UnsupportedVersionError


@pytest.mark.parametrize("codec", [LatentCodec(), LatentCodec(dtype="bfloat16"), LatentCodec(dtype="float32", level=2)])
def test_config_roundtrip(codec: LatentCodec) -> None:
    check_zarr_config(codec)


def test_to_dict_shape() -> None:
    assert LatentCodec(dtype="bfloat16").to_dict() == {
        "name": "latentzarr.latent",
        "configuration": {"version": 2, "dtype": "bfloat16", "level": 8},
    }
    assert LatentCodec.from_dict({"name": "latentzarr.latent"}) == LatentCodec()


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        ({"name": "pcodec", "configuration": {}}, ValueError, "Expected a codec dict named 'latentzarr.latent'"),
        ({"name": "latentzarr.latent", "configuration": []}, ValueError, "Expected the configuration to be a dict"),
        ({"name": "latentzarr.latent", "configuration": {"lvl": 3}}, ValueError, r"unknown keys \['lvl'\]"),
        ({"name": "latentzarr.latent", "configuration": {"level": -1}}, ValueError, "Got -1 instead"),
        ({"name": "latentzarr.latent", "configuration": {"dtype": "int8"}}, ValueError, "Got 'int8' instead"),
        (
            {"name": "latentzarr.latent", "configuration": {"version": 7, "shiny": True}},
            UnsupportedVersionError,
            r"Got version 7 instead.*Upgrade latentzarr-codecs",
        ),
    ],
)
def test_from_dict_rejects(data: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        LatentCodec.from_dict(data)


def test_array_refuses_incompatible_dtype(tmp_path) -> None:
    with pytest.raises(TypeError, match="Expected an array of dtype bfloat16"):
        zarr.create_array(tmp_path, shape=(4,), dtype="float32", serializer=LatentCodec(dtype="bfloat16"))
    with pytest.raises(TypeError, match="Expected an array of dtype"):
        zarr.create_array(tmp_path / "b", shape=(4,), dtype="float64", serializer=LatentCodec())


def _store_roundtrip(tmp_path, values: np.ndarray, zarr_dtype: str, codec: LatentCodec, **kwargs) -> np.ndarray:
    array = zarr.create_array(
        tmp_path,
        shape=values.shape,
        chunks=(1, *values.shape[1:]),
        shards=values.shape,
        dtype=zarr_dtype,
        serializer=codec,
        compressors=None,
        **kwargs,
    )
    array[:] = values
    reopened = zarr.open_array(tmp_path, mode="r")
    meta = json.loads((tmp_path / "zarr.json").read_text())
    inner = meta["codecs"][0]["configuration"]["codecs"]
    assert inner[0]["name"] == "latentzarr.latent"
    assert inner[0]["configuration"]["dtype"] == (codec.dtype or zarr_dtype)
    return reopened[:]


@pytest.mark.parametrize("dtype_name", ["float32", "float16", "uint16", "uint32"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_zarr_end_to_end(tmp_path, dtype_name: str, order: str) -> None:
    values = special_values(dtype_name, (4, 32, 16, 16), seed=3)
    got = _store_roundtrip(tmp_path, values, dtype_name, LatentCodec(), config={"order": order})
    assert got.dtype == values.dtype
    assert_same_bits(got, values)


def test_zarr_bfloat16_as_uint16(tmp_path) -> None:
    values = special_values("bfloat16", (4, 32, 16, 16), seed=4)
    assert values.dtype == BF16
    got = _store_roundtrip(tmp_path, values.view(np.uint16), "uint16", LatentCodec(dtype="bfloat16"))
    assert got.dtype == np.uint16
    assert_same_bits(got.view(BF16), values)


def test_zarr_real_latents_partial_reads(tmp_path, taef2_latents) -> None:
    values = np.ascontiguousarray(taef2_latents[:4].astype(BF16)).view(np.uint16)
    got = _store_roundtrip(tmp_path, values, "uint16", LatentCodec(dtype="bfloat16"))
    assert_same_bits(got, values)
    reopened = zarr.open_array(tmp_path, mode="r")
    assert_same_bits(reopened[2], values[2])
    assert_same_bits(reopened[1:3, 5, 3:9], values[1:3, 5, 3:9])


def test_wrong_chunk_dtype_in_store_is_reported(tmp_path) -> None:
    """A store whose metadata was edited to another dtype reads as an error, not as reinterpreted bits."""
    values = special_values("float16", (2, 3, 16, 16))
    array = zarr.create_array(
        tmp_path, shape=values.shape, chunks=(1, 3, 16, 16), dtype="uint16", serializer=LatentCodec(dtype="bfloat16")
    )
    array[:] = values.view(np.uint16)
    meta_path = tmp_path / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["codecs"][0]["configuration"]["dtype"] = "uint16"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="Got a chunk encoded as bfloat16 instead"):
        zarr.open_array(tmp_path, mode="r")[:]
