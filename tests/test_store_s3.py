"""LatentStore on an S3-compatible object store (moto's server on localhost; nothing reaches the network)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

from latentzarr.errors import DuplicateIdError, StoreLockedError  # noqa: E402
from latentzarr.store import LatentStore  # noqa: E402
from latentzarr.store.backend import Backend  # noqa: E402
from latentzarr.store.layout import LOCK_NAME  # noqa: E402
from latentzarr.store.locking import LeaseLock  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[tuple]:
    """(url, storage_options) of a fresh bucket."""
    for key, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    import s3fs

    options = {"endpoint_url": s3_endpoint, "key": "x", "secret": "x"}
    bucket = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir(bucket)
    yield f"s3://{bucket}/store.zarr", options


def _latents(n: int, dtype: np.dtype, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4, 8, 8)).astype(np.float32).astype(dtype)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def test_s3_create_put_reopen_get(s3_url: tuple) -> None:
    url, options = s3_url
    store = LatentStore.create(url, storage_options=options, shard_images=4)
    x16 = _latents(5, np.dtype(np.float16))
    xbf = _latents(3, np.dtype(ml_dtypes.bfloat16), seed=1)
    store.put([f"a{i}" for i in range(5)], x16, model="m", model_attrs={"scaling_factor": 1.5})
    store.put([f"b{i}" for i in range(3)], xbf, model="m")
    assert not Backend(url, options).exists(LOCK_NAME)  # the lease is released
    with pytest.raises(DuplicateIdError):
        store.put(["a1"], x16[:1], model="m")

    reopened = LatentStore.open(url, storage_options=options)
    assert len(reopened) == 8
    assert _same_bits(reopened.get([f"a{i}" for i in (4, 0, 2)]), x16[[4, 0, 2]])
    assert _same_bits(reopened.get([f"b{i}" for i in range(3)]), xbf)
    assert reopened.record("a0")["model_attrs"] == {"scaling_factor": 1.5}
    more = _latents(2, np.dtype(np.float16), seed=2)
    reopened_rw = LatentStore.open(url, mode="a", storage_options=options)
    reopened_rw.put(["c0", "c1"], more, model="m")
    assert [reopened_rw.record(i)["row"] for i in ("a0", "c1")] == [0, 9]
    assert _same_bits(reopened_rw.get(["c1", "a0", "a4"]), np.stack([more[1], x16[0], x16[4]]))  # concurrent runs
    info = reopened.info()
    assert info["images"] == 10 and info["stored_bytes"] > 0
    assert reopened.verify()["ok"] == 10
    ds = reopened.to_xarray(reopened.record("b0")["array"])
    assert np.array_equal(ds["latent"].values, xbf.astype(np.float32))


def test_s3_threads_write_through_the_lease(s3_url: tuple) -> None:
    url, options = s3_url
    LatentStore.create(url, storage_options=options, shard_images=2)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            store = LatentStore.open(url, mode="a", storage_options=options)
            for b in range(2):
                store.put([f"t{t}-{b}-{k}" for k in range(3)], _latents(3, np.dtype(np.float16), seed=10 * t + b),
                          model="m")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = LatentStore.open(url, storage_options=options)
    ids = store.ids()
    assert len(ids) == 18 == len(set(ids))
    rows = {store.record(i)["row"] for i in ids}
    assert len(rows) == 18
    for t in range(3):
        for b in range(2):
            got = store.get([f"t{t}-{b}-{k}" for k in range(3)])
            assert _same_bits(got, _latents(3, np.dtype(np.float16), seed=10 * t + b))


def test_s3_lease_held_times_out_and_stale_lease_is_broken(s3_url: tuple) -> None:
    url, options = s3_url
    LatentStore.create(url, storage_options=options)
    backend = Backend(url, options)
    backend.write(LOCK_NAME, b'{"token": "someone else"}', exclusive=True)
    with pytest.raises(FileExistsError):  # the exclusive create is honoured
        backend.write(LOCK_NAME, b"{}", exclusive=True)
    store = LatentStore.open(url, mode="a", storage_options=options, lock_timeout=0.3)
    with pytest.raises(StoreLockedError, match="lease"):
        store.put(["a"], _latents(1, np.dtype(np.float16)), model="m")
    assert len(LatentStore.open(url, storage_options=options)) == 0
    with LeaseLock(backend, timeout=5, stale_after=0.0):  # an abandoned lease is broken
        assert b"someone else" not in backend.read(LOCK_NAME)
    assert not backend.exists(LOCK_NAME)


def test_s3_vacuum_deletes_garbage_objects_and_keeps_every_latent(s3_url: tuple) -> None:
    url, options = s3_url
    store = LatentStore.create(url, storage_options=options, shard_images=4)
    x = _latents(8, np.dtype(np.float16))
    ids = [f"a{i}" for i in range(8)]
    store.put(ids[:4], x[:4], model="m")
    store.put(ids[4:], x[4:], model="m")
    reader = LatentStore.open(url, storage_options=options)  # loaded before the move
    store.rewrite(ids[1:], x[1:], precision="q8")  # shard 0 keeps a0 only, shard 1 nothing
    before = {i: store.get_encoded(i).data for i in ids}
    backend = Backend(url, options)
    old = [f"arrays/m-4x8x8-float16/c/{k}/0/0/0" for k in (0, 1)]
    assert all(backend.exists(k) for k in old)
    report = store.vacuum(grace=3600)  # compacts now, deletes nothing yet
    assert (report.compacted_shards, report.relocated_ids, report.deleted_shards, report.waiting_shards) == (1, 1, 0, 2)
    assert all(backend.exists(k) for k in old)
    assert store.vacuum(grace=0).deleted_shards == 2
    assert not any(backend.exists(k) for k in old) and not backend.exists(LOCK_NAME)
    assert {i: store.get_encoded(i).data for i in ids} == before
    assert _same_bits(reader.get(ids[4:]), store.get(ids[4:]))  # the stale reader follows the moves
    assert LatentStore.open(url, storage_options=options).verify()["ok"] == 8


def test_s3_compaction_deletes_replaced_commits_and_readers_catch_up(s3_url: tuple) -> None:
    """On the object store: compact(grace=0) leaves one checkpoint; a reader and a writer that were behind catch up
    from it; group-committed single puts land in shared commits."""
    url, options = s3_url
    store = LatentStore.create(url, storage_options=options, shard_images=4)
    x = _latents(8, np.dtype(np.float16))
    store.put(["a0"], x[:1], model="m")
    reader = LatentStore.open(url, storage_options=options)
    late_writer = LatentStore.open(url, mode="a", storage_options=options)
    with store.writer(max_ids=4, max_wait_s=600) as writer:
        futures = [writer.submit(f"a{i}", x[i], model="m") for i in range(1, 5)]
        assert all(f.result(timeout=120) is None for f in futures) and writer.commits == 1
    assert store.compact(grace=0) == 1
    assert store.index_stats()["index_files"] == 2  # the checkpoint and the hint
    assert reader.refresh() == 4 and _same_bits(reader.get([f"a{i}" for i in range(5)]), x[:5])
    late_writer.put(["a5"], x[5:6], model="m")
    fresh = LatentStore.open(url, storage_options=options)
    assert sorted(fresh.ids()) == [f"a{i}" for i in range(6)]
    assert fresh.verify()["ok"] == 6
