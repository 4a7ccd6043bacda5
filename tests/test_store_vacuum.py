"""LatentStore.vacuum on real stores on disk: reclaimed bytes, bit-exact survivors, grace, stale readers, races.

Latents are real taef2 latents of the sample photos at 64x64 (32x8x8 float16); shards hold 4 rows so that a few
ids make several shards.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from latentzarr.errors import CorruptDataError, WriteConflictError
from latentzarr.store import LatentStore
from latentzarr.store.index import IdIndex
from latentzarr.store.vacuum import MARKS_KEY

IDS = [f"p{i}" for i in range(8)]


def files(path: Path) -> dict[str, tuple[int, int]]:
    """Every file of a store with its size and mtime (ns), the lock file aside."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file() and p.name != ".latentzarr.lock"}


def shard_files(path: Path, array: str) -> list[str]:
    return sorted(str(p.relative_to(path / "arrays" / array / "c")) for p in (path / "arrays" / array / "c").rglob("*")
                  if p.is_file())


def stored(store: LatentStore) -> dict[str, tuple[bytes, str]]:
    """Per id: its chunk as stored and its digest."""
    return {i: (store.get_encoded(i).data, store.record(i)["latent_sha256"]) for i in store.ids()}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "s.zarr"


@pytest.fixture
def store(path: Path, taef2_latents_64: np.ndarray) -> LatentStore:
    """8 lossless ids in two puts of 4: rows 0-3 (shard 0) and 4-7 (shard 1) of one array."""
    st_ = LatentStore.create(path, shard_images=4)
    st_.put(IDS[:4], taef2_latents_64[:4], model="taef2")
    st_.put(IDS[4:], taef2_latents_64[4:], model="taef2")
    return st_


LOSSLESS = "taef2-32x8x8-float16"


def test_vacuum_reclaims_moved_rows_and_keeps_every_latent(store: LatentStore, path: Path, taef2_latents_64):
    moved = IDS[:3] + IDS[4:]  # shard 0 keeps p3 only (3/4 garbage), shard 1 none
    store.rewrite(moved, taef2_latents_64[[0, 1, 2, 4, 5, 6, 7]], precision="q8")
    before, size_before = stored(store), store.info()["stored_bytes"]
    assert shard_files(path, LOSSLESS) == ["0/0/0/0", "1/0/0/0"]

    report = store.vacuum(grace=0)

    assert (report.compacted_shards, report.relocated_ids, report.deleted_shards) == (1, 1, 2)
    assert report.reclaimed_bytes > 0 and report.waiting_shards == 0 and not report.unreadable
    assert report.stored_bytes_after == store.info()["stored_bytes"] < size_before
    assert shard_files(path, LOSSLESS) == ["2/0/0/0"]  # p3's copy, in a fresh shard
    assert store.record("p3")["row"] == 8
    for reader in (store, LatentStore.open(path)):
        assert stored(reader) == before  # every chunk byte for byte, the lossy ones included
        assert reader.verify() == {"checked": 8, "ok": 8, "mismatched": [], "unreadable": {}}
    assert np.array_equal(store.get(["p3"]).view(np.uint16), taef2_latents_64[3:4].view(np.uint16))
    store.compact()  # a checkpoint holds the new locations
    assert stored(LatentStore.open(path)) == before
    assert not (path / "arrays" / LOSSLESS / "c" / "0").exists()  # emptied folders are pruned


def test_compaction_copies_lossy_chunks_without_re_encoding(path: Path, taef2_latents_64):
    # q8 is not idempotent (quantising its own output changes bits), so only a copy of the chunk keeps them
    store = LatentStore.create(path, shard_images=4)
    store.put(IDS[:4], taef2_latents_64[:4], model="taef2", precision="q8")
    store.rewrite(IDS[:3], store.get(IDS[:3]), precision="step:0.1")
    before = stored(store)
    report = store.vacuum(grace=0)
    assert (report.compacted_shards, report.relocated_ids, report.deleted_shards) == (1, 1, 1)
    assert stored(store) == before and store.verify()["ok"] == 4
    assert store.record("p3")["precision"] == "q8"


