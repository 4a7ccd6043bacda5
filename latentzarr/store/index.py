"""The id index: append-only parquet commit files mapping image id -> (array, row) plus digests.

Each successful ``put`` writes one immutable file ``index/<seq:010d>.parquet`` (atomically, exclusively) after
its latents are written; an id exists exactly when a commit file names it. Readers load commit files
incrementally (they remember the last seq read), so a put that died before its commit is never visible.
A checkpoint ``index/checkpoint-<seq:010d>.parquet`` merges commits 0..seq; readers start from the newest one,
named by the hint ``index/latest-checkpoint``. The hint only moves forward (it is written under the writer lock, and
only when it names an older checkpoint).

Compaction (:meth:`IdIndex.reclaim`) deletes the commit files a checkpoint replaced and the older checkpoints, once
the checkpoint named by the hint is ``grace`` seconds old; only files at or below the hint's seq are ever deleted.
So a reader whose probe of ``<last_seq + 1>`` finds nothing reads the hint: when it names a checkpoint past
``last_seq``, the commits in between may be gone, and the reader merges that checkpoint (new ids are added, ids
whose location changed are applied as a move at the checkpoint's seq) and carries on probing after it. Otherwise
nothing newer exists. Writers refresh under the lock before they commit, so no seq is ever taken twice.

A *move* commit (parquet schema metadata ``latentzarr.kind = move``, written only by
:meth:`LatentStore.rewrite`, e.g. by the lifecycle policy) re-points ids that are already committed to a new
(array, row, digest): the id keeps its position and ``created``; ``pixel_sha256`` and ``decoder_setup`` come from the
move. Like any commit it lands whole or not at all, so a reader sees the old location or the new one, never
neither. A store's first move raises its format version to 2, so readers that predate moves (which would ignore
them and read the old row, reclaimed by :meth:`LatentStore.vacuum` at some point) refuse it.

In memory the index is a dict id -> position plus growable numpy columns (array code, row, digest) and the
optional columns as arrow tables, so a lookup costs one dict access. Measured: 1e6 ids load from a checkpoint
in about 2 s and take about 250 MB (mostly the Python dict and id strings).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from latentzarr.store.backend import Backend
from latentzarr.store.layout import INDEX_DIR

__all__ = ["INDEX_SCHEMA", "MOVE", "IdIndex", "commit_table"]

INDEX_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("array", pa.string(), nullable=False),
    pa.field("row", pa.int64(), nullable=False),
    pa.field("latent_sha256", pa.binary(32), nullable=False),
    pa.field("pixel_sha256", pa.string()),
    pa.field("decoder_setup", pa.string()),
    pa.field("source_bytes", pa.int64()),
    pa.field("created", pa.timestamp("us", tz="UTC"), nullable=False),
])
"""Columns of every commit and checkpoint file (``latent_sha256``: the 32 raw digest bytes)."""

_EXTRA = ["pixel_sha256", "decoder_setup", "source_bytes", "created"]
"""Columns kept in memory as arrow tables (the others live in numpy columns and the id dict)."""

_HINT = f"{INDEX_DIR}/latest-checkpoint"
"""Text file holding the seq of the newest checkpoint: where a fresh reader starts (a hint, never required)."""


MOVE = "move"
"""Kind of a commit that re-points committed ids (see the module docstring)."""
_KIND_KEY = b"latentzarr.kind"


def commit_table(columns: dict[str, Sequence[Any] | pa.Array]) -> pa.Table:
    """A commit table with :data:`INDEX_SCHEMA` from column lists (``latent_sha256``: 32-byte digests)."""
    return pa.Table.from_pydict({f.name: columns[f.name] for f in INDEX_SCHEMA}, schema=INDEX_SCHEMA)


def _to_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class _Column:
    """A growable 1-D numpy column (amortised O(1) append)."""

    def __init__(self, dtype: type | str) -> None:
        self._data = np.empty(1024, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        need = self.size + len(values)
        if need > len(self._data):
            grown = np.empty(max(need, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self.size] = self._data[: self.size]
            self._data = grown
        self._data[self.size:need] = values
        self.size = need

    @property
    def values(self) -> np.ndarray:
        return self._data[: self.size]


class IdIndex:
    """In-memory view of a store's id index, refreshed incrementally from its commit files.

    Parameters
    ----------
    backend
        Where the store lives.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.last_seq = -1
        """Highest commit seq loaded (-1: none)."""
        self.commits_since_checkpoint = 0
        self.bytes_since_checkpoint = 0
        """Bytes of the commit files loaded since the last checkpoint (or since the start)."""
        self.checkpoint_bytes = 0
        """Bytes of the last checkpoint loaded or written (0: none)."""
        self._pos: dict[str, int] = {}
        self._ids: list[str] = []
        self._codes = _Column(np.int32)
        self._rows = _Column(np.int64)
        self._digests = _Column("V32")
        self._array_names: list[str] = []
        self._array_codes: dict[str, int] = {}
        self._tables: list[pa.Table] = []
        self._offsets: list[int] = []
        self._moved: dict[int, dict[str, Any]] = {}  # position -> columns a move commit replaced
        self._move_log: list[tuple[int, list[str]]] = []  # (seq, ids re-pointed) of each move commit loaded

    # ----------------------------------------------------------------------------------------- loading
    def refresh(self) -> int:
        """Load commit files newer than the last one read; return how many ids were added.

        The first load starts from the checkpoint named by ``index/latest-checkpoint`` (a hint; absent: from
        seq 0), then every load probes ``<last_seq + 1>``, ``<last_seq + 2>``... until one is missing, so
        nothing is ever listed and a refresh costs one request when nothing is new. This relies on seqs being
        dense: each commit takes ``last_seq + 1`` under the writer lock with an exclusive create, and a commit
        file appears whole or not at all.
        """
        before = len(self._ids)
        if self.last_seq < 0:
            self._catch_up()  # start from the newest checkpoint
        while True:
            seq = self.last_seq + 1
            try:
                table, size = self._read(f"{seq:010d}.parquet")
            except FileNotFoundError:
                # The end of the log, or commits a checkpoint replaced were deleted (module docstring).
                if not self._catch_up():
                    break
                continue
            self._add(table, seq)
            self.last_seq = seq
            self.commits_since_checkpoint += 1
            self.bytes_since_checkpoint += size
        return len(self._ids) - before

    def _catch_up(self) -> bool:
        """Load the checkpoint the hint names if it is past ``last_seq``; return whether one was loaded."""
        for _ in range(20):  # the named checkpoint can itself be replaced and deleted meanwhile: read the hint again
            seq = self._latest_checkpoint()
            if seq is None or seq <= self.last_seq:
                return False
            try:
                table, size = self._read(f"checkpoint-{seq:010d}.parquet")
            except FileNotFoundError:
                continue
            if self.last_seq < 0:
                self._add(table)
            else:
                self._merge(table, seq)
            self.last_seq = seq
            self.commits_since_checkpoint = self.bytes_since_checkpoint = 0
            self.checkpoint_bytes = size
            return True
        raise FileNotFoundError(f"Expected the index checkpoint named by {_HINT!r} to exist. Got it deleted 20 times "
                                "in a row instead; is a compaction with grace 0 running in a loop?")

    def _merge(self, table: pa.Table, seq: int) -> None:
        """Bring a loaded index up to checkpoint ``seq`` whose commits were deleted: add the ids it lacks (in
        checkpoint order) and apply every location change as a move at ``seq`` (positions stay stable)."""
        ids = table.column("id").to_pylist()
        known = np.fromiter((i in self._pos for i in ids), dtype=bool, count=len(ids))
        if (~known).any():
            self._add(table.filter(pa.array(~known)))
        if not known.any():
            return
        old = table.filter(pa.array(known))
        positions = np.fromiter((self._pos[i] for i in old.column("id").to_pylist()), dtype=np.int64,
                                count=old.num_rows)
        names = np.asarray(self._array_names, dtype=object)
        was_array = names[self._codes.values[positions]]
        was_row = self._rows.values[positions]
        now_array = np.asarray(old.column("array").to_pylist(), dtype=object)
        now_row = old.column("row").to_numpy()
        changed = (was_array != now_array) | (was_row != now_row)
        if changed.any():
            self._move(old.filter(pa.array(changed)), seq)

    def _latest_checkpoint(self) -> int | None:
        """Seq of the checkpoint named by the hint file (None when there is none or it is unreadable)."""
        try:
            seq = int(self.backend.read(_HINT).decode())
        except (FileNotFoundError, ValueError):
            return None
        return seq if seq >= 0 else None

    def _read(self, name: str) -> tuple[pa.Table, int]:
        """The index file ``name`` as a table, and its size in bytes."""
        data = self.backend.read(f"{INDEX_DIR}/{name}")
        table = pq.read_table(io.BytesIO(data))
        kind = (table.schema.metadata or {}).get(_KIND_KEY)
        table = table.select(INDEX_SCHEMA.names).cast(INDEX_SCHEMA)
        return (table if kind is None else table.replace_schema_metadata({_KIND_KEY: kind})), len(data)

    def _add(self, table: pa.Table, seq: int = -1) -> None:
        if table.num_rows == 0:
            return
        if (table.schema.metadata or {}).get(_KIND_KEY) == MOVE.encode():
            self._move(table, seq)
            return
        ids = table.column("id").to_pylist()
        if not self._pos.keys().isdisjoint(ids):  # only after a broken lease: the first commit of an id wins
            keep = [i not in self._pos for i in ids]
            table = table.filter(pa.array(keep))
            ids = table.column("id").to_pylist()
            if not ids:
                return
        start = len(self._ids)
        self._pos.update(zip(ids, range(start, start + len(ids)), strict=True))
        self._ids.extend(ids)
        arrays = table.column("array").dictionary_encode().combine_chunks()
        codes = np.array([self._array_code(name) for name in arrays.dictionary.to_pylist()], dtype=np.int32)
        self._codes.extend(codes[arrays.indices.to_numpy()])
        self._rows.extend(table.column("row").to_numpy())
        digests = table.column("latent_sha256").combine_chunks()
        self._digests.extend(np.frombuffer(digests.buffers()[1], dtype="V32", count=len(digests),
                                           offset=32 * digests.offset))
        extra = table.select(_EXTRA).combine_chunks()
        setup = extra.column("decoder_setup").combine_chunks().dictionary_encode()  # one JSON per put
        self._tables.append(extra.set_column(1, "decoder_setup", setup))
        self._offsets.append(start)

    def _move(self, table: pa.Table, seq: int) -> None:
        """Apply move commit ``seq``: re-point ids already loaded (ids not loaded are ignored)."""
        rows = table.to_pylist()
        moved = []
        for rec in rows:
            pos = self._pos.get(rec["id"])
            if pos is None:
                continue
            moved.append(rec["id"])
            self._codes.values[pos] = self._array_code(rec["array"])
            self._rows.values[pos] = rec["row"]
            self._digests.values[pos] = np.frombuffer(rec["latent_sha256"], dtype="V32")[0]
            self._moved[pos] = {"pixel_sha256": rec["pixel_sha256"], "decoder_setup": rec["decoder_setup"],
                                "rewritten": rec["created"]}
        self._move_log.append((seq, moved))

    def moved_since(self, seq: int) -> list[str]:
        """Ids that move commits after commit ``seq`` re-pointed, as loaded (oldest first, repeats removed)."""
        newer = []
        for s, ids in reversed(self._move_log):  # seqs grow along the log: stop at the first old one
            if s <= seq:
                break
            newer.append(ids)
        return list(dict.fromkeys(i for ids in reversed(newer) for i in ids))

    def _array_code(self, name: str) -> int:
        code = self._array_codes.get(name)
        if code is None:
            code = self._array_codes[name] = len(self._array_names)
            self._array_names.append(name)
        return code

    # ----------------------------------------------------------------------------------------- writing
    def next_seq(self) -> int:
        """The seq of the next commit file (call after :meth:`refresh`, under the writer lock)."""
        return self.last_seq + 1

    def commit(self, table: pa.Table, *, kind: str | None = None) -> int:
        """Write ``table`` as the next commit file (exclusive create) and add it; return its seq.

        Call under the writer lock after :meth:`refresh`. Raises :class:`FileExistsError` if another writer
        took that seq (a broken lease); the caller refreshes and retries. ``kind=MOVE`` makes it a move commit.
        """
        if kind is not None:
            if kind != MOVE:
                raise ValueError(f"Expected kind None or {MOVE!r}. Got {kind!r} instead.")
            table = table.replace_schema_metadata({_KIND_KEY: MOVE.encode()})
        seq = self.next_seq()
        data = _to_bytes(table)
        self.backend.write(f"{INDEX_DIR}/{seq:010d}.parquet", data, exclusive=True)
        self._add(table, seq)
        self.last_seq = seq
        self.commits_since_checkpoint += 1
        self.bytes_since_checkpoint += len(data)
        return seq

    def checkpoint_due(self, every: int, growth: float, min_bytes: int) -> bool:
        """Whether a checkpoint is due: ``every`` commits since the last one, or commit bytes since then of at
        least ``growth`` x the last checkpoint's bytes and ``min_bytes`` (so rewriting the whole index stays
        amortised O(1) per id, and the index stays within (1 + growth) x its live size once compacted)."""
        if self.commits_since_checkpoint >= every:
            return True
        return self.bytes_since_checkpoint >= max(min_bytes, growth * self.checkpoint_bytes)

    def checkpoint(self) -> int | None:
        """Write ``checkpoint-<last_seq>.parquet`` merging everything loaded; return its seq (None if empty).

        Then call :meth:`advance_hint` with that seq under the writer lock (not under a lock that a committer
        takes after the writer lock).
        """
        if self.last_seq < 0 or not self._tables:
            return None
        data = _to_bytes(self._merged())
        with contextlib.suppress(FileExistsError):  # someone else checkpointed the same state
            self.backend.write(f"{INDEX_DIR}/checkpoint-{self.last_seq:010d}.parquet", data, exclusive=True)
        self.commits_since_checkpoint = self.bytes_since_checkpoint = 0
        self.checkpoint_bytes = len(data)
        return self.last_seq

    def advance_hint(self, seq: int) -> None:
        """Point the hint at checkpoint ``seq`` unless it names a newer one (call under the writer lock, so the
        hint only moves forward)."""
        latest = self._latest_checkpoint()
        if latest is None or latest < seq:
            self.backend.write(_HINT, str(seq).encode())

    def reclaim(self, grace: float) -> dict[str, int]:
        """Delete index files the hint's checkpoint replaced (commits at or below its seq, older checkpoints) once
        that checkpoint is ``grace`` seconds old; return ``{"deleted_files", "deleted_bytes"}``.

        Safe with concurrent readers and writers without the lock: the hint only moves forward, and readers that
        find a commit missing catch up from the hint (module docstring); ``grace`` protects reads in flight.
        """
        seq = self._latest_checkpoint()
        out = {"deleted_files": 0, "deleted_bytes": 0}
        if seq is None:
            return out
        name = f"checkpoint-{seq:010d}.parquet"
        try:
            if self.backend.modified_age(f"{INDEX_DIR}/{name}") < grace:
                return out
        except FileNotFoundError:
            return out
        for entry in self.backend.listdir(INDEX_DIR):
            stem = entry.removesuffix(".parquet")
            if stem == entry:
                continue
            number = stem.removeprefix("checkpoint-")
            if not number.isdigit():
                continue
            old = int(number) < seq if stem.startswith("checkpoint-") else int(number) <= seq
            if old:
                key = f"{INDEX_DIR}/{entry}"
                with contextlib.suppress(FileNotFoundError):  # another compaction took it
                    size = self.backend.size(key)
                    self.backend.delete(key)
                    out["deleted_files"] += 1
                    out["deleted_bytes"] += size
        return out

    def live_bytes(self) -> int:
        """Bytes one checkpoint of everything loaded takes (the size of a fully compacted index)."""
        return len(_to_bytes(self._merged())) if self._tables else 0

    def _merged(self) -> pa.Table:
        """Everything loaded as one table with :data:`INDEX_SCHEMA`."""
        n = len(self._ids)
        names = pa.array(self._array_names, pa.string())
        arrays = pa.DictionaryArray.from_arrays(pa.array(self._codes.values), names).cast(pa.string())
        digests = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(32), n, [None, pa.py_buffer(self._digests.values.tobytes())]
        )
        extra = pa.concat_tables([t.set_column(1, "decoder_setup", t.column("decoder_setup").cast(pa.string()))
                                  for t in self._tables]).combine_chunks()
        if self._moved:  # columns replaced by move commits
            for i, column in enumerate(("pixel_sha256", "decoder_setup")):
                values = extra.column(column).to_pylist()
                for pos, override in self._moved.items():
                    values[pos] = override[column]
                extra = extra.set_column(i, column, pa.array(values, pa.string()))
        columns = {"id": pa.array(self._ids, pa.string()), "array": arrays, "row": pa.array(self._rows.values),
                   "latent_sha256": digests, **{c: extra.column(c) for c in _EXTRA}}
        return pa.Table.from_pydict(columns, schema=INDEX_SCHEMA)

    # ----------------------------------------------------------------------------------------- lookups
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._pos

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids))

    def position(self, image_id: str) -> int | None:
        """Position of ``image_id`` in load order, or None when absent."""
        return self._pos.get(image_id)

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(array codes, rows) of index positions."""
        return self._codes.values[positions], self._rows.values[positions]

    def array_name(self, code: int) -> str:
        """Array name of an array code."""
        return self._array_names[code]

    def array_counts(self) -> dict[str, int]:
        """Committed images per array name."""
        counts = np.bincount(self._codes.values, minlength=len(self._array_names))
        return {name: int(counts[i]) for i, name in enumerate(self._array_names)}

    def array_members(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(positions, rows) of every id in array ``name``, in row order."""
        code = self._array_codes.get(name)
        if code is None:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        positions = np.flatnonzero(self._codes.values == code)
        rows = self._rows.values[positions]
        order = np.argsort(rows, kind="stable")
        return positions[order], rows[order]

    def ids_at(self, positions: np.ndarray) -> list[str]:
        """Ids at index positions."""
        return [self._ids[int(p)] for p in positions]

    def latent_digest(self, position: int) -> str:
        """SHA-256 hex of the stored bits of the id at ``position``."""
        return self._digests.values[position].tobytes().hex()

    def row_record(self, position: int) -> dict[str, Any]:
        """Every index column of the id at ``position`` (``latent_sha256`` as hex)."""
        t = int(np.searchsorted(self._offsets, position, side="right")) - 1
        table = self._tables[t]
        local = position - self._offsets[t]
        rec: dict[str, Any] = {"id": self._ids[position], "array": self._array_names[self._codes.values[position]],
                               "row": int(self._rows.values[position]),
                               "latent_sha256": self.latent_digest(position)}
        rec.update({name: table.column(name)[local].as_py() for name in _EXTRA})
        rec.update(self._moved.get(position, {}))
        return rec

    def catalog(self) -> dict[str, np.ndarray]:
        """Every id's ``id``, ``array``, ``row`` and ``created`` (UTC, datetime64[us]), in position order.

        One pass over the in-memory columns (no per-id lookups); moves are applied.
        """
        n = len(self._ids)
        names = np.asarray(self._array_names, dtype=object)
        codes = self._codes.values[:n]
        created = [t.column("created").cast(pa.int64()).to_numpy() for t in self._tables]
        return {
            "id": np.asarray(self._ids, dtype=object),
            "array": names[codes] if n else np.empty(0, dtype=object),
            "row": np.asarray(self._rows.values[:n], dtype=np.int64),
            "created": (np.concatenate(created) if created else np.empty(0, np.int64)).astype("datetime64[us]"),
        }

    def column_sum(self, name: str, column: str) -> tuple[int, int]:
        """(sum, count of non-null) of integer ``column`` over the ids of array ``name``."""
        code = self._array_codes.get(name)
        total = count = 0
        if code is None:
            return total, count
        codes = self._codes.values
        for table, start in zip(self._tables, self._offsets, strict=True):
            mask = pa.array(codes[start: start + table.num_rows] == code)
            values = table.column(column).filter(mask)
            count += len(values) - values.null_count
            total += pc.sum(values).as_py() or 0
        return total, count
