"""Precision modes in the store: lossless unless asked, lossy arrays say so everywhere, reads and moves work.

Real stores on disk under tmp_path, real taef2 latents of 64x64 sample photos, a real uvicorn server.
"""

from __future__ import annotations

import json

import httpx
import ml_dtypes
import numpy as np
import pytest
import xarray as xr
import zarr

from latentzarr.precision import parse_mode, roundtrip
from latentzarr.store import LatentStore

IDS = [f"p{i}" for i in range(4)]
LOSSY = [f"q{i}" for i in range(4)]


def zarr_json(store_path, array: str) -> dict:
    return json.loads((store_path / "arrays" / array / "zarr.json").read_text())


def serializer_names(meta: dict) -> list[str]:
    inner = meta["codecs"][0]["configuration"]["codecs"]
    return [c["name"] for c in inner]


@pytest.fixture
def mixed(tmp_path, taef2_latents_64):
    """A store with 4 lossless and 4 q8 latents (the same photos)."""
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path, shard_images=8)
    store.put(IDS, taef2_latents_64[:4], model="taef2")
    store.put(LOSSY, taef2_latents_64[:4], model="taef2", precision="q8")
    return path, store


def test_default_put_is_lossless_and_unchanged_on_disk(tmp_path, taef2_latents_64):
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path, shard_images=8)
    store.put(IDS, taef2_latents_64[:4], model="taef2")
    store.put(["x"], taef2_latents_64[4:5], model="taef2", precision="lossless")  # explicit lossless: same array
    (array,) = store.arrays()
    assert array["name"] == "taef2-32x8x8-float16" and array["precision"] == "lossless" and not array["lossy"]
    meta = zarr_json(path, array["name"])
    assert "precision" not in meta["attributes"]["latentzarr"]
    assert serializer_names(meta) == ["latentzarr.latent"]
    rec = store.record("p0")
    assert rec["precision"] == "lossless" and rec["lossy"] is False
    assert np.array_equal(store.get(IDS).view(np.uint16), taef2_latents_64[:4].view(np.uint16))
    assert store.info()["lossy_images"] == 0


def test_lossy_array_says_so_and_reads_back_consistently(mixed, taef2_latents_64):
    path, store = mixed
    names = {a["name"]: a for a in store.arrays()}
    assert set(names) == {"taef2-32x8x8-float16", "taef2-32x8x8-float16-q8"}
    q8 = names["taef2-32x8x8-float16-q8"]
    assert q8["precision"] == "q8" and q8["lossy"] and q8["images"] == 4
    meta = zarr_json(path, q8["name"])
    assert meta["attributes"]["latentzarr"]["precision"] == parse_mode("q8").to_config()
    assert serializer_names(meta) == ["latentzarr.lossy"]

    rec = store.record("q1")
    assert rec["precision"] == "q8" and rec["lossy"] is True and rec["dtype"] == "float16"
    got = store.get(LOSSY)
    assert got.dtype == np.float16
    original = taef2_latents_64[:4].astype(np.float32)
    assert not np.array_equal(got.astype(np.float32), original)  # really lossy
    # the error stays within the per-channel bound (scale / 2) plus float16 rounding of the reconstruction
    span = original.max(axis=(2, 3), keepdims=True) - original.min(axis=(2, 3), keepdims=True)
    bound = span / 255 / 2 + np.abs(original) * 2.0**-11 + 1e-6
    assert (np.abs(got.astype(np.float32) - original) <= bound).all()
    # what the precision module's roundtrip gives is what the store gives
    expected, _ = roundtrip(taef2_latents_64[:4], "q8", dtype=np.float16)
    assert np.array_equal(got.view(np.uint16), expected.view(np.uint16))

    # every read path agrees bit for bit; get_many spans the lossless and the lossy array
    many = store.get_many(["p1", "q1", "p2"])
    assert np.array_equal(many[0].view(np.uint16), taef2_latents_64[1].view(np.uint16))
    assert np.array_equal(many[1].view(np.uint16), got[1].view(np.uint16))
    enc = store.get_encoded("q1")
    assert enc.lossy and enc.precision == "q8"
    assert np.array_equal(enc.decode().view(np.uint16), got[1].view(np.uint16))
    assert not store.get_encoded("p1").lossy
    assert enc.nbytes < store.get_encoded("p1").nbytes

    report = store.verify()
    assert report["checked"] == 8 and report["ok"] == 8 and not report["mismatched"]
    info = store.info()
    assert info["lossy_images"] == 4 and info["images"] == 8

    reopened = LatentStore.open(path)  # a fresh reader learns the mode from the array metadata
    assert reopened.record("q3")["precision"] == "q8"


def test_xarray_views_carry_the_precision(mixed):
    path, store = mixed
    ds = store.to_xarray("taef2-32x8x8-float16-q8")
    assert ds.attrs["precision"] == "q8" and ds.attrs["lossy"] == 1
    assert store.to_xarray("taef2-32x8x8-float16").attrs["lossy"] == 0
    opened = xr.open_dataset(path, engine="latentzarr", array="taef2-32x8x8-float16-q8")
    assert opened.attrs["precision"] == "q8" and opened.attrs["lossy"] == 1
    assert json.loads(opened.attrs["arrays"])["taef2-32x8x8-float16-q8"]["precision"] == "q8"
    assert np.array_equal(opened["latent"].values.view(np.uint16), store.get(LOSSY).view(np.uint16))


