"""``LatentStore.verify`` with progress, and on a real LocalCluster of processes (workers open only the arrays)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latentzarr.store import LatentStore


def _damaged_store(path: Path) -> LatentStore:
    """12 ids in shards of 4; the first chunk of the second shard (id i4) has a flipped byte."""
    store = LatentStore.create(path, shard_images=4)
    x = np.random.default_rng(0).standard_normal((12, 4, 8, 8)).astype(np.float16)
    ids = [f"i{k}" for k in range(12)]
    for k in range(0, 12, 4):
        store.put(ids[k:k + 4], x[k:k + 4], model="m")
    shard = next(p for p in (path / "arrays").rglob("c/1/0/0/0"))  # rows 4..7
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))
    return LatentStore.open(path)


def test_verify_reports_progress(tmp_path: Path) -> None:
    store = _damaged_store(tmp_path / "s.zarr")
    seen: list[tuple[int, int]] = []
    report = store.verify(batch=5, progress=lambda done, total: seen.append((done, total)))
    assert list(report["unreadable"]) == ["i4"] and report["ok"] == 11 and report["checked"] == 12
    assert seen == [(5, 12), (10, 12), (12, 12)]


def test_verify_on_a_cluster_matches_local(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    store = _damaged_store(tmp_path / "s.zarr")
    local = store.verify(batch=3)
    seen: list[int] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        remote = store.verify(batch=3, client=client, progress=lambda done, total: seen.append(done))
        subset = store.verify(["i1", "i9"], client=client)
    assert remote == local
    assert list(remote["unreadable"]) == ["i4"] and remote["ok"] == 11
    assert sorted(seen) == seen and seen[-1] == 12 and len(seen) == 4
    assert subset == {"checked": 2, "ok": 2, "mismatched": [], "unreadable": {}}


@pytest.mark.parametrize("batch", [0, True, 2.5])
def test_verify_rejects_bad_batch(tmp_path: Path, batch: object) -> None:
    store = LatentStore.create(tmp_path / "s.zarr")
    with pytest.raises(ValueError, match=f"Expected batch as an integer >= 1 .ids per batch.. Got {batch!r}"):
        store.verify(batch=batch)  # type: ignore[arg-type]
