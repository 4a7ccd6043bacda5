"""Space reclamation: delete the shard objects no committed id points to, after a grace period; compact first.

Rows become garbage when ids move to new rows (the lifecycle's :meth:`LatentStore.rewrite`) and when a write dies
before its commit. :func:`vacuum` only ever deletes a shard object whole, and only when

1. no id of the index points into it, checked again under the writer lock right before the delete (every commit
   is made under that lock, so none can land in between);
2. a vacuum first saw it garbage at least ``grace`` seconds ago (the marks in ``<root>/vacuum.json``), and it was
   last written at least ``grace`` seconds ago (rows of a write still in flight are not committed yet).

Readers by id need no grace period: a read that finds its rows gone refreshes the index and reads where the id
lives now. The grace period protects views that captured rows (:meth:`LatentStore.to_xarray`) and writes in flight;
a write whose shards were taken anyway fails at its commit with :class:`~latentzarr.errors.WriteConflictError`,
committing nothing.

*Compaction.* A shard that still holds committed rows but whose chunk bytes are partly garbage (at least
``compact_at`` of them), and shards at most half full (small puts, lifecycle batches) when packing them together
needs fewer shards, have their live chunks copied as they are (no decode, no re-encode, so any precision mode stays
bit-exact) into fresh shards of the same array; the copies are read back through Zarr and checked against the index
digests, then ONE move commit per batch re-points the ids (an id that moved meanwhile keeps its row). The old
shards are then garbage like any other.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from latentzarr.errors import CorruptDataError
from latentzarr.store.arrays import ArrayMeta, read_rows
from latentzarr.store.chunks import encode_shard, read_shard_index, shard_index, written_rows
from latentzarr.store.layout import latent_digest, to_storage

if TYPE_CHECKING:
    from latentzarr.store.core import LatentStore

__all__ = ["DEFAULT_COMPACT_AT", "DEFAULT_GRACE_S", "MARKS_KEY", "ShardUsage", "VacuumReport", "scan_shards", "vacuum"]

DEFAULT_GRACE_S = 3600.0
"""Seconds a shard must have been garbage (and unwritten) before it is deleted: longer than any write takes and
than a captured-row view (:meth:`LatentStore.to_xarray`) is expected to live."""

DEFAULT_COMPACT_AT = 0.25
"""Compact a shard holding committed rows once at least this share of its chunk bytes is garbage: after a vacuum no
shard holds more than 1 / (1 - 0.25) = 1.33x its live bytes, and a compaction copies at most 3 bytes per byte it
frees (copies need no decode). Measured (``workflows/reclaim.py``, 256 objects at 256 px): 0.5 left 2 of the 4
partly demoted shards alone, the store at 0.924x lossless instead of 0.690x."""

MARKS_KEY = "vacuum.json"
"""``{"version": 1, "marks": {shard key: unix time a vacuum first saw it garbage}}``, written under the lock."""

_LOCKED_BATCH = 128
"""Shards checked and deleted per hold of the writer lock (a lease on object stores must stay well under its
120 s: up to 4 requests per shard)."""

_COPY_SHARDS = 16
"""Shards' worth of live rows one compaction step copies (one reservation, one check, one move commit)."""


@dataclass(frozen=True)
class ShardUsage:
    """What one shard object holds (sizes in bytes, chunk payloads only)."""

    array: str
    shard: int
    key: str
    live_rows: int
    """Rows an id of the index points to."""
    garbage_rows: int
    """Rows written but pointed to by no id."""
    live_bytes: int
    garbage_bytes: int

    @property
    def garbage_share(self) -> float:
        """``garbage_bytes / (live_bytes + garbage_bytes)`` (0 for a shard without chunks)."""
        total = self.live_bytes + self.garbage_bytes
        return self.garbage_bytes / total if total else 0.0


