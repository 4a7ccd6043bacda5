"""Serving through a real LocalCluster (processes): routing, coalescing, spillover write-back, worker death.

Latents are random (shape plumbing) but decoded by the real trained taef2 model; 8x8 latents (64x64 pictures)
keep each decode to a few milliseconds.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import os
import signal
import time

import numpy as np
import pytest
from PIL import Image

from latentzarr.cluster import LatentClient, ReadFailedError, start_cluster
from latentzarr.cluster.client import RING_TTL_S
from latentzarr.cluster.ring import HashRing
from latentzarr.errors import InvalidIdError, UnknownIdError

N_IDS = 60


@pytest.fixture(scope="module")
def store_url(tmp_path_factory, models_dir):
    from latentzarr.store import LatentStore

    path = tmp_path_factory.mktemp("cluster") / "store.zarr"
    store = LatentStore.create(path, shard_images=16)
    rng = np.random.default_rng(7)
    latents = rng.normal(0, 1, (N_IDS, 32, 8, 8)).astype(np.float16)
    store.put([f"img-{i:03d}" for i in range(N_IDS)], latents, model="taef2")
    return str(path)


@pytest.fixture(scope="module")
def lc(store_url):
    # promotion after P latent hits: these tests check tier mechanics on the cluster (a miss leaves the chunk in
    # the latent tier); promotion priced by the measured costs (at the miss here: CPU decode, local store) is
    # tested in test_cache_dual.py
    client = start_cluster(store_url, n_workers=2, threads_per_worker=1, cache_bytes=32 * 2**20, torch_threads=1,
                           cache_options={"promotion": "count"})
    yield client
    client.close()


def owned_by(lc: LatentClient, address: str, n: int) -> list[str]:
    return [i for i in (f"img-{k:03d}" for k in range(N_IDS)) if lc.owner(i) == address][:n]


def test_read_equals_direct_decode(lc, store_url, taef2):
    from latentzarr.models.images import encode_image
    from latentzarr.store import LatentStore

    latent = LatentStore.open(store_url).get(["img-000"])
    expected = encode_image(taef2.decode(latent)[0], "png")
    got = lc.read("img-000")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(got))), np.asarray(Image.open(io.BytesIO(expected))))
    assert np.array_equal(lc.read_latent("img-000"), latent[0])


def test_renditions_and_errors(lc):
    webp = lc.read("img-001", format="webp", size=32, quality=80)
    im = Image.open(io.BytesIO(webp))
    assert im.format == "WEBP" and max(im.size) == 32
    with pytest.raises(UnknownIdError, match="no-such-id"):
        lc.read("no-such-id")
    with pytest.raises(InvalidIdError):
        lc.read("")
    with pytest.raises(ValueError, match="format"):
        lc.read("img-001", format="gif")


def test_routing_is_deterministic_and_matches_the_ring(lc):
    info = lc.client.scheduler_info()["workers"]
    ring = HashRing(sorted(str(w["name"]) for w in info.values()))
    by_name = {str(w["name"]): addr for addr, w in info.items()}
    for i in (f"img-{k:03d}" for k in range(N_IDS)):
        assert lc.owner(i) == by_name[ring.owner(i)]


def test_concurrent_reads_of_a_cold_id_cause_one_decode(lc):
    before = lc.stats()["total"].get("decodes", 0)
    results = lc.read_many(["img-010"] * 50, format="jpeg")
    assert len(set(results)) == 1
    assert lc.stats()["total"]["decodes"] - before == 1


def test_hot_id_is_served_from_the_owner_image_tier(lc):
    image_id = "img-020"
    first = lc.read(image_id)
    for _ in range(8):  # enough latent hits for promotion (promote_after)
        assert lc.read(image_id) == first
    stats = lc.stats()
    owner = stats["workers"][lc.owner(image_id)]
    assert owner["image_hits"] >= 1
    decodes = stats["total"]["decodes"]
    assert lc.read(image_id) == first
    assert lc.stats()["total"]["decodes"] == decodes  # an image hit decodes nothing


def test_latent_tier_holds_the_stored_chunk_compressed(lc, store_url):
    from latentzarr.store import LatentStore

    image_id = "img-033"
    lc.read(image_id)  # a miss: the fetched chunk goes to the owner's latent tier

    def held(dask_worker, image_id):
        from latentzarr.cluster.plugin import PLUGIN_NAME

        value = dask_worker.plugins[PLUGIN_NAME].cache.peek_latent(image_id)
        return None if value is None else (type(value).__name__, value.nbytes, value.decode())

    kind, nbytes, latent = lc.client.run(held, image_id=image_id, workers=[lc.owner(image_id)])[lc.owner(image_id)]
    store = LatentStore.open(store_url)
    assert kind == "EncodedLatent" and nbytes == store.encoded_size(image_id) < store[image_id].nbytes
    assert np.array_equal(latent.view(np.uint16), store[image_id].view(np.uint16))


def test_workers_drop_what_they_cached_of_an_id_that_moved(lc, store_url, taef2):
    from latentzarr.cluster.plugin import PLUGIN_NAME
    from latentzarr.models.images import encode_image
    from latentzarr.store import LatentStore

    image_id = "img-050"
    first = lc.read(image_id)
    for _ in range(8):  # promoted: the owner holds the picture decoded from the lossless latent
        lc.read(image_id)
    assert lc.stats()["workers"][lc.owner(image_id)]["image_hits"] >= 1
    store = LatentStore.open(store_url, mode="a")
    store.rewrite([image_id], store.get([image_id]), precision="step:0.5")  # coarse: the picture changes
    expected = encode_image(taef2.decode(store.get([image_id]))[0], "png")
    assert expected != first

    def follow(dask_worker):  # what the worker's periodic callback does every STORE_REFRESH_MS
        plugin = dask_worker.plugins[PLUGIN_NAME]
        plugin.store.refresh()  # a read may have loaded the move first: it must still be followed
        return plugin.follow_moves(), "latentzarr-refresh" in dask_worker.periodic_callbacks

    owner = lc.owner(image_id)
    dropped = lc.client.run(follow)
    assert all(on for _, on in dropped.values())
    # dropped by this call, or already by the worker's own periodic refresh if it ran since the rewrite
    assert dropped[owner][0] >= 1 or lc.stats()["workers"][owner]["invalidated"] >= 1
    got = lc.read(image_id)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(got))), np.asarray(Image.open(io.BytesIO(expected))))
    assert lc.stats()["total"]["invalidated"] >= 1


def test_saturated_owner_spills_and_results_land_in_owner_cache(store_url):
    lc = start_cluster(store_url, n_workers=2, threads_per_worker=1, cache_bytes=32 * 2**20, torch_threads=1)
    try:
        workers = sorted(lc.client.scheduler_info()["workers"])
        busy, idle = workers
        ids = owned_by(lc, busy, 20)
        lc.read_many(ids)
        stats = lc.stats()["workers"]
        assert stats[idle]["spilled"] > 0, "stealing should move some reads off the saturated owner"
        assert stats[busy]["writebacks"] == stats[idle]["spilled"]
        # every id's cache entry lives on its owner only
        assert stats[busy]["latent_objects"] + stats[busy]["image_objects"] == len(ids)
        assert stats[idle]["latent_objects"] + stats[idle]["image_objects"] == 0
    finally:
        lc.close()


def test_killing_a_worker_loses_no_read(store_url):
    lc = start_cluster(store_url, n_workers=3, threads_per_worker=1, cache_bytes=32 * 2**20, torch_threads=1)
    try:
        victim = sorted(lc.client.scheduler_info()["workers"])[0]
        pid = lc.client.run(os.getpid, workers=[victim])[victim]
        ids = [f"img-{k % N_IDS:03d}" for k in range(200)]
        with cf.ThreadPoolExecutor(8) as pool:
            pending = [pool.submit(lc.read, i, "png", 32) for i in ids]
            time.sleep(0.5)
            os.kill(pid, signal.SIGKILL)
            outcomes = []
            for f in pending:
                try:
                    outcomes.append(("ok", f.result(timeout=120)))
                except ReadFailedError as exc:
                    outcomes.append(("failed", exc))
        failed = [ids[n] for n, (kind, _) in enumerate(outcomes) if kind == "failed"]
        assert len(outcomes) == 200
        for image_id in failed:  # a retry succeeds
            assert lc.read(image_id, "png", 32)
        assert all(isinstance(v, bytes) and v for kind, v in outcomes if kind == "ok")
    finally:
        lc.close()


def test_placement_spills_only_when_the_owner_queue_is_deep():
    lc = LatentClient(client=None, spill=True)
    lc._addresses = {"0": "tcp://a", "1": "tcp://b"}
    lc._in_flight = {"tcp://a": 1, "tcp://b": 0}
    assert lc._placement("tcp://a") == "tcp://a"  # one read ahead: stay with the owner's cache
    lc._in_flight["tcp://a"] = 3
    assert lc._placement("tcp://a") == "tcp://b"
    lc._in_flight["tcp://b"] = 2
    assert lc._placement("tcp://a") == "tcp://a"
    pinned = LatentClient(client=None, spill=False)
    pinned._addresses, pinned._in_flight = lc._addresses, {"tcp://a": 9}
    assert pinned._placement("tcp://a") == "tcp://a"  # owner-only never spills


def test_routing_survives_a_worker_restart(lc):
    """A restarted worker comes back under its name at a new address and keeps its ids."""
    ids = [f"img-{k:03d}" for k in range(N_IDS)]
    names = {a: str(w["name"]) for a, w in lc.client.scheduler_info()["workers"].items()}
    before = {i: names[lc.owner(i)] for i in ids}
    victim = sorted(names)[0]
    lc.client.restart_workers([victim])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = lc.client.scheduler_info()["workers"]
        if len(info) == 2 and victim not in info:
            break
        time.sleep(0.2)
    time.sleep(RING_TTL_S + 0.1)  # let the client's name -> address map expire
    names = {a: str(w["name"]) for a, w in lc.client.scheduler_info()["workers"].items()}
    assert {i: names[lc.owner(i)] for i in ids} == before
    assert lc.read(ids[0], "png", 32)  # and reads work on the restarted worker


def test_plugin_missing_error_says_how_to_fix():
    from distributed import Client, LocalCluster

    from latentzarr.cluster import PluginMissingError, get_latentzarr_plugin

    with pytest.raises(PluginMissingError, match="inside a Dask worker"):
        get_latentzarr_plugin()
    with (LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client,
          pytest.raises(PluginMissingError, match="register_plugin")):
        client.submit(get_latentzarr_plugin).result()


def test_second_read_is_a_picture_hit_when_the_decode_costs_more_than_the_fetch(store_url):
    """A CPU decode (tens to thousands of ms) against a local store read (a few ms): promotion priced with the
    costs the worker measured keeps the picture at its first decode, so the second read decodes nothing."""
    lc = start_cluster(store_url, n_workers=1, threads_per_worker=1, cache_bytes=32 * 2**20, torch_threads=1)
    try:
        image_id = "img-007"
        first = lc.read(image_id)
        before = lc.stats()["total"]
        assert lc.read(image_id) == first
        after = lc.stats()["total"]
        assert after["image_hits"] == before.get("image_hits", 0) + 1
        assert after["decodes"] == before["decodes"] == 1
    finally:
        lc.close()