def test_grace_period_marks_first_and_deletes_once_over(store: LatentStore, path: Path, taef2_latents_64):
    store.rewrite(IDS[4:], taef2_latents_64[4:], precision="q8")  # shard 1 of the lossless array is garbage
    snapshot = files(path)
    report = store.vacuum()  # default grace: one hour
    assert (report.deleted_shards, report.waiting_shards) == (0, 1) and report.waiting_bytes > 0
    key = f"arrays/{LOSSLESS}/c/1/0/0/0"
    marks = json.loads((path / MARKS_KEY).read_text())["marks"]
    assert list(marks) == [key]
    assert {k: v for k, v in files(path).items() if k != MARKS_KEY} == snapshot

    # marked two hours ago, but written a moment ago: still waiting (a write in flight looks like that)
    (path / MARKS_KEY).write_text(json.dumps({"version": 1, "marks": {key: time.time() - 7200}}))
    assert store.vacuum(grace=3600).deleted_shards == 0
    assert (path / key).exists()
    # written two hours ago too: deleted
    old = time.time() - 7200
    os.utime(path / key, (old, old))
    (path / MARKS_KEY).write_text(json.dumps({"version": 1, "marks": {key: old}}))
    report = store.vacuum(grace=3600)
    assert report.deleted_shards == 1 and not (path / key).exists()
    assert json.loads((path / MARKS_KEY).read_text())["marks"] == {}
    assert store.verify()["ok"] == 8


def test_dry_run_changes_nothing_and_predicts_the_run(store: LatentStore, path: Path, taef2_latents_64):
    store.rewrite(IDS[:3] + IDS[4:], taef2_latents_64[[0, 1, 2, 4, 5, 6, 7]], precision="q8")
    snapshot, version = files(path), store.version
    dry = store.vacuum(grace=0, dry_run=True)
    assert files(path) == snapshot and store.version == version
    real = store.vacuum(grace=0)
    for field in ("compacted_shards", "relocated_ids", "relocated_bytes", "deleted_shards"):
        assert getattr(dry, field) == getattr(real, field), field
    assert dry.dry_run and not real.dry_run


def test_stale_readers_follow_ids_whose_rows_were_reclaimed(store: LatentStore, path: Path, taef2_latents_64):
    readers = [LatentStore.open(path) for _ in range(4)]  # each loaded its index before the move
    view = readers[0].to_xarray(LOSSLESS)  # captures rows 0-7
    dataset = xr.open_dataset(path, engine="latentzarr")  # by id
    store.rewrite(IDS[4:], taef2_latents_64[4:], precision="q8")
    store.vacuum(grace=0)
    assert not (path / "arrays" / LOSSLESS / "c" / "1").exists()
    assert all(r.version < store.version and r.record("p5")["row"] == 5 for r in readers)

    expected = store.get(IDS[4:])
    assert np.array_equal(readers[0].get(IDS[4:]).view(np.uint16), expected.view(np.uint16))
    assert np.array_equal(readers[1].get_encoded("p6").decode().view(np.uint16), expected[2].view(np.uint16))
    got = readers[2].get_many(["p0", "p7"])
    assert np.array_equal(got[1].view(np.uint16), expected[3].view(np.uint16))
    assert readers[3].verify() == {"checked": 8, "ok": 8, "mismatched": [], "unreadable": {}}
    values = dataset.latent.sel(image_id=IDS[3:6]).values
    assert np.array_equal(values[1:], expected[:2].astype(np.float32))
    assert np.array_equal(values[0], taef2_latents_64[3].astype(np.float32))
    with pytest.raises(CorruptDataError, match="Open the view again"):  # never NaN passed off as latents
        view.latent.values  # noqa: B018
    assert np.array_equal(view.latent[:4].values.view(np.uint16), taef2_latents_64[:4].view(np.uint16))