@dataclass
class VacuumReport:
    """What :func:`vacuum` did, or in a dry run would do now (sizes in bytes, object sizes as stored)."""

    dry_run: bool
    grace_s: float
    compact_at: float
    shards: int = 0
    """Shard objects scanned."""
    stored_bytes_before: int = 0
    stored_bytes_after: int = 0
    compacted_shards: int = 0
    relocated_ids: int = 0
    relocated_bytes: int = 0
    """Chunk bytes copied by compaction."""
    deleted_shards: int = 0
    reclaimed_bytes: int = 0
    waiting_shards: int = 0
    """Garbage shards inside their grace period (a later vacuum deletes them)."""
    waiting_bytes: int = 0
    unreadable: list[str] = field(default_factory=list)
    """Shard keys whose index failed its checksum: never touched (run ``verify``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


# --------------------------------------------------------------------------------------------- scanning
def _live_rows(store: LatentStore) -> dict[str, np.ndarray]:
    """Per array name, the sorted rows committed ids point to (from the index as loaded)."""
    return {name: store._index.array_members(name)[1] for name in store._meta}


def _shard_numbers(store: LatentStore, meta: ArrayMeta) -> list[int]:
    return sorted(int(n) for n in store._backend.listdir(f"{meta.path}/c") if n.isdigit())


def _usage(store: LatentStore, meta: ArrayMeta, shard: int, live: np.ndarray) -> ShardUsage | str:
    """The usage of one shard, or its key when its index is damaged."""
    key = meta.shard_key(shard)
    try:
        index = store._read(f"the index of shard {key!r}", read_shard_index, store._backend.zarr_store, meta, shard)
    except CorruptDataError:
        return key
    if index is None:  # deleted since it was listed
        return ShardUsage(meta.name, shard, key, 0, 0, 0, 0)
    s = meta.shard_images
    is_live = np.zeros(s, dtype=bool)
    lo, hi = np.searchsorted(live, [shard * s, (shard + 1) * s])  # live rows are sorted: no pass over all of them
    is_live[live[lo:hi] - shard * s] = True
    written = written_rows(index)
    nbytes = np.where(written, index[:, 1], 0).astype(np.int64)
    return ShardUsage(meta.name, shard, key, int(is_live.sum()), int((written & ~is_live).sum()),
                      int(nbytes[is_live].sum()), int(nbytes[~is_live].sum()))


def scan_shards(store: LatentStore, *, threads: int = 8) -> tuple[list[ShardUsage], list[str]]:
    """Usage of every shard object of ``store`` (one ranged read of each shard's index, ``threads`` at a time),
    and the keys of shards whose index is damaged."""
    store.refresh()
    live = _live_rows(store)
    jobs = [(store._meta[name], k, live[name]) for name in sorted(store._meta)
            for k in _shard_numbers(store, store._meta[name])]
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda job: _usage(store, *job), jobs))
    return ([r for r in results if isinstance(r, ShardUsage)], [r for r in results if isinstance(r, str)])


# --------------------------------------------------------------------------------------------- compaction
def _to_compact(usage: list[ShardUsage], compact_at: float, shard_images: dict[str, int]) -> list[ShardUsage]:
    """The shards whose live rows are copied out: those at least ``compact_at`` garbage, and those at most half
    full (small puts, lifecycle batches) when packing them together needs fewer shards than they are now."""
    picked = [u for u in usage if u.live_rows and u.garbage_bytes and u.garbage_share >= compact_at]
    keys = {u.key for u in picked}
    sparse: dict[str, list[ShardUsage]] = {}
    for u in usage:
        if u.live_rows and u.key not in keys and 2 * (u.live_rows + u.garbage_rows) <= shard_images[u.array]:
            sparse.setdefault(u.array, []).append(u)
    for name, group in sparse.items():
        if math.ceil(sum(u.live_rows for u in group) / shard_images[name]) < len(group):
            picked += group
    return sorted(picked, key=lambda u: (u.array, u.shard))


def _copy_batches(shards: list[ShardUsage], metas: dict[str, ArrayMeta]) -> Iterable[list[ShardUsage]]:
    """``shards`` (sorted by array) in runs of one array with at most ``_COPY_SHARDS`` shards' worth of live rows:
    each run is one reservation, one check and one move commit."""
    run: list[ShardUsage] = []
    rows = 0
    for u in shards:
        if run and (run[0].array != u.array or rows + u.live_rows > _COPY_SHARDS * metas[u.array].shard_images):
            yield run
            run, rows = [], 0
        run.append(u)
        rows += u.live_rows
    if run:
        yield run


def _relocate(store: LatentStore, meta: ArrayMeta, shards: list[int]) -> tuple[int, int]:
    """Copy the live chunks of ``shards`` of ``meta`` into fresh shards, check them, move the ids; return
    (ids moved, chunk bytes copied)."""
    s = meta.shard_images
    positions, rows = store._index.array_members(meta.name)
    picked = np.isin(rows // s, np.asarray(shards, dtype=np.int64))
    positions, rows = positions[picked], rows[picked]
    if not len(rows):
        return 0, 0
    chunks: list[bytes] = []
    keep: list[int] = []
    for shard in np.unique(rows // s):
        key = meta.shard_key(int(shard))
        data = store._read(f"shard {key!r}", store._backend.read, key)
        index = shard_index(data, meta, int(shard))
        written = written_rows(index)
        for i in np.flatnonzero(rows // s == shard):
            inner = int(rows[i]) - int(shard) * s
            if written[inner]:  # a missing chunk stays where it is, for verify to report
                offset, nbytes = (int(v) for v in index[inner])
                chunks.append(data[offset:offset + nbytes])
                keep.append(int(i))
    if not keep:
        return 0, 0
    positions, rows = positions[keep], rows[keep]
    n = len(chunks)
    _meta, _writer, start = store._reserve(lambda: meta, n)
    for j in range(0, n, s):
        part: list[bytes | None] = list(chunks[j:j + s])
        store._backend.write(meta.shard_key(start // s + j // s), encode_shard(part + [None] * (s - len(part))))
    ids = store._index.ids_at(positions)
    digests = [bytes.fromhex(store._index.latent_digest(int(p))) for p in positions]
    handle = store._handle(meta.name, start + n)
    back = store._read(f"the compacted rows of {meta.name!r}", read_rows, handle, meta,
                       np.arange(start, start + n), ids)
    bad = [i for i, b, d in zip(ids, back, digests, strict=True)
           if latent_digest(to_storage(b, meta.dtype)) != d]
    if bad:
        raise CorruptDataError(f"Expected the copied chunks of {bad[:5]!r} (array {meta.name!r}, rows from {start}) to "
                               "read back as stored. Got other values instead; nothing was committed, the ids keep "
                               "their rows. Report this as a bug.")
    records = [store._index.row_record(int(p)) for p in positions]
    moved = store._commit_move(ids, {i: (meta.name, int(r)) for i, r in zip(ids, rows, strict=True)}, meta, start,
                               digests, [r["pixel_sha256"] for r in records], [r["decoder_setup"] for r in records])
    return len(moved), sum(len(c) for c in chunks)


# --------------------------------------------------------------------------------------------- sweeping
def _load_marks(store: LatentStore) -> dict[str, float]:
    try:
        doc = json.loads(store._backend.read(MARKS_KEY))
    except (FileNotFoundError, ValueError):  # none yet, or damaged: that only delays deletion by one grace period
        return {}
    return {str(k): float(v) for k, v in dict(doc.get("marks", {})).items()}


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for lo in range(0, len(items), size):
        yield items[lo:lo + size]


def _sweep(store: LatentStore, candidates: list[tuple[ArrayMeta, int]], grace: float, now: float, dry_run: bool,
           report: VacuumReport, assume_dead: frozenset[str] = frozenset()) -> None:
    """Delete the garbage shards among ``candidates`` whose grace period is over; mark the others. A dry run
    deletes and marks nothing, and counts the shards in ``assume_dead`` (those compaction would empty) as garbage."""
    marks = _load_marks(store)
    seen: dict[str, float] = {}
    live: tuple[int, dict[str, set[int]]] = (-2, {})  # (index version, shards that ids point into, per array)
    for batch in _batches(candidates, _LOCKED_BATCH):
        with store._lock, store._mutex:
            store._index.refresh()  # under the lock: no commit lands until the deletes below are done
            if live[0] != store.version:
                live = (store.version, {name: set((rows // store._meta[name].shard_images).tolist())
                                        for name, rows in _live_rows(store).items()})
            for meta, shard in batch:
                key = meta.shard_key(shard)
                used = key not in assume_dead and shard in live[1].get(meta.name, ())
                if used or not store._backend.exists(key):
                    continue
                first = seen[key] = marks.get(key, now)
                size = store._backend.size(key)
                if now - first >= grace and store._backend.modified_age(key) >= grace:
                    if not dry_run:
                        store._backend.delete(key)
                        store._backend.prune_empty(key, stop=f"{meta.path}/c")
                    report.deleted_shards += 1
                    report.reclaimed_bytes += size
                    seen.pop(key)
                else:
                    report.waiting_shards += 1
                    report.waiting_bytes += size
    if not dry_run:  # the marks of shards no longer garbage (or gone) are dropped; losing them only delays deletion
        with store._lock:
            store._backend.write(MARKS_KEY, json.dumps({"version": 1, "marks": seen}, sort_keys=True).encode())


def _stored_bytes(store: LatentStore) -> int:
    return sum(store._backend.size(meta.path) for meta in store._meta.values())


def vacuum(store: LatentStore, *, grace: float = DEFAULT_GRACE_S, compact_at: float = DEFAULT_COMPACT_AT,
           dry_run: bool = False, progress: Callable[[str], None] | None = None) -> VacuumReport:
    """Reclaim the space of rows no id points to; see the module docstring. :meth:`LatentStore.vacuum` calls it."""
    store._require_writable()
    if not (isinstance(grace, int | float) and grace >= 0):
        raise ValueError(f"Expected grace >= 0 (seconds). Got {grace!r} instead.")
    if not (isinstance(compact_at, int | float) and 0 < compact_at <= 1):
        raise ValueError(f"Expected 0 < compact_at <= 1 (a share of a shard's bytes). Got {compact_at!r} instead.")
    say = progress or (lambda _msg: None)
    report = VacuumReport(dry_run=dry_run, grace_s=float(grace), compact_at=float(compact_at))
    usage, report.unreadable = scan_shards(store)
    report.shards = len(usage) + len(report.unreadable)
    report.stored_bytes_before = _stored_bytes(store)
    say(f"scanned {report.shards} shards")
    compact = _to_compact(usage, compact_at, {name: m.shard_images for name, m in store._meta.items()})
    report.compacted_shards = len(compact)
    if dry_run:
        report.relocated_ids = sum(u.live_rows for u in compact)
        report.relocated_bytes = sum(u.live_bytes for u in compact)
    else:
        for part in _copy_batches(compact, store._meta):
            meta = store._meta[part[0].array]
            moved, copied = _relocate(store, meta, [u.shard for u in part])
            report.relocated_ids += moved
            report.relocated_bytes += copied
            say(f"compacted {len(part)} shards of {meta.name}: {moved} ids moved")
    garbage = [(store._meta[u.array], u.shard) for u in usage if not u.live_rows]
    garbage += [(store._meta[u.array], u.shard) for u in compact]
    _sweep(store, garbage, float(grace), time.time(), dry_run, report,  # after compaction: its shards are new garbage
           frozenset(u.key for u in compact) if dry_run else frozenset())
    report.stored_bytes_after = _stored_bytes(store)
    say(f"{'would delete' if dry_run else 'deleted'} {report.deleted_shards} shards ({report.reclaimed_bytes} bytes); "
        f"{report.waiting_shards} waiting")
    return report
