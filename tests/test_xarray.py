"""xarray integration: the ``latentzarr`` backend and the ``latent`` accessor, on real stores and real taef2 latents."""

from __future__ import annotations

import io
import shutil

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from latentzarr.errors import CorruptDataError, MixedArraysError, ModelNotFoundError, NotALatentStoreError
from latentzarr.store import LatentStore
from latentzarr.xr import ImageGrid, LatentBackendEntrypoint

SHARD = 4
F16 = "taef2-32x8x8-float16"
BF16 = "taef2-32x8x8-bfloat16"
OTHER = "other-vae-32x8x8-float16"
FIRST = [f"t{i}" for i in range(6)]  # taef2 float16: rows 0-5, shards 0 and 1
OTHER_IDS = ["o0", "o1"]  # another model name, same latent shape
BF_IDS = ["bf0", "bf1"]  # taef2 again, stored as bfloat16 (a third array)


@pytest.fixture(scope="module")
def latents64(taef2):
    """Real taef2 latents (8, 32, 8, 8) float32 of the 64x64 sample photos."""
    from latentzarr.samples import sample_images

    return taef2.encode(np.stack(list(sample_images(64).values())), dtype=np.float32)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, latents64):
    """A store of three arrays of one latent shape, written by three puts (in this order)."""
    import ml_dtypes

    path = tmp_path_factory.mktemp("xr") / "latents"
    store = LatentStore.create(path, shard_images=SHARD)
    store.put(FIRST, latents64[:6].astype(np.float16), model="taef2")
    store.put(OTHER_IDS, latents64[6:].astype(np.float16), model="other-vae")
    store.put(BF_IDS, latents64[:2].astype(ml_dtypes.bfloat16), model="taef2")
    return path


@pytest.fixture(scope="module")
def store(store_path):
    return LatentStore.open(store_path)


def open_ds(path, **kwargs) -> xr.Dataset:
    return xr.open_dataset(path, engine="latentzarr", **kwargs)


def store_values(store: LatentStore, ids) -> np.ndarray:
    return np.stack([v.astype(np.float32) for v in store.get_many(list(ids))])


# ------------------------------------------------------------------------------------------------ backend
def test_open_dataset_is_dask_backed_and_equals_store_get(store_path, store):
    ds = open_ds(store_path, chunks={})
    lat = ds["latent"]
    assert isinstance(lat.data, da.Array)
    assert lat.dims == ("image", "channel", "y", "x") and lat.dtype == np.float32  # bfloat16 shown as float32
    ids = [str(i) for i in ds.image_id.values]
    assert ids == FIRST + OTHER_IDS + BF_IDS  # ingest order
    assert lat.chunks[0] == (SHARD, 2, 2, 2)  # one chunk per shard (and per array)
    assert np.array_equal(lat.values, store_values(store, ids))
    assert list(ds.model.values) == ["taef2"] * 6 + ["other-vae"] * 2 + ["taef2"] * 2
    assert list(ds.array.values) == [F16] * 6 + [OTHER] * 2 + [BF16] * 2
    created = [np.datetime64(store.record(i)["created"].replace(tzinfo=None), "ns") for i in ids]
    assert list(ds.created.values) == created
    assert sorted(eval_json(ds.attrs["models"])) == ["other-vae", "taef2"]
    assert ds.encoding["source"] == store.url


def test_latentzarr_open_dataset_is_the_dask_backed_engine_in_one_call(store_path):
    import latentzarr

    ds = latentzarr.open_dataset(store_path, array=F16)
    assert isinstance(ds["latent"].data, da.Array)
    xr.testing.assert_identical(ds, open_ds(store_path, array=F16, chunks={}))


def eval_json(text: str):
    import json

    return json.loads(text)


def test_one_array_keeps_its_dtype_and_model_attributes(store_path, store):
    ds = open_ds(store_path, array=F16)
    assert ds["latent"].dtype == np.float16 and ds.attrs["model"] == "taef2"
    assert ds.sizes["image"] == 6
    assert np.array_equal(ds["latent"].values, store.get(FIRST))  # bit-exact, stored dtype
    same = open_ds(store_path, group=f"arrays/{F16}")
    assert list(same.image_id.values) == FIRST
    full = ds["latent"].values
    for sel in ({"image": 1, "channel": [0, 3], "y": slice(1, 5), "x": 2}, {"image": [5, 0, 5], "channel": -1},
                {"image": slice(None, None, -2), "y": [7, 0]}, {"image": []}):
        expected = full[tuple(sel.get(d, slice(None)) for d in ("image", "channel", "y", "x"))]
        assert np.array_equal(ds["latent"].isel(sel).values, expected), sel
    both = open_ds(store_path, array=[BF16, F16])
    assert both.sizes["image"] == 8 and both["latent"].dtype == np.float32


def test_open_a_latentstore_object_and_guess_engine(store_path, store):
    ds = xr.open_dataset(store, engine="latentzarr")
    assert list(ds.image_id.values) == FIRST + OTHER_IDS + BF_IDS
    assert LatentBackendEntrypoint().guess_can_open(store_path)
    assert LatentBackendEntrypoint().guess_can_open(store)
    assert xr.open_dataset(store_path).sizes["image"] == 10  # no engine given: ours is guessed