def test_bfloat16_bitround_and_distinct_arrays_per_mode(tmp_path, taef2_latents_64):
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=8)
    bf = taef2_latents_64[:2].astype(np.float32).astype(ml_dtypes.bfloat16)
    store.put(["b0", "b1"], bf, model="taef2", precision="bitround:4")
    store.put(["b2"], bf[:1], model="taef2", precision="bitround:4")  # same mode: same array
    store.put(["c0"], bf[:1], model="taef2", precision="step:0.05")
    arrays = {a["name"]: a["images"] for a in store.arrays()}
    assert arrays == {"taef2-32x8x8-bfloat16-bitround4": 3, "taef2-32x8x8-bfloat16-step0.05": 1}
    got = store.get(["b0", "b1"])
    assert got.dtype == np.dtype(ml_dtypes.bfloat16)
    assert np.array_equal(store.get_encoded("b1").decode().view(np.uint16), got[1].view(np.uint16))
    x, y = bf.astype(np.float32), got.astype(np.float32)
    assert (np.abs(x - y) <= np.abs(x) * 2.0**-5 + 1e-30).all() and not np.array_equal(x, y)
    assert store.verify()["ok"] == 4


@pytest.mark.parametrize("mode", ["wstep:0.05", "q99", "lossy", 8])
def test_bad_or_unresolved_modes_write_nothing(tmp_path, taef2_latents_64, mode):
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path, shard_images=8)
    with pytest.raises(ValueError, match=r"precision mode|resolved|q bits"):
        store.put(["a"], taef2_latents_64[:1], model="taef2", precision=mode)
    assert len(store) == 0 and store.arrays() == [] and not any((path / "arrays").glob("taef2*"))


def test_rewrite_moves_ids_atomically_and_survives_reopen_and_checkpoint(tmp_path, taef2_latents_64):
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path, shard_images=8)
    store.put(IDS, taef2_latents_64[:4], model="taef2", source_bytes=[100, 200, 300, 400])
    before = store.record("p1")
    old_rows = (before["array"], before["row"])
    moved = store.rewrite(["p1", "p2"], taef2_latents_64[1:3], precision="q8")
    assert moved == ["p1", "p2"]
    rec = store.record("p1")
    assert rec["precision"] == "q8" and rec["lossy"] and rec["array"].endswith("-q8")
    assert rec["created"] == before["created"] and rec["source_bytes"] == 200
    assert rec["latent_sha256"] != before["latent_sha256"] and rec["rewritten"] is not None
    assert store.record("p0")["precision"] == "lossless"
    # the old row is still there, untouched (garbage until the shard is rewritten)
    old = zarr.open_array(str(path), path=f"arrays/{old_rows[0]}", mode="r")[old_rows[1]]
    assert np.array_equal(old.view(np.uint16), taef2_latents_64[1].view(np.uint16))
    # a stale expectation leaves the id alone
    assert store.rewrite(["p1"], taef2_latents_64[1:2], precision="q8", expect={"p1": old_rows}) == []
    for reader in (LatentStore.open(path), None):
        if reader is None:
            store.compact()  # a checkpoint holds the moved locations
            reader = LatentStore.open(path)
        assert reader.record("p2")["precision"] == "q8" and reader.record("p3")["precision"] == "lossless"
        assert np.array_equal(reader.get(["p1", "p2"]).view(np.uint16), store.get(["p1", "p2"]).view(np.uint16))
        assert reader.verify()["ok"] == 4
        info = reader.info()
        assert info["lossy_images"] == 2 and info["images"] == 4 and info["source_bytes"] == 1000


def test_http_headers_say_the_precision(mixed, taef2):
    from test_http import ServerThread

    from latentzarr.http import create_app

    path, store = mixed
    app = create_app(str(path), n_workers=1, threads_per_worker=1, cache_bytes=8 * 2**20,
                     cluster_options={"torch_threads": 1}, rate_limit=None)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        lossy = http.get("/v1/images/q0")
        assert lossy.status_code == 200 and lossy.headers["x-latentzarr-precision"] == "q8"
        import io

        from PIL import Image

        assert np.array_equal(np.asarray(Image.open(io.BytesIO(lossy.content)).convert("RGB")),
                              taef2.decode(store.get(["q0"]))[0])
        assert http.get("/v1/images/p0").headers["x-latentzarr-precision"] == "lossless"
        lat = http.get("/v1/images/q0/latent")
        assert lat.status_code == 200 and lat.headers["x-latentzarr-precision"] == "q8"
        meta = http.get("/v1/images/q0/meta")
        assert meta.json()["precision"] == "q8" and meta.json()["lossy"] is True
        assert meta.headers["x-latentzarr-precision"] == "q8"
        assert http.get("/v1/images/p0/meta").json()["lossy"] is False


def test_http_sees_a_rewrite_after_its_next_index_refresh(mixed, taef2_latents_64):
    """After the lifecycle re-points an id, the endpoint's meta, header and ETag follow (within a refresh)."""
    import time

    from test_http import ServerThread

    from latentzarr.http import create_app

    path, _ = mixed
    app = create_app(str(path), n_workers=1, threads_per_worker=1, cache_bytes=8 * 2**20,
                     cluster_options={"torch_threads": 1}, rate_limit=None, refresh_s=0.5)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=120) as http:
        before = http.get("/v1/images/p1/meta")
        assert before.json()["precision"] == "lossless"
        etag = http.get("/v1/images/p1/latent").headers["etag"]
        writer = LatentStore.open(path, mode="a")
        writer.rewrite(["p1"], taef2_latents_64[1:2], precision="q8")
        deadline = time.monotonic() + 60
        while http.get("/v1/images/p1/meta").json()["precision"] != "q8":
            assert time.monotonic() < deadline, "the endpoint never saw the rewrite"
            time.sleep(0.2)
        after = http.get("/v1/images/p1/latent")
        assert after.headers["x-latentzarr-precision"] == "q8" and after.headers["etag"] != etag
        assert http.get("/v1/images/p1/latent", headers={"If-None-Match": etag}).status_code == 200
