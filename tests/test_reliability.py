"""Reliability: what the store and the cluster do under injected faults, and that no committed latent is lost.

Specified behaviours (each tested below):

=============================  =====================================================================================
transient store errors,        retried with backoff (bounded); then ``StoreUnavailableError`` (retryable); never a
timeouts                       wrong answer, never mistaken for a missing id or corrupt data
store unreachable, then back   reads raise ``StoreUnavailableError`` while it is down (cached pictures still served)
                               and succeed once it is back, with nothing restarted or reopened
corrupt shard                  ``CorruptDataError`` naming the id(s); other ids still readable; ``verify`` lists them
disk full during ingest        the put fails with ``OSError(ENOSPC)``; nothing of it is visible; committed latents
                               verify bit-exact; a put after space frees succeeds
dead worker during reads       every read succeeds or raises a retryable error; reads go on on the other workers
cache under memory pressure    the cache never exceeds its byte budget; above ``shed_at`` x the worker's memory limit
                               the worker empties its cache (reads degrade to store fetches, never fail)
=============================  =====================================================================================

Real parts: a Zarr store on disk, real taef2 latents of real 64x64 photos, a LocalCluster of processes.
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from latentzarr.errors import CorruptDataError, StoreUnavailableError, UnknownIdError
from latentzarr.store import LatentStore
from latentzarr.store.faults import FaultInjector, InjectedFault
from latentzarr.store.retry import is_transient

N_IDS = 24


@pytest.fixture(scope="module")
def latents64(taef2) -> dict[str, np.ndarray]:
    """Real taef2 latents (32, 8, 8) float16 of 64x64 crops of the sample photos, 3 crops per photo."""
    from latentzarr.samples import sample_images

    photos = sample_images(64)
    pics = {f"{name}-{k}": np.ascontiguousarray(np.rot90(px, k)) for name, px in photos.items() for k in range(3)}
    ids = sorted(pics)[:N_IDS]
    lat = taef2.encode(np.stack([pics[i] for i in ids]), dtype=np.float16)
    return dict(zip(ids, lat, strict=True))


def bits(x: np.ndarray) -> bytes:
    return np.ascontiguousarray(x).view(np.uint8).tobytes()


def make_store(path: Path, latents: dict[str, np.ndarray], shard_images: int = 8, **open_kwargs) -> LatentStore:
    store = LatentStore.create(path, shard_images=shard_images, **open_kwargs)
    ids = list(latents)
    for lo in range(0, len(ids), shard_images):  # one put per shard: a damaged shard hits one put only
        part = ids[lo:lo + shard_images]
        store.put(part, np.stack([latents[i] for i in part]), model="taef2")
    return store


# ----------------------------------------------------------------------------------------------- the injector
def test_injector_is_seedable_validates_and_pickles_as_settings() -> None:
    import pickle

    def outcomes(inj: FaultInjector) -> list[str]:
        out = []
        for k in range(200):
            try:
                inj.check("get", f"k{k}")
                out.append("ok")
            except InjectedFault:
                out.append("error")
        return out

    a, b = outcomes(FaultInjector(error_rate=0.3, seed=5)), outcomes(FaultInjector(error_rate=0.3, seed=5))
    assert a == b and 20 < a.count("error") < 100
    assert outcomes(FaultInjector(error_rate=0.3, seed=6)) != a
    inj = FaultInjector(error_rate=0.3, seed=5)
    outcomes(inj)
    copy = pickle.loads(pickle.dumps(inj))
    assert copy == inj and copy.counts["ops"] == 0  # settings travel, counters start afresh
    for bad in ({"error_rate": 1.5}, {"latency_ms": (5, 1)}, {"disk_bytes": -1}, {"timeout_s": -1}):
        with pytest.raises(ValueError, match="Expected"):
            FaultInjector(**bad)
    assert is_transient(InjectedFault("x")) and is_transient(TimeoutError()) and is_transient(OSError(errno.EIO, "x"))
    assert not is_transient(FileNotFoundError()) and not is_transient(CorruptDataError("x"))
    assert not is_transient(StoreUnavailableError("x")) and StoreUnavailableError.retryable
    # s3fs lets botocore's connection errors through; they are not OSErrors but are just as transient
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, NoCredentialsError

    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert is_transient(ConnectionClosedError(endpoint_url="http://127.0.0.1:9"))
    assert not is_transient(NoCredentialsError()) and not is_transient(ValueError("x"))
    assert not CorruptDataError.retryable


# ----------------------------------------------------------------------------------------------- store level
def test_transient_errors_and_timeouts_are_retried_and_never_wrong(tmp_path, latents64) -> None:
    make_store(tmp_path / "s.zarr", latents64)
    faults = FaultInjector(error_rate=0.15, timeout_rate=0.05, timeout_s=0.01, latency_ms=(0, 2), seed=1)
    store = LatentStore.open(tmp_path / "s.zarr", faults=faults)
    outcomes = {"ok": 0, "unavailable": 0}
    for _ in range(3):
        for image_id, expected in latents64.items():
            try:
                got = store[image_id]
            except StoreUnavailableError as exc:
                assert exc.retryable and isinstance(exc.__cause__, (InjectedFault, TimeoutError))
                outcomes["unavailable"] += 1
                continue
            assert bits(got) == bits(expected), image_id
            outcomes["ok"] += 1
    assert faults.counts["errors"] > 0 and faults.counts["timeouts"] > 0
    assert outcomes["ok"] > outcomes["unavailable"]  # bounded retries absorb most faults
    report = store.verify()  # under the same faults: nothing is reported damaged
    assert report["ok"] == N_IDS and report["unreadable"] == {} and report["mismatched"] == []


def test_store_unreachable_then_back_without_reopening(tmp_path, latents64) -> None:
    make_store(tmp_path / "s.zarr", latents64)
    faults = FaultInjector(seed=2)
    store = LatentStore.open(tmp_path / "s.zarr", faults=faults)
    first = next(iter(latents64))
    faults.unreachable = True
    with pytest.raises(StoreUnavailableError, match="unreachable or failing"):
        store[first]
    with pytest.raises(StoreUnavailableError):  # an id it does not know: not reported as unknown while down
        store["not-committed"]
    with pytest.raises(StoreUnavailableError):
        store.verify()
    with pytest.raises(StoreUnavailableError):
        LatentStore.open(tmp_path / "s.zarr", faults=faults)
    faults.unreachable = False
    assert all(bits(store[i]) == bits(x) for i, x in latents64.items())
    with pytest.raises(UnknownIdError):
        store["not-committed"]


_HELD: list[LatentStore] = []


def _hold(store: LatentStore) -> None:
    _HELD.append(store)


def _read_held(image_id: str) -> np.ndarray:
    return _HELD[0].get_one(image_id)


def test_unreachable_switch_file_works_across_processes(tmp_path, latents64) -> None:
    flag = tmp_path / "down"
    make_store(tmp_path / "s.zarr", latents64)
    store = LatentStore.open(tmp_path / "s.zarr", faults=FaultInjector(unreachable_file=str(flag)))
    # the store pickles with its faults and reopens once in the child process
    with cf.ProcessPoolExecutor(1, initializer=_hold, initargs=(store,)) as pool:
        first = next(iter(latents64))
        assert bits(pool.submit(_read_held, first).result()) == bits(latents64[first])
        flag.touch()
        with pytest.raises(StoreUnavailableError):
            pool.submit(_read_held, first).result()
        flag.unlink()
        assert bits(pool.submit(_read_held, first).result()) == bits(latents64[first])


def test_corrupt_shard_names_ids_and_spares_the_others(tmp_path, latents64) -> None:
    store = make_store(tmp_path / "s.zarr", latents64)
    ids = list(latents64)
    shard = sorted((tmp_path / "s.zarr" / "arrays").rglob("c/1/0/0/0"))[0]  # rows 8..15
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0xFF
    shard.write_bytes(bytes(data))
    bad = [i for i in ids if store.record(i)["row"] in range(8, 16)]
    fresh = LatentStore.open(tmp_path / "s.zarr", faults=FaultInjector(error_rate=0.05, seed=3))
    report = fresh.verify()
    assert set(report["unreadable"]) and set(report["unreadable"]) <= set(bad)
    assert report["ok"] == N_IDS - len(report["unreadable"]) and report["mismatched"] == []
    for image_id in report["unreadable"]:
        with pytest.raises(CorruptDataError, match=repr(image_id)):
            fresh[image_id]
    for image_id in set(ids) - set(report["unreadable"]):
        assert bits(fresh[image_id]) == bits(latents64[image_id])


def test_disk_full_during_ingest_commits_nothing_and_loses_nothing(tmp_path, latents64) -> None:
    ids = list(latents64)
    committed, later = ids[:8], ids[8:16]
    faults = FaultInjector(seed=4)
    store = LatentStore.create(tmp_path / "s.zarr", shard_images=8, faults=faults)
    store.put(committed, np.stack([latents64[i] for i in committed]), model="taef2")
    one_put = faults.written_bytes
    assert one_put > 0
    for fraction in (0.0, 0.2, 0.5, 0.8, 0.95):  # the disk fills at different steps of the put
        faults.disk_bytes = faults.written_bytes + int(fraction * one_put)
        with pytest.raises(OSError) as info:
            store.put(later, np.stack([latents64[i] for i in later]), model="taef2")
        assert info.value.errno == errno.ENOSPC
        assert faults.counts["enospc"] > 0
        fresh = LatentStore.open(tmp_path / "s.zarr")
        assert fresh.ids() == committed and not any(i in fresh for i in later)
        assert fresh.verify() == {"checked": 8, "ok": 8, "mismatched": [], "unreadable": {}}
    faults.disk_bytes = None  # space freed
    store.put(later, np.stack([latents64[i] for i in later]), model="taef2")
    fresh = LatentStore.open(tmp_path / "s.zarr")
    assert fresh.ids() == committed + later
    assert fresh.verify()["ok"] == 16
    assert all(bits(fresh[i]) == bits(latents64[i]) for i in committed + later)


# ----------------------------------------------------------------------------------------------- cluster level
ERROR_RATE = 0.05


@pytest.fixture(scope="module")
def served(tmp_path_factory, latents64):
    """(LatentClient, store path, unreachable flag path): 3 worker processes reading through 5% injected errors."""
    from latentzarr.cluster import start_cluster

    root = tmp_path_factory.mktemp("reliability")
    make_store(root / "s.zarr", latents64)
    flag = root / "store-down"
    faults = FaultInjector(error_rate=ERROR_RATE, latency_ms=(0, 2), unreachable_file=str(flag), seed=11)
    lc = start_cluster(str(root / "s.zarr"), n_workers=3, threads_per_worker=1, cache_bytes=64 * 2**10,
                       torch_threads=1, faults=faults)
    yield lc, root / "s.zarr", flag
    lc.close()


def clear_caches(lc) -> None:
    def clear(dask_worker) -> None:
        dask_worker.plugins["latentzarr"].cache.clear()

    lc.client.run(clear)


def read_retrying(lc, image_id: str, tries: int = 6) -> bytes:
    """A client that follows the contract: retry a retryable error."""
    for attempt in range(tries):
        try:
            return lc.read(image_id, "png")
        except Exception as exc:
            if not getattr(exc, "retryable", False) or attempt == tries - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def reference(served, latents64, taef2) -> dict[str, bytes]:
    """Each id's PNG as the cluster serves it, checked against an in-process decode of the stored latent."""
    lc, _, _ = served
    out = {i: read_retrying(lc, i) for i in latents64}
    for image_id, png in out.items():
        served_px = np.asarray(Image.open(io.BytesIO(png))).astype(int)
        local_px = taef2.decode(latents64[image_id][None])[0].astype(int)
        assert np.abs(served_px - local_px).max() <= 2, image_id  # thread counts differ (design.md)
    return out