def test_a_write_whose_shards_a_vacuum_took_commits_nothing(store: LatentStore, path: Path, taef2_latents_64,
                                                            monkeypatch: pytest.MonkeyPatch):
    other = LatentStore.open(path, mode="a")
    sync = store._backend.sync

    def sync_then_vacuum(keys):  # the put has written its rows and not committed them yet
        sync(keys)
        if any("/c/" in k for k in keys):
            assert other.vacuum(grace=0).deleted_shards == 1
    monkeypatch.setattr(store._backend, "sync", sync_then_vacuum)
    with pytest.raises(WriteConflictError, match="nothing was committed"):
        store.put(["new"], taef2_latents_64[:1], model="taef2")
    assert "new" not in LatentStore.open(path)
    monkeypatch.setattr(store._backend, "sync", sync)
    store.put(["new"], taef2_latents_64[:1], model="taef2")  # the retry lands
    assert store.verify()["ok"] == 9


def test_rows_of_a_write_that_died_are_reclaimed(store: LatentStore, path: Path, taef2_latents_64,
                                                 monkeypatch: pytest.MonkeyPatch):
    def die(self, table, **kw):
        raise KeyboardInterrupt  # the process is interrupted between the data write and the commit
    monkeypatch.setattr(IdIndex, "commit", die)
    with pytest.raises(KeyboardInterrupt):
        store.put(["lost"], taef2_latents_64[:1], model="taef2")
    monkeypatch.undo()
    assert shard_files(path, LOSSLESS) == ["0/0/0/0", "1/0/0/0", "2/0/0/0"]
    report = LatentStore.open(path, mode="a").vacuum(grace=0)
    assert report.deleted_shards == 1 and report.relocated_ids == 0
    assert shard_files(path, LOSSLESS) == ["0/0/0/0", "1/0/0/0"]
    assert store.verify()["ok"] == 8


def test_a_damaged_shard_index_is_reported_and_never_deleted(store: LatentStore, path: Path, taef2_latents_64):
    store.rewrite(IDS[4:], taef2_latents_64[4:], precision="q8")
    shard = path / "arrays" / LOSSLESS / "c" / "1" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = store.vacuum(grace=0)
    assert report.unreadable == [f"arrays/{LOSSLESS}/c/1/0/0/0"] and report.deleted_shards == 0
    assert shard.exists()


def test_the_first_move_raises_the_format_version(path: Path, taef2_latents_64):
    store = LatentStore.create(path, shard_images=4)
    group = zarr.open_group(str(path), mode="r+")
    group.attrs["latentzarr"] = {**group.attrs["latentzarr"], "format_version": 1}  # a store of the old format
    store = LatentStore.open(path, mode="a")
    store.put(IDS[:2], taef2_latents_64[:2], model="taef2")
    assert zarr.open_group(str(path), mode="r").attrs["latentzarr"]["format_version"] == 1  # puts keep it
    store.rewrite(IDS[:1], taef2_latents_64[:1], precision="q8")
    assert zarr.open_group(str(path), mode="r").attrs["latentzarr"]["format_version"] == 2
    assert LatentStore.open(path).record("p0")["precision"] == "q8"


@pytest.mark.parametrize("kw", [{"grace": -1}, {"grace": "1h"}, {"compact_at": 0}, {"compact_at": 1.5}])
def test_bad_arguments_are_refused(store: LatentStore, kw):
    with pytest.raises(ValueError, match="Expected"):
        store.vacuum(**kw)


def test_a_read_only_store_cannot_vacuum(store: LatentStore, path: Path):
    with pytest.raises(PermissionError, match="mode='a'"):
        LatentStore.open(path).vacuum(grace=0)


