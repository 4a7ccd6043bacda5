"""LatentStore on local disk: round trips, bad input, persistence, views, corruption."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import zarr

from latentzarr.errors import (
    CorruptDataError,
    DuplicateIdError,
    InvalidIdError,
    InvalidLatentError,
    NotALatentStoreError,
    UnknownIdError,
    UnsupportedFormatError,
)
from latentzarr.store import FORMAT_VERSION, LatentStore, MixedArraysError

DTYPES = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(ml_dtypes.bfloat16)]


def random_latents(n: int, shape: tuple[int, int, int] = (4, 8, 8), dtype: np.dtype = DTYPES[0],
                   seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32).astype(dtype)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def shard_files(root: Path) -> dict[str, bytes]:
    """Digest of every shard object of every array."""
    out = {}
    for path in sorted((root / "arrays").rglob("c/**/*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).digest()
    return out


@pytest.fixture
def store(tmp_path: Path) -> LatentStore:
    return LatentStore.create(tmp_path / "s.zarr", shard_images=4)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_round_trip_bit_exact_and_persists(tmp_path: Path, dtype: np.dtype) -> None:
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path, shard_images=4)
    x = random_latents(6, dtype=dtype)
    x[0, 0, 0, 0] = -0.0  # signed zero and subnormals must survive
    x[1, 0, 0, 0] = (ml_dtypes.finfo(dtype) if dtype.name == "bfloat16" else np.finfo(dtype)).smallest_subnormal
    ids = [f"img-{i}" for i in range(6)]
    store.put(ids, x, model="m", model_attrs={"scaling_factor": 0.5})
    got = store.get(ids[::-1])
    assert same_bits(got, x[::-1])
    assert same_bits(store["img-2"], x[2])
    reopened = LatentStore.open(path)
    assert len(reopened) == 6 and set(reopened) == set(ids)
    assert same_bits(reopened.get(ids), x)
    rec = reopened.record("img-1")
    assert rec["dtype"] == dtype.name and rec["shape"] == (4, 8, 8) and rec["model"] == "m"
    assert rec["model_attrs"] == {"scaling_factor": 0.5}
    assert rec["latent_sha256"] == hashlib.sha256(x[1].astype(x.dtype.newbyteorder("<")).tobytes()).hexdigest()


def test_real_taef2_latents_round_trip(tmp_path: Path, taef2_latents: np.ndarray) -> None:
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=4)
    ids = [f"photo-{i}" for i in range(len(taef2_latents))]
    bf16 = taef2_latents.astype(ml_dtypes.bfloat16)
    store.put(ids, taef2_latents, model="taef2")
    store.put([f"{i}-bf16" for i in ids], bf16, model="taef2")
    assert same_bits(store.get(ids), taef2_latents)
    assert same_bits(store.get([f"{i}-bf16" for i in ids]), bf16)
    info = store.info()
    assert info["images"] == 2 * len(ids)
    assert 0 < info["stored_bytes"] < info["raw_bytes"]  # real latents compress


def test_sequence_input_and_single_get(store: LatentStore) -> None:
    x = random_latents(3)
    store.put(["a", "b", "c"], [x[0], x[1], x[2]], model="m")
    assert same_bits(store.get_one("b"), x[1])
    assert "a" in store and "z" not in store
    assert store.ids() == ["a", "b", "c"] and list(store) == ["a", "b", "c"]
    assert "3 images" in repr(store)


def test_each_put_gets_fresh_shards_and_never_rewrites_committed_ones(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=4)
    store.put(["a", "b"], random_latents(2), model="m")
    before = shard_files(tmp_path / "s.zarr")
    store.put(["c", "d", "e", "f", "g"], random_latents(5, seed=1), model="m")
    after = shard_files(tmp_path / "s.zarr")
    assert {k: after[k] for k in before} == before  # committed shards untouched
    assert [store.record(i)["row"] for i in "abcdefg"] == [0, 1, 4, 5, 6, 7, 8]
    assert store.arrays()[0]["rows"] == 12 and store.arrays()[0]["images"] == 7


# ----------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s: s.put([""], random_latents(1), model="m"), InvalidIdError, "non-empty"),
        (lambda s: s.put(["x\n"], random_latents(1), model="m"), InvalidIdError, "control"),
        (lambda s: s.put([7], random_latents(1), model="m"), InvalidIdError, "str"),
        (lambda s: s.put("x", random_latents(1), model="m"), InvalidIdError, "sequence of ids"),
        (lambda s: s.put(["x"], random_latents(1), model="m", source_bytes=[-1]), ValueError, ">= 0"),
        (lambda s: s.put(["x", "x"], random_latents(2), model="m"), DuplicateIdError, "unique"),
        (lambda s: s.put(["new", "a0"], random_latents(2), model="m"), DuplicateIdError, "already committed"),
        (lambda s: s.put(["x"], random_latents(1).astype(np.float64), model="m"), InvalidLatentError, "cast"),
        (lambda s: s.put(["x"], np.ones((1, 4, 8, 8), np.int16), model="m"), InvalidLatentError, "int16"),
        (lambda s: s.put(["x"], random_latents(1)[0], model="m"), InvalidLatentError, "shape"),
        (lambda s: s.put(["x", "y"], random_latents(1), model="m"), InvalidLatentError, "Expected 2 latents"),
        (lambda s: s.put(["x"], random_latents(1, shape=(8, 8, 8)), model="m"), InvalidLatentError,
         "Expected 4 channels"),
        (lambda s: s.put(["x"], random_latents(1), model="m", model_attrs={"scaling_factor": 2.0}),
         InvalidLatentError, "model_attrs"),
        (lambda s: s.put(["x"], [random_latents(1)[0], random_latents(1, shape=(4, 4, 4))[0]], model="m"),
         InvalidLatentError, "one shape"),
        (lambda s: s.put(["x"], random_latents(1), model=""), InvalidLatentError, "model id"),
        (lambda s: s.put(["x"], "not an array", model="m"), InvalidLatentError, "numpy array"),
        (lambda s: s.put(["x"], random_latents(1), model="m", source_bytes=[1, 2]), ValueError, "one per id"),
        (lambda s: s.get(["nope"]), UnknownIdError, "nope"),
        (lambda s: s["nope"], KeyError, "nope"),
        (lambda s: s.get(["a0", "b0"]), MixedArraysError, "arrays"),
        (lambda s: s.record("nope"), UnknownIdError, "nope"),
    ],
)
def test_bad_input_raises_and_changes_nothing(store: LatentStore, call, error, match) -> None:
    x = random_latents(1)
    y = random_latents(1, shape=(4, 4, 4), seed=3)
    store.put(["a0"], x, model="m", model_attrs={"scaling_factor": 1.0})
    store.put(["b0"], y, model="m")
    with pytest.raises(error, match=match):
        call(store)
    fresh = LatentStore.open(store.url)
    assert fresh.ids() == ["a0", "b0"]
    assert same_bits(fresh["a0"], x[0]) and same_bits(fresh["b0"], y[0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_nan_inf_rejected_naming_ids(store: LatentStore, bad: float, dtype: np.dtype) -> None:
    x = random_latents(3, dtype=dtype)
    x[1, 2, 3, 4] = bad
    with pytest.raises(InvalidLatentError, match=r"'p1'") as info:
        store.put(["p0", "p1", "p2"], x, model="m")
    assert "'p0'" not in str(info.value)
    assert len(LatentStore.open(store.url)) == 0


def test_unknown_id_is_a_key_error_naming_the_id(store: LatentStore) -> None:
    store.put(["a"], random_latents(1), model="m")
    with pytest.raises(KeyError) as info:
        store.get(["a", "missing-id"])
    assert isinstance(info.value, UnknownIdError) and "missing-id" in str(info.value)


def test_read_only_store_refuses_put(store: LatentStore) -> None:
    ro = LatentStore.open(store.url, mode="r")
    with pytest.raises(PermissionError, match="mode='a'"):
        ro.put(["a"], random_latents(1), model="m")


def test_open_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(NotALatentStoreError, match=r"LatentStore\.create"):
        LatentStore.open(tmp_path / "missing.zarr")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotALatentStoreError, match=r"LatentStore\.create"):
        LatentStore.open(tmp_path / "empty")
    zarr.create_group(tmp_path / "plain.zarr", zarr_format=3)
    with pytest.raises(NotALatentStoreError, match="without 'latentzarr'"):
        LatentStore.open(tmp_path / "plain.zarr", mode="a")


def test_newer_format_refused(tmp_path: Path) -> None:
    LatentStore.create(tmp_path / "s.zarr")
    group = zarr.open_group(tmp_path / "s.zarr", mode="r+")
    group.attrs["latentzarr"] = {**group.attrs["latentzarr"], "format_version": 99}
    with pytest.raises(UnsupportedFormatError, match="99"):
        LatentStore.open(tmp_path / "s.zarr")


def test_create_refuses_existing_and_open_a_creates(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    store = LatentStore.open(path, mode="a", shard_images=8)
    assert store.shard_images == 8
    store.put(["a"], random_latents(1), model="m")
    with pytest.raises(FileExistsError, match="mode='a'"):
        LatentStore.create(path)
    assert LatentStore.open(path, mode="a").ids() == ["a"]


# ----------------------------------------------------------------------------------------------- readers
def test_refresh_sees_other_writers(tmp_path: Path) -> None:
    writer = LatentStore.create(tmp_path / "s.zarr")
    reader = LatentStore.open(tmp_path / "s.zarr")
    x = random_latents(2)
    writer.put(["a", "b"], x, model="m")
    assert "a" not in reader  # not refreshed yet
    assert same_bits(reader.get(["b"]), x[1:])  # an unknown id triggers one refresh
    assert reader.refresh() == 0 and len(reader) == 2


def test_compact_then_reopen(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=2)
    x = random_latents(6)
    for i in range(3):
        store.put([f"a{i}"], x[i:i + 1], model="m")
    assert store.compact() == 2
    for i in range(3, 6):
        store.put([f"a{i}"], x[i:i + 1], model="m")
    names = sorted(os.listdir(tmp_path / "s.zarr" / "index"))
    assert "checkpoint-0000000002.parquet" in names
    fresh = LatentStore.open(tmp_path / "s.zarr")
    assert fresh.ids() == [f"a{i}" for i in range(6)]
    assert same_bits(fresh.get(fresh.ids()), x)


def test_to_xarray(store: LatentStore) -> None:
    x = random_latents(5, dtype=DTYPES[2])
    store.put(["c", "a"], x[:2], model="m", model_attrs={"shift_factor": 0.1})
    store.put(["e", "b", "d"], x[2:], model="m")
    ds = store.to_xarray()
    assert ds["latent"].dims == ("image", "channel", "y", "x")
    assert ds["latent"].dtype == np.float32 and ds["latent"].chunks is not None  # dask-backed
    assert list(ds["image_id"].values) == ["c", "a", "e", "b", "d"]
    assert ds["latent"].attrs["dtype"] == "bfloat16" and ds["latent"].attrs["model"] == "m"
    assert json.loads(ds["latent"].attrs["model_attrs"]) == {"shift_factor": 0.1}
    values = ds["latent"].values
    expected = store.get(list(ds["image_id"].values))
    assert np.array_equal(values, expected.astype(np.float32))
    assert np.array_equal(values.astype(ml_dtypes.bfloat16).view(np.uint16), expected.view(np.uint16))


def test_to_xarray_needs_array_name_when_several(store: LatentStore) -> None:
    store.put(["a"], random_latents(1), model="m")
    store.put(["b"], random_latents(1, dtype=DTYPES[1]), model="m")
    with pytest.raises(ValueError, match="array="):
        store.to_xarray()
    name = store.record("b")["array"]
    assert list(store.to_xarray(name)["image_id"].values) == ["b"]


def test_plain_zarr_reads_an_array(store: LatentStore) -> None:
    x = random_latents(3, dtype=DTYPES[1])
    store.put(["a", "b", "c"], x, model="taef2")
    group = zarr.open_group(store.url, mode="r")
    assert group.attrs["latentzarr"]["format_version"] == FORMAT_VERSION
    array = group["arrays"]["taef2-4x8x8-float32"]
    assert array.attrs["latentzarr"]["model"] == "taef2"
    assert same_bits(array[:3], x)


def test_info_and_arrays(store: LatentStore) -> None:
    x = random_latents(3)
    store.put(["a", "b", "c"], x, model="m", source_bytes=[10_000, 20_000, None], pixel_digests=["ab", None, None],
              decoder_setup={"device": "cpu", "threads": 2})
    info = store.info()
    (arr,) = info["arrays"]
    assert arr["images"] == 3 and arr["raw_bytes"] == 3 * 4 * 8 * 8 * 2
    assert arr["stored_bytes"] > 0 and arr["source_bytes"] == 30_000 and arr["source_known"] == 2
    assert arr["data_reduction"] == pytest.approx(1 - 2 * arr["stored_bytes"] / 3 / 30_000)
    rec = store.record("a")
    assert rec["pixel_sha256"] == "ab" and json.loads(rec["decoder_setup"]) == {"device": "cpu", "threads": 2}
    assert rec["source_bytes"] == 10_000 and store.record("c")["source_bytes"] is None


# ----------------------------------------------------------------------------------------------- corruption
def test_corrupt_chunk_names_id_other_ids_still_read(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=4)
    x = random_latents(8)
    ids = [f"i{k}" for k in range(8)]
    store.put(ids[:4], x[:4], model="m")
    store.put(ids[4:], x[4:], model="m")
    shard = next(p for p in (tmp_path / "s.zarr" / "arrays").rglob("c/1/0/0/0"))  # rows 4..7
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF  # inside the first chunk of the shard: row 4
    shard.write_bytes(bytes(data))
    fresh = LatentStore.open(tmp_path / "s.zarr")
    with pytest.raises(CorruptDataError, match=r"'i4'.*row 4"):
        fresh.get(ids)
    with pytest.raises(CorruptDataError, match="'i4'"):
        fresh["i4"]
    assert same_bits(fresh.get(ids[:4]), x[:4])
    assert same_bits(fresh.get(ids[5:]), x[5:])
    report = fresh.verify()
    assert list(report["unreadable"]) == ["i4"] and report["ok"] == 7 and report["mismatched"] == []


def test_missing_shard_is_corrupt_not_zeros(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=2)
    store.put(["a", "b"], random_latents(2), model="m")
    store.put(["c"], random_latents(1, seed=2), model="m")
    next(p for p in (tmp_path / "s.zarr" / "arrays").rglob("c/1/0/0/0")).unlink()
    with pytest.raises(CorruptDataError, match=r"'c'.*missing"):
        store["c"]
    assert store.get(["a", "b"]).shape == (2, 4, 8, 8)


def test_verify_detects_changed_bits(store: LatentStore) -> None:
    x = random_latents(3, dtype=DTYPES[1])
    store.put(["a", "b", "c"], x, model="m")
    assert store.verify() == {"checked": 3, "ok": 3, "mismatched": [], "unreadable": {}}
    raw = zarr.open_array(store.url, path="arrays/" + store.record("b")["array"], mode="r+")
    raw[1] = x[1] + 1  # tampering through plain zarr keeps checksums valid
    report = store.verify(["a", "b"])
    assert report["mismatched"] == ["b"] and report["ok"] == 1


def test_store_does_not_import_torch_or_models() -> None:
    import subprocess
    import sys

    code = ("import sys, latentzarr.store; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('latentzarr.models', 'distributed'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_get_many_spans_arrays_and_store_pickles(store: LatentStore) -> None:
    import pickle

    x = random_latents(2)
    y = random_latents(2, dtype=DTYPES[2], seed=5)
    store.put(["a", "b"], x, model="m")
    store.put(["c", "d"], y, model="m")
    got = store.get_many(["c", "a", "d", "b"])
    assert [same_bits(g, e) for g, e in zip(got, [y[0], x[0], y[1], x[1]], strict=True)] == [True] * 4
    copy = pickle.loads(pickle.dumps(store))
    assert copy.mode == "a" and copy.ids() == ["a", "b", "c", "d"]
    copy.put(["e"], x[:1], model="m")
    assert same_bits(LatentStore.open(store.url)["e"], x[0])


def test_automatic_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import latentzarr.store.core as core

    monkeypatch.setattr(core, "CHECKPOINT_EVERY", 2)
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=1)
    x = random_latents(5)
    for i in range(5):
        store.put([f"a{i}"], x[i:i + 1], model="m")
    names = sorted(os.listdir(tmp_path / "s.zarr" / "index"))
    assert [n for n in names if n.startswith("checkpoint")] == ["checkpoint-0000000001.parquet",
                                                                "checkpoint-0000000003.parquet"]
    assert (tmp_path / "s.zarr" / "index" / "latest-checkpoint").read_text() == "3"
    for seq in range(4):  # readers start at the checkpoint: the commits it merged are no longer read
        (tmp_path / "s.zarr" / "index" / f"{seq:010d}.parquet").unlink()
    fresh = LatentStore.open(tmp_path / "s.zarr")
    assert fresh.ids() == [f"a{i}" for i in range(5)] and same_bits(fresh.get(fresh.ids()), x)
    assert fresh.record("a2")["row"] == 2


@pytest.mark.parametrize("layout", ["fortran", "big-endian", "strided"])
def test_unusual_memory_layouts_round_trip(store: LatentStore, layout: str) -> None:
    x = random_latents(3, dtype=DTYPES[1])
    given = {"fortran": np.asfortranarray(x), "big-endian": x.astype(">f4"),
             "strided": np.concatenate([x, x], axis=3)[..., ::2]}[layout]
    expected = given.astype(np.float32)
    store.put(["a", "b", "c"], given, model="m")
    got = store.get(["a", "b", "c"])
    assert got.dtype == np.float32 and same_bits(got, expected)


def test_encoded_size_equals_the_chunk_bytes_in_the_shard(tmp_path):
    """``encoded_size`` is the size the shard index records for the id's chunk (index at the shard's end:
    one (offset, nbytes) uint64 pair per chunk, then a CRC32C)."""
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=4)
    rng = np.random.default_rng(3)
    store.put(["a", "b", "c"], rng.normal(0, 1, (3, 4, 8, 8)).astype(np.float16), model="m")
    shard = next((tmp_path / "s.zarr" / "arrays").glob("*/c/0/0/0/0"))
    index = np.frombuffer(shard.read_bytes()[-(16 * 4 + 4):-4], dtype="<u8").reshape(4, 2)
    for image_id in ("a", "b", "c"):
        assert store.encoded_size(image_id) == index[store.record(image_id)["row"], 1]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_get_encoded_is_the_stored_chunk_and_decodes_bit_exact(tmp_path: Path, dtype: np.dtype) -> None:
    import pickle

    store = LatentStore.create(tmp_path / "s.zarr", shard_images=4)
    x = random_latents(6, dtype=dtype)
    ids = [f"i{k}" for k in range(6)]
    store.put(ids[:3], x[:3], model="m")  # rows 0..2 of shard 0
    store.put(ids[3:], x[3:], model="m")  # rows 4..6 of shard 1 (a put never shares a shard)
    for image_id, expected in zip(ids, x, strict=True):
        enc = store.get_encoded(image_id)
        assert enc.dtype == dtype.name and enc.shape == (4, 8, 8)
        assert same_bits(enc.decode(), expected) and same_bits(enc.decode(), store[image_id])
        assert enc.nbytes == store.encoded_size(image_id) < expected.nbytes + 64
        assert same_bits(pickle.loads(pickle.dumps(enc)).decode(), expected)
    with pytest.raises(UnknownIdError, match="'nope'"):
        store.get_encoded("nope")


def test_get_encoded_detects_damage(tmp_path: Path) -> None:
    import dataclasses

    store = LatentStore.create(tmp_path / "s.zarr", shard_images=4)
    store.put(["a", "b"], random_latents(2), model="m")
    store.put(["c"], random_latents(1, seed=2), model="m")
    enc = store.get_encoded("a")
    flipped = bytearray(enc.data)
    flipped[-1] ^= 0x01
    with pytest.raises(CorruptDataError, match="CRC"):
        dataclasses.replace(enc, data=bytes(flipped)).decode()
    shard = next((tmp_path / "s.zarr" / "arrays").rglob("c/0/0/0/0"))
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # inside the shard index
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match=r"'a'.*CRC-32C"):
        store.get_encoded("a")
    next((tmp_path / "s.zarr" / "arrays").rglob("c/1/0/0/0")).unlink()
    with pytest.raises(CorruptDataError, match=r"'c'.*missing"):
        store.get_encoded("c")


def test_a_vanished_store_is_unavailable_not_corrupt(tmp_path: Path) -> None:
    """A missing shard is damage; a missing *store* (moved, unmounted) is an outage: retryable, never 'corrupt'."""
    from latentzarr.errors import StoreUnavailableError

    store = LatentStore.create(tmp_path / "s.zarr", shard_images=2)
    store.put(["a", "b"], random_latents(2), model="m")
    (tmp_path / "s.zarr").rename(tmp_path / "away.zarr")
    for read in (lambda: store["a"], lambda: store.get_encoded("b"), store.verify):
        with pytest.raises(StoreUnavailableError) as info:
            read()
        assert info.value.retryable
    (tmp_path / "away.zarr").rename(tmp_path / "s.zarr")
    assert same_bits(store["a"], random_latents(2)[0])


def test_catalog_agrees_with_record_for_every_id(tmp_path: Path) -> None:
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=2)
    store.put(["a", "b", "c"], random_latents(3), model="m")
    store.put(["d"], random_latents(1, shape=(4, 4, 4), seed=1), model="other")
    cat = LatentStore.open(tmp_path / "s.zarr").catalog()
    assert list(cat["id"]) == store.ids() == ["a", "b", "c", "d"]
    for k, image_id in enumerate(cat["id"]):
        rec = store.record(image_id)
        assert (cat["array"][k], int(cat["row"][k])) == (rec["array"], rec["row"])
        assert cat["created"][k] == np.datetime64(rec["created"].replace(tzinfo=None), "us")
    empty = LatentStore.create(tmp_path / "e.zarr").catalog()
    assert all(len(v) == 0 for v in empty.values())
