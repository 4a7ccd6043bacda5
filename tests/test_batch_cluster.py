"""Batch decode and the streaming dataset on a real LocalCluster of processes (one cluster for the module)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from latentzarr.batch import LatentImageDataset, batch_decode
from latentzarr.batch.run import _gpu_resources

BS = 4
N_IDS = 14
ARRAY = "taef2-32x8x8-float16"


@pytest.fixture(scope="module")
def source(tmp_path_factory, models_dir):
    from latentzarr.store import LatentStore

    path = tmp_path_factory.mktemp("batch-cluster") / "store.zarr"
    store = LatentStore.create(path, shard_images=8)
    latents = np.random.default_rng(11).normal(0, 1, (N_IDS, 32, 8, 8)).astype(np.float16)
    store.put([f"img-{i:02d}" for i in range(N_IDS)], latents, model="taef2")
    return store.url, latents


@pytest.fixture(scope="module")
def lc(source):
    # the workers decode with as many torch threads as this process, so their pixels are bit-exact with ours
    import torch

    from latentzarr.cluster import start_cluster

    client = start_cluster(source[0], n_workers=2, threads_per_worker=1, cache_bytes=16 * 2**20,
                           torch_threads=torch.get_num_threads())
    yield client
    client.close()


def process_models() -> list:
    from latentzarr.batch import run

    return sorted(str(k) for k in run._PROCESS if k[0] == "model")


def test_cluster_output_equals_direct_decode_and_resumes(lc, source, taef2, tmp_path):
    url, latents = source
    out = tmp_path / "out"
    report = batch_decode(url, str(out), client=lc, batch_size=BS, progress=False)
    assert (report.images, report.chunks, report.skipped_chunks) == (N_IDS, 4, 0)
    arr = zarr.open_array(str(out), path=ARRAY, mode="r")
    assert np.array_equal(arr[:], taef2.decode(latents, batch_size=BS))
    # tasks decoded with each worker plugin's model, not a second copy per process
    loaded = lc.client.run(process_models)
    assert len(loaded) == 2 and all(v == [] for v in loaded.values())
    assert _gpu_resources(lc.client) is None  # CPU workers: no resource restriction at all

    zarr.open_array(str(out), path=ARRAY, mode="r+")[8:12] = 0
    (out / "_done" / ARRAY / "c" / "2").unlink()
    report = batch_decode(url, str(out), client=lc.client, batch_size=BS, progress=False)
    assert (report.images, report.skipped_chunks) == (4, 3)
    assert np.array_equal(arr[:], taef2.decode(latents, batch_size=BS))


def test_dataset_streams_from_the_cluster(lc, source, taef2):
    from torch.utils.data import DataLoader

    url, latents = source
    ids = [f"img-{i:02d}" for i in range(N_IDS)]
    ds = LatentImageDataset(url, ids, batch_size=BS, client=lc, shuffle=True, seed=1, prefetch=3)
    seen = []
    for batch in DataLoader(ds, batch_size=None):
        rows = [ids.index(i) for i in batch["id"]]
        direct = taef2.decode(latents[rows], batch_size=BS)
        assert np.array_equal(batch["image"].permute(0, 2, 3, 1).numpy(), direct)
        seen += batch["id"]
    assert sorted(seen) == ids
    with pytest.raises(RuntimeError, match="num_workers=0"):
        list(DataLoader(ds, batch_size=None, num_workers=1))