class PutRewriteVacuum(RuleBasedStateMachine):
    """Random puts, rewrites (lossless <-> q8 <-> step) and vacuums: every committed id always reads back the exact
    chunk it was last given from the writer, and one it was given at some point (never an error, never other bytes)
    from a reader that only refreshes when a read finds its rows gone."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.path = Path(self.tmp.name) / "s.zarr"
        self.store = LatentStore.create(self.path, shard_images=3)
        self.reader = LatentStore.open(self.path)
        self.rng = np.random.default_rng(0)
        self.expected: dict[str, bytes] = {}  # id -> its stored chunk
        self.history: dict[str, set[bytes]] = {}  # id -> every chunk it had
        self.n = 0

    def teardown(self) -> None:
        self.tmp.cleanup()

    @rule(k=st.integers(1, 5))
    def put(self, k: int) -> None:
        ids = [f"i{self.n + j}" for j in range(k)]
        self.n += k
        self.store.put(ids, self.rng.standard_normal((k, 2, 4, 4)).astype(np.float16), model="m")
        self.record(ids)

    def record(self, ids: list[str]) -> None:
        for i in ids:
            self.expected[i] = self.store.get_encoded(i).data
            self.history.setdefault(i, set()).add(self.expected[i])

    @rule(data=st.data(), mode=st.sampled_from(["lossless", "q8", "step:0.1"]))
    def rewrite(self, data: st.DataObject, mode: str) -> None:
        if not self.expected:
            return
        ids = data.draw(st.lists(st.sampled_from(sorted(self.expected)), min_size=1, max_size=6, unique=True))
        self.store.rewrite(ids, self.store.get_many(ids), precision=mode)
        self.record(ids)

    @rule(compact_at=st.sampled_from([0.01, 0.5, 1.0]))
    def vacuum(self, compact_at: float) -> None:
        self.store.vacuum(grace=0, compact_at=compact_at)

    @invariant()
    def every_id_reads_back_its_chunk(self) -> None:
        assert {i: self.store.get_encoded(i).data for i in self.expected} == self.expected
        for i in self.expected:
            assert self.reader.get_encoded(i).data in self.history[i]


PutRewriteVacuum.TestCase.settings = settings(max_examples=15, stateful_step_count=12, deadline=None,
                                              suppress_health_check=[HealthCheck.too_slow])
test_put_rewrite_vacuum = PutRewriteVacuum.TestCase


def test_moved_since_lists_ids_that_rewrites_and_compaction_moved(store: LatentStore, path: Path, taef2_latents_64):
    reader = LatentStore.open(path)
    v0 = reader.version
    store.rewrite(["p5", "p1", "p2"], taef2_latents_64[[5, 1, 2]], precision="q8")
    v1 = store.version
    store.vacuum(grace=0, compact_at=0.4)  # shard 0 is half garbage: p0 and p3 are copied out
    reader.refresh()
    assert reader.moved_since(v0) == ["p5", "p1", "p2", "p0", "p3"]  # copies go in row order
    assert reader.moved_since(v1) == ["p0", "p3"]
    assert reader.moved_since(reader.version) == []


def test_small_puts_are_packed_into_full_shards(tmp_path: Path, taef2_latents_64):
    path = tmp_path / "s.zarr"
    store = LatentStore.create(path, shard_images=8)
    ids = [f"s{i}" for i in range(12)]
    for i, image_id in enumerate(ids):  # one image per put, as a service storing each picture as it is made
        store.put([image_id], taef2_latents_64[i % 8][None], model="taef2")
    assert len(shard_files(path, LOSSLESS)) == 12
    before = stored(store)
    report = store.vacuum(grace=0)
    assert (report.compacted_shards, report.relocated_ids, report.deleted_shards) == (12, 12, 12)
    assert shard_files(path, LOSSLESS) == ["12/0/0/0", "13/0/0/0"]  # 8 + 4 rows
    assert stored(store) == before and store.verify()["ok"] == 12
    again = store.vacuum(grace=0)  # one half-full shard left: packing it alone would gain nothing
    assert (again.compacted_shards, again.deleted_shards) == (0, 0)
    # lifecycle-style rewrites of 2 ids each reserve a shard apiece: packed too
    for k in range(0, 8, 2):
        store.rewrite(ids[k:k + 2], store.get(ids[k:k + 2]), precision="q8")
    assert len(shard_files(path, "taef2-32x8x8-float16-q8")) == 4
    store.vacuum(grace=0)
    assert shard_files(path, "taef2-32x8x8-float16-q8") == ["4/0/0/0"]
    assert shard_files(path, LOSSLESS) == ["13/0/0/0"]  # shard 12 all moved to q8: deleted
    assert store.verify()["ok"] == 12