def test_dead_worker_during_reads_under_store_errors(served, reference) -> None:
    lc, _, _ = served
    clear_caches(lc)
    victim = sorted(lc.client.scheduler_info()["workers"])[0]
    pid = lc.client.run(os.getpid, workers=[victim])[victim]
    ids = [list(reference)[k % len(reference)] for k in range(150)]
    with cf.ThreadPoolExecutor(6) as pool:
        pending = [pool.submit(lc.read, i, "png") for i in ids]
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        outcomes = []
        for image_id, fut in zip(ids, pending, strict=True):
            try:
                outcomes.append("ok" if fut.result(timeout=120) == reference[image_id] else "WRONG")
            except Exception as exc:
                assert getattr(exc, "retryable", False), f"{type(exc).__name__}: {exc}"  # clear and retryable
                outcomes.append(type(exc).__name__)
    assert "WRONG" not in outcomes and outcomes.count("ok") > len(ids) // 2
    for image_id in reference:  # reads go on (on the other workers while the victim restarts)
        assert read_retrying(lc, image_id) == reference[image_id]
    stats = lc.stats()["total"]
    assert stats["store_fetches"] > 0


def test_store_down_then_back_in_the_cluster(served, reference) -> None:
    lc, _, flag = served
    clear_caches(lc)
    flag.touch()
    try:
        for image_id in list(reference)[:6]:
            with pytest.raises(StoreUnavailableError, match="unreachable or failing") as info:
                lc.read(image_id, "png")
            assert info.value.retryable
    finally:
        flag.unlink()
    for image_id, png in reference.items():  # back: nothing restarted, every read right
        assert read_retrying(lc, image_id) == png