@pytest.mark.parametrize("chunks", [None, {}])
def test_selection_reads_only_what_is_selected(store_path, tmp_path, chunks):
    path = tmp_path / "copy"
    shutil.copytree(store_path, path)
    ds = open_ds(path, chunks=chunks)
    shutil.rmtree(path / "arrays" / F16 / "c" / "1")  # the shard holding t4, t5
    head = ds.sel(image_id=["t2", "t0"])
    expected = LatentStore.open(path).get(["t2", "t0"]).astype(np.float32)
    assert np.array_equal(head["latent"].values, expected)  # shard 1 was never read
    tail = ds.sel(image_id=["t1", "t5"])  # selecting is free ...
    with pytest.raises(CorruptDataError, match=r"'t[45]'"):  # dask reads whole chunks
        tail["latent"].values  # ... reading finds the missing shard  # noqa: B018


def test_selection_by_id_model_and_time_stays_lazy(store_path, store):
    ds = open_ds(store_path, chunks={})
    by_id = ds.sel(image_id=["o1", "t3", "bf0"])
    by_model = ds.sel(model="other-vae")
    t_second_put = store.record("o0")["created"].replace(tzinfo=None)
    by_time = ds.sel(created=slice(np.datetime64(t_second_put, "ns"), None))
    several = ds.isel(image=ds.model.isin(["other-vae", "taef2"]) & (ds.array != BF16))
    for sub in (by_id, by_model, by_time, several):
        assert isinstance(sub["latent"].data, da.Array)  # nothing computed yet
    assert list(by_id.image_id.values) == ["o1", "t3", "bf0"]
    assert list(by_model.image_id.values) == OTHER_IDS
    assert list(by_time.image_id.values) == OTHER_IDS + BF_IDS
    assert list(several.image_id.values) == FIRST + OTHER_IDS
    assert np.array_equal(by_id["latent"].values, store_values(store, ["o1", "t3", "bf0"]))


def test_accessor_forwards_to_the_latent_variable(store_path):
    ds = open_ds(store_path, array=F16)
    assert ds.latent.shape == (6, 32, 8, 8)
    assert ds.latent.dims == ds["latent"].dims
    assert np.array_equal(ds.latent.isel(image=0).values, ds["latent"].values[0])


# ------------------------------------------------------------------------------------------------ decode
def test_decode_is_lazy_and_bit_exact(store_path, store, taef2):
    ds = open_ds(store_path, chunks={}).sel(model="taef2")
    pixels = ds.latent.decode()
    assert isinstance(pixels.data, da.Array)
    assert pixels.dims == ("image", "y", "x", "rgb") and pixels.dtype == np.uint8
    assert pixels.shape == (8, 64, 64, 3)
    ids = [str(i) for i in pixels.image_id.values]
    assert ids == FIRST + BF_IDS
    expected = np.concatenate([taef2.decode(store.get(FIRST)), taef2.decode(store.get(BF_IDS))])
    assert np.array_equal(pixels.values, expected)
    assert np.array_equal(pixels.sel(image_id="t3").values, expected[3])  # the image_id index carries over
    # the store's own view (model as an attribute, not a coordinate) decodes the same way
    assert np.array_equal(store.to_xarray(F16).latent.decode().values, expected[:6])


def test_decode_of_a_lazily_indexed_selection_and_model_choice(store_path, store, taef2):
    ds = open_ds(store_path)  # not dask-backed: decode chunks it
    sel = ds.sel(image_id=["o0", "t1", "t2"])
    with pytest.raises(ModelNotFoundError):  # each image's own model by default; "other-vae" has no weights
        sel.latent.decode().values  # noqa: B018
    pixels = sel.latent.decode("taef2", images_per_task=2)
    assert pixels.data.chunks[0] == (2, 1)
    expected = taef2.decode(store_values(store, ["o0", "t1", "t2"]))
    assert np.array_equal(pixels.values, expected)
    assert np.array_equal(ds["latent"].latent.decode(taef2).sel(image_id="t1").values, expected[1])


def test_decode_on_a_local_cluster_gives_the_same_pixels(store_path, store, taef2):
    import torch
    from distributed import Client, LocalCluster

    threads = torch.get_num_threads()
    ds = open_ds(store_path, chunks={}).sel(model="taef2")
    with (LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
          Client(cluster) as client):
        client.run(torch.set_num_threads, threads)  # decodes are bit-exact for a fixed thread count
        pixels = ds.latent.decode().values
        loaded = client.run(_loaded_models)
    assert list(loaded.values()) == [[("taef2", "cpu")]]  # the worker decoded, with a model loaded there
    expected = np.concatenate([taef2.decode(store.get(FIRST)), taef2.decode(store.get(BF_IDS))])
    assert np.array_equal(pixels, expected)


def _loaded_models() -> list:
    from latentzarr.xr import accessor

    return sorted(accessor._MODELS)


