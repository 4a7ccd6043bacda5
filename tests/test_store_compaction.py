"""Index compaction: checkpoints by commit bytes as well as counts, deletion of the files a checkpoint replaced,
and readers / writers that were behind when those files went."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from latentzarr.store import LatentStore

SHAPE = (4, 8, 8)


def latents(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float16)


def index_files(path: Path) -> list[str]:
    return sorted(os.listdir(path / "index"))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(np.asarray(a).view(np.uint16), np.asarray(b).view(np.uint16))


def test_compact_deletes_replaced_files_and_lagging_reader_and_writer_catch_up(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path, shard_images=2)
    x = latents(8)
    store.put(["a0", "a1"], x[:2], model="m")
    reader = LatentStore.open(path)  # loaded up to seq 0
    late_writer = LatentStore.open(path, mode="a")
    seen = reader.version
    for i in range(2, 6):
        store.put([f"a{i}"], x[i:i + 1], model="m")
    store.rewrite(["a1"], x[1:2], precision="bitround:4")  # a move commit, then compacted away
    moved_row = store.record("a1")["row"]
    seq = store.compact(grace=0)
    assert seq == store.version == 5
    assert index_files(path) == ["checkpoint-0000000005.parquet", "latest-checkpoint"]

    assert reader.refresh() == 4
    assert sorted(reader.ids()) == [f"a{i}" for i in range(6)]
    assert reader.record("a1")["row"] == moved_row and reader.record("a1")["array"] == store.record("a1")["array"]
    assert same_bits(reader["a1"], store["a1"]) and not same_bits(reader["a1"], x[1])  # the rounded copy
    assert same_bits(reader.get([f"a{i}" for i in (0, 2, 3, 4, 5)]), x[[0, 2, 3, 4, 5]])
    assert reader.moved_since(seen) == ["a1"]  # a cache of decoded pictures learns of the move

    late_writer.put(["a6"], x[6:7], model="m")  # takes seq 6, not a deleted seq
    assert "0000000006.parquet" in index_files(path)
    fresh = LatentStore.open(path)
    assert sorted(fresh.ids()) == [f"a{i}" for i in range(7)]
    assert fresh.verify()["ok"] == 7


def test_compact_keeps_files_within_grace(tmp_path: Path) -> None:
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path)
    x = latents(3)
    for i in range(3):
        store.put([f"a{i}"], x[i:i + 1], model="m")
    store.compact(grace=3600)
    assert index_files(path) == ["0000000000.parquet", "0000000001.parquet", "0000000002.parquet",
                                 "checkpoint-0000000002.parquet", "latest-checkpoint"]
    store.put(["a3"], latents(1, 1), model="m")
    store.compact(grace=0)  # the newer checkpoint replaces the older one and every commit
    assert index_files(path) == ["checkpoint-0000000003.parquet", "latest-checkpoint"]
    assert sorted(LatentStore.open(path).ids()) == ["a0", "a1", "a2", "a3"]


def test_checkpoints_follow_commit_bytes_and_index_stays_bounded(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint is due once the commits since the last one reach half its bytes: checkpoints come at growing
    intervals (not every N commits), and with replaced files deleted at once the index stays within 1.5x of one
    checkpoint of everything after every put."""
    import latentzarr.store.core as core

    monkeypatch.setattr(core, "CHECKPOINT_EVERY", 10**9)
    monkeypatch.setattr(core, "CHECKPOINT_MIN_BYTES", 1)
    monkeypatch.setattr(core, "DEFAULT_GRACE_S", 0)
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path)
    x = latents(50 * 60)
    checkpoints_at = []
    for c in range(60):
        store.put([f"a{c}-{k}" for k in range(50)], x[50 * c: 50 * (c + 1)], model="m")
        names = [n for n in index_files(path) if n.startswith("checkpoint-")]
        assert len(names) <= 1
        if names and (not checkpoints_at or int(names[0][11:21]) != checkpoints_at[-1]):
            checkpoints_at.append(int(names[0][11:21]))
        stats = store.index_stats()
        assert stats["index_bytes"] <= 1.5 * stats["live_index_bytes"] + 16, (c, stats)
    gaps = np.diff(checkpoints_at)
    assert 3 <= len(checkpoints_at) < 30 and gaps[-1] > 2 * gaps[0], checkpoints_at
    fresh = LatentStore.open(path)
    assert same_bits(fresh.get([f"a{c}-{k}" for c in range(60) for k in range(50)]), x)


@pytest.mark.parametrize("grace", [-1, "0", True])
def test_compact_rejects_bad_grace(tmp_path: Path, grace: object) -> None:
    store = LatentStore.create(tmp_path / "s.zarr")
    with pytest.raises(ValueError, match=f"Expected grace as seconds >= 0 or None. Got {grace!r} instead."):
        store.compact(grace=grace)  # type: ignore[arg-type]