def test_cache_budget_holds_and_memory_pressure_sheds_the_cache(served, reference) -> None:
    lc, _, _ = served
    for image_id in reference:
        read_retrying(lc, image_id)
    for st in lc.stats()["workers"].values():
        assert st["image_bytes"] + st["latent_bytes"] <= st["capacity"] == 64 * 2**10
    worker = sorted(lc.client.scheduler_info()["workers"])[-1]
    mine = [i for i in reference if lc.owner(i) == worker]
    for image_id in mine:
        read_retrying(lc, image_id)

    def press(dask_worker, extra: int) -> int:
        plugin = dask_worker.plugins["latentzarr"]
        rss, limit = dask_worker.monitor.get_process_memory(), dask_worker.memory_manager.memory_limit
        plugin.shed_at = (rss + extra // 2) / limit  # the threshold lies inside the ballast about to be allocated
        dask_worker.latentzarr_test_ballast = np.ones(extra, dtype=np.uint8)
        return len(plugin.cache)

    def release(dask_worker) -> None:
        del dask_worker.latentzarr_test_ballast

    assert lc.client.run(press, extra=300 * 2**20, workers=[worker])[worker] > 0
    deadline = time.monotonic() + 30
    while lc.stats()["workers"][worker]["sheds"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    st = lc.stats()["workers"][worker]
    assert st["sheds"] >= 1 and st["image_objects"] + st["latent_objects"] == 0
    def pressed(dask_worker) -> bool:
        plugin = dask_worker.plugins["latentzarr"]
        return dask_worker.monitor.get_process_memory() > plugin.shed_at * dask_worker.memory_manager.memory_limit

    lc.client.run(release, workers=[worker])
    deadline = time.monotonic() + 30
    while lc.client.run(pressed, workers=[worker])[worker] and time.monotonic() < deadline:
        time.sleep(0.2)
    for image_id in mine:  # degraded, not failing; the cache refills once memory is back
        assert read_retrying(lc, image_id) == reference[image_id]
    st = lc.stats()["workers"][worker]
    assert st["image_objects"] + st["latent_objects"] > 0


def test_corrupt_shard_through_the_cluster(served, reference) -> None:
    lc, path, _ = served
    shard = sorted((path / "arrays").rglob("c/2/0/0/0"))[0]  # rows 16..23
    original = shard.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    try:
        shard.write_bytes(bytes(data))
        clear_caches(lc)
        bad = set(LatentStore.open(path).verify()["unreadable"])
        assert bad
        for image_id in reference:
            if image_id in bad:
                with pytest.raises(CorruptDataError, match=repr(image_id)) as info:
                    lc.read(image_id, "png")
                assert not info.value.retryable
            else:
                assert read_retrying(lc, image_id) == reference[image_id]
    finally:
        shard.write_bytes(original)
    assert LatentStore.open(path).verify()["ok"] == N_IDS


def test_corrupt_shard_over_http_is_a_500_naming_the_id_without_retry_after(tmp_path, latents64) -> None:
    """Damage is permanent: the endpoint says so (500 ``corrupt``), not 503 + Retry-After; other ids still serve."""
    import httpx
    from test_http import ServerThread

    from latentzarr.http import create_app

    make_store(tmp_path / "s.zarr", latents64)
    shard = sorted((tmp_path / "s.zarr" / "arrays").rglob("c/1/0/0/0"))[0]  # rows 8..15
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    bad = sorted(LatentStore.open(tmp_path / "s.zarr").verify()["unreadable"])
    good = next(i for i in latents64 if i not in bad)
    assert bad
    with ServerThread(create_app(str(tmp_path / "s.zarr"), n_workers=1, rate_limit=None)) as server, \
            httpx.Client(base_url=server.url, timeout=120) as http:
        for suffix in ("", "/latent"):
            r = http.get(f"/v1/images/{bad[0]}{suffix}")
            assert r.status_code == 500 and r.json()["error"] == "corrupt", r.text
            assert repr(bad[0]) in r.json()["detail"] and "retry-after" not in r.headers
            assert "Traceback" not in r.text
        assert http.get(f"/v1/images/{good}").status_code == 200