# ------------------------------------------------------------------------------------------------ show
def test_show_renders_a_png_grid(store_path, store, taef2):
    from PIL import Image

    ds = open_ds(store_path)
    grid = ds.latent.show(3, cols=2, size=1.5)
    assert isinstance(grid, ImageGrid) and len(grid) == 3 and (grid.rows, grid.cols) == (2, 2)
    assert grid.titles == FIRST[:3]
    assert np.array_equal(grid.images, taef2.decode(store.get(FIRST[:3])))
    png = Image.open(io.BytesIO(grid._repr_png_()))
    assert png.size == (300, 300)  # 2 x 1.5 inches at 100 dpi
    rgb = np.asarray(png.convert("RGB"))
    assert rgb.std() > 20 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 500
    assert ds.sel(model="taef2")["latent"].latent.show(20).rows == 3  # n > images: all 8, 3 per row


# ------------------------------------------------------------------------------------------------ errors
def test_unknown_array_and_mixed_shapes(store_path, tmp_path, latents64):
    with pytest.raises(ValueError, match=r"array= naming arrays.*taef2-32x8x8-float16"):
        open_ds(store_path, array="nope")
    store = LatentStore.create(tmp_path / "mixed")
    store.put(["big"], latents64[:1].astype(np.float16), model="taef2")
    store.put(["small"], latents64[:1, :, :4, :4].astype(np.float16), model="taef2")
    with pytest.raises(MixedArraysError, match=r"taef2-32x4x4-float16.*taef2-32x8x8-float16"):
        open_ds(tmp_path / "mixed")
    with pytest.raises(MixedArraysError, match="one latent shape"):
        open_ds(tmp_path / "mixed", array=["taef2-32x4x4-float16", "taef2-32x8x8-float16"])
    assert list(open_ds(tmp_path / "mixed", array="taef2-32x4x4-float16").image_id.values) == ["small"]


def test_empty_store(tmp_path):
    LatentStore.create(tmp_path / "empty")
    ds = open_ds(tmp_path / "empty", chunks={})
    assert ds.sizes["image"] == 0 and ds.latent.decode().shape == (0, 0, 0, 3)
    with pytest.raises(ValueError, match="at least one image"):
        ds.latent.show()


def test_not_a_latent_store(tmp_path):
    zarr.create_group(str(tmp_path / "plain.zarr"), zarr_format=3)
    with pytest.raises(NotALatentStoreError, match="engine='zarr'"):
        open_ds(tmp_path / "plain.zarr")
    with pytest.raises(NotALatentStoreError, match="no Zarr v3 group"):
        open_ds(tmp_path / "missing")
    assert not LatentBackendEntrypoint().guess_can_open(tmp_path / "plain.zarr")
    assert not LatentBackendEntrypoint().guess_can_open(tmp_path / "missing")
    with pytest.raises(ValueError, match="'latent' variable"):
        xr.Dataset({"other": ("image", [1, 2])}).latent.decode()
    with pytest.raises(ValueError, match="dims"):
        xr.DataArray(np.zeros((1, 2, 2, 32), np.float32), dims=("image", "y", "x", "channel")).latent.decode()


# ------------------------------------------------------------------------------------------------ open_zarr
def test_open_zarr_reads_the_raw_rows_of_a_one_array_store(tmp_path, latents64):
    """What plain Zarr readers see: every row (uncommitted rows are NaN), named by array, without ids."""
    store = LatentStore.create(tmp_path / "one", shard_images=SHARD)
    store.put(FIRST, latents64[:6].astype(np.float16), model="taef2")
    raw = xr.open_zarr(tmp_path / "one", group="arrays", zarr_format=3, consolidated=False)
    assert raw[F16].dims == ("image", "channel", "y", "x") and raw.sizes["image"] == 8  # two whole shards
    assert np.array_equal(raw[F16].values[:6], store.get(FIRST))
    assert np.isnan(raw[F16].values[6:]).all()


# ------------------------------------------------------------------------------------------------ object store
def test_open_from_s3_with_storage_options(latents64, monkeypatch):
    """An S3-compatible server (moto, on localhost): ``storage_options`` reach the store."""
    import socket

    s3fs = pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": endpoint}.items():
            monkeypatch.setenv(key, value)
        options = {"endpoint_url": endpoint, "key": "x", "secret": "x"}
        s3fs.S3FileSystem(**options).mkdir("xr-bucket")
        url = "s3://xr-bucket/latents.zarr"
        store = LatentStore.create(url, storage_options=options, shard_images=SHARD)
        store.put(FIRST, latents64[:6].astype(np.float16), model="taef2")
        assert not LatentBackendEntrypoint().guess_can_open(url)  # remote: never probed, pass engine=
        ds = open_ds(url, storage_options=options, chunks={}, drop_variables=["created"])
        assert "created" not in ds.coords and list(ds.image_id.values) == FIRST
        assert np.array_equal(ds.sel(image_id=["t5", "t0"])["latent"].values, store.get(["t5", "t0"]))
    finally:
        server.stop()
