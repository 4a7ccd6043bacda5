"""LatentStore: image id -> latent, bit-exact, in a Zarr v3 group; safe with many writers and against crashes.

Write protocol of :meth:`LatentStore.put` (append-only, put-aligned shards):

1. validate everything (ids, dtype, shape, NaN/Inf, model attributes) and reject ids already committed;
2. under the writer lock: resolve (or create) the array, then *reserve* whole fresh shards by growing the array
   (rows ``[start, start + ceil(N / S) * S)``; ``start`` is always a multiple of the shard size ``S``);
3. without the lock: write the latents into those rows; no other put ever touches these shard objects, and no
   shard holding committed data is ever rewritten (Zarr writes a partial shard by read-modify-write);
4. under the writer lock: re-check that no id was committed meanwhile (:class:`DuplicateIdError`), then write
   one index commit file (atomic, exclusive). Only now are the ids visible.

A crash before step 4 leaves orphaned rows that no id points to; rows are never reused. A failing call changes
nothing that was committed. :meth:`LatentStore.rewrite` moves committed ids to new rows; :meth:`LatentStore.vacuum`
deletes shards no id points into (after a grace period) and first copies the live rows out of partly garbage or
half-empty ones, and step 4 checks that the shards it commits still exist (:class:`WriteConflictError` otherwise).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import zarr

from latentzarr.errors import (
    CorruptDataError,
    DuplicateIdError,
    InvalidIdError,
    InvalidLatentError,
    MixedArraysError,
    NotALatentStoreError,
    UnknownIdError,
    UnsupportedFormatError,
    WriteConflictError,
)
from latentzarr.ids import validate_id, validate_ids
from latentzarr.store.arrays import (
    LOSSLESS,
    ArrayMeta,
    create_latent_array,
    list_arrays,
    open_latent_array,
    read_rows,
)
from latentzarr.store.backend import Backend
from latentzarr.store.index import MOVE, IdIndex, commit_table
from latentzarr.store.layout import (
    ARRAYS_GROUP,
    FORMAT_VERSION,
    INDEX_DIR,
    array_name,
    latent_digest,
    to_logical,
    to_storage,
)
from latentzarr.store.locking import DEFAULT_TIMEOUT, make_lock
from latentzarr.store.retry import with_retries
from latentzarr.store.vacuum import DEFAULT_COMPACT_AT, DEFAULT_GRACE_S, VacuumReport, vacuum
from latentzarr.store.validation import (
    check_finite,
    coerce_latents,
    decoder_setup_json,
    normalise_model_attrs,
    per_id,
    validate_model,
)

if TYPE_CHECKING:
    import xarray as xr

    from latentzarr.precision.modes import PrecisionMode
    from latentzarr.store.chunks import EncodedLatent
    from latentzarr.store.faults import FaultInjector
    from latentzarr.store.group import GroupWriter

T = TypeVar("T")

__all__ = ["CHECKPOINT_EVERY", "CHECKPOINT_GROWTH", "CHECKPOINT_MIN_BYTES", "DEFAULT_SHARD_IMAGES", "LatentStore",
           "MixedArraysError"]

DEFAULT_SHARD_IMAGES = 64
"""Images per shard object of a new store."""

CHECKPOINT_EVERY = 1024
"""A put writes an index checkpoint once this many commit files have accumulated since the last one..."""

CHECKPOINT_GROWTH = 0.5
"""... or once the commit files since the last one take this share of its bytes (and ``CHECKPOINT_MIN_BYTES``):
each checkpoint rewrites the whole index, so they come at geometrically growing sizes (amortised O(1) per id), and
after compaction the index takes at most (1 + this) x the bytes of one checkpoint of everything."""

CHECKPOINT_MIN_BYTES = 1 << 20
"""Commit bytes below which no checkpoint is written for growth alone."""


_COMMIT_ATTEMPTS = 20


def _backend(url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None, *, read_only: bool = False,
             faults: FaultInjector | None = None) -> Backend:
    """The store's backend; with ``faults``, one whose I/O goes through that :class:`FaultInjector`."""
    if faults is None:
        return Backend(url, storage_options, read_only=read_only)
    from latentzarr.store.faults import FaultyBackend

    return FaultyBackend(url, storage_options, read_only=read_only, faults=faults)


class LatentStore:
    """A store of diffusion latents keyed by image id, in one Zarr v3 group (local folder or fsspec URL).

    Create one with :meth:`create` or open one with :meth:`open`; the constructor is internal.

    A store object sees the ids committed by other writers (threads, processes, machines) after
    :meth:`refresh`; ``get``/``record`` of an id it does not know refresh once by themselves, while
    ``in``/``len``/iteration use what was last loaded. One object may be shared by threads. It pickles as
    "open this URL again", so it can be passed to Dask tasks.

    Examples
    --------
    >>> store = LatentStore.create(tmp_path / "latents.zarr")          # doctest: +SKIP
    >>> store.put(["a", "b"], latents, model="taef2")                  # doctest: +SKIP
    >>> store["a"].shape                                               # doctest: +SKIP
    (32, 64, 64)
    """

    def __init__(self, backend: Backend, mode: Literal["r", "a"], *, lock_timeout: float = DEFAULT_TIMEOUT) -> None:
        self._backend = backend
        self.mode = mode
        self._lock_timeout = lock_timeout
        self._lock = make_lock(backend, timeout=lock_timeout) if mode == "a" else None
        self._mutex = threading.RLock()  # guards the in-memory index and array catalogue
        self._index = IdIndex(backend)
        self._meta: dict[str, ArrayMeta] = {}
        self._handles: dict[str, zarr.Array] = {}
        attrs = with_retries(lambda: self._read_root_attrs(backend), what="its root attributes", url=backend.url)
        self.shard_images = int(attrs.get("shard_images", DEFAULT_SHARD_IMAGES))
        self._format_version = int(attrs["format_version"])
        self.refresh()

    # ------------------------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, url: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None,
               shard_images: int = DEFAULT_SHARD_IMAGES, lock_timeout: float = DEFAULT_TIMEOUT,
               faults: FaultInjector | None = None) -> LatentStore:
        """Create an empty store at ``url`` and open it for appending.

        Parameters
        ----------
        url
            Local path or fsspec URL (``s3://bucket/latents.zarr``). Must not hold a store yet.
        storage_options
            fsspec options (credentials, ``endpoint_url``...).
        shard_images
            Images per shard object (one object-store object per shard). Every put occupies whole shards, so
            a put of fewer images leaves the rest of its last shard empty (empty rows cost no bytes).
        lock_timeout
            Seconds to wait for the writer lock before :class:`StoreLockedError`.
        faults
            Inject faults into every object operation (tests and soak runs): see :mod:`latentzarr.store.faults`.
        """
        if not isinstance(shard_images, int) or isinstance(shard_images, bool) or shard_images < 1:
            raise ValueError(f"Expected shard_images as a positive int. Got {shard_images!r} instead.")
        backend = _backend(url, storage_options, faults=faults)
        with make_lock(backend, timeout=lock_timeout):
            if backend.exists("zarr.json"):
                raise FileExistsError(
                    f"Expected no store at {backend.url!r}. Got an existing Zarr node instead; open it with "
                    "LatentStore.open(url, mode='a') or choose another path."
                )
            group = zarr.create_group(
                store=backend.zarr_store, zarr_format=3,
                attributes={"latentzarr": {"format_version": FORMAT_VERSION, "shard_images": shard_images,
                                           "created": datetime.now(UTC).isoformat()}},
            )
            group.create_group(ARRAYS_GROUP)
        return cls(backend, "a", lock_timeout=lock_timeout)

    @classmethod
    def open(cls, url: str | os.PathLike[str], mode: Literal["r", "a"] = "r", *,
             storage_options: Mapping[str, Any] | None = None, shard_images: int = DEFAULT_SHARD_IMAGES,
             lock_timeout: float = DEFAULT_TIMEOUT, faults: FaultInjector | None = None) -> LatentStore:
        """Open the store at ``url``: ``mode="r"`` to read, ``"a"`` to read and append (created if missing).

        ``shard_images`` applies only when ``mode="a"`` creates the store. ``faults`` injects faults into every
        object operation (tests and soak runs): see :mod:`latentzarr.store.faults`.

        Reads retry transient storage errors (connection errors, timeouts) a bounded number of times with backoff
        (:mod:`latentzarr.store.retry`), then raise :class:`~latentzarr.errors.StoreUnavailableError` (retryable).

        Raises
        ------
        NotALatentStoreError
            ``url`` holds no latentzarr store (and ``mode`` is ``"r"``, or it holds some other Zarr data).
        UnsupportedFormatError
            The store was written by a newer latentzarr.
        StoreUnavailableError
            The store did not answer, even after retries.
        """
        if mode not in ("r", "a"):
            raise ValueError(f"Expected mode 'r' or 'a'. Got {mode!r} instead.")
        backend = _backend(url, storage_options, read_only=(mode == "r"), faults=faults)
        if mode == "a" and not backend.exists("zarr.json"):
            try:
                return cls.create(url, storage_options=storage_options, shard_images=shard_images,
                                  lock_timeout=lock_timeout, faults=faults)
            except FileExistsError:  # another process created it first
                pass
        return cls(backend, mode, lock_timeout=lock_timeout)

    @staticmethod
    def _read_root_attrs(backend: Backend) -> dict[str, Any]:
        how = (f"Create one with LatentStore.create({backend.url!r}) or LatentStore.open({backend.url!r}, "
               "mode='a').")
        try:
            group = zarr.open_group(store=backend.zarr_store, mode="r", zarr_format=3)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, ValueError, KeyError) as exc:
            found = "no Zarr v3 group there"
            raise NotALatentStoreError(f"Expected a latentzarr store at {backend.url!r}. Got {found} instead. {how}",
                                       url=backend.url, found=found) from exc
        attrs = group.attrs.get("latentzarr")
        if not isinstance(attrs, dict) or "format_version" not in attrs:
            found = "a Zarr group without 'latentzarr' attributes"
            raise NotALatentStoreError(f"Expected a latentzarr store at {backend.url!r}. Got {found} instead. {how}",
                                       url=backend.url, found=found)
        version = attrs["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"Expected a store of format version <= {FORMAT_VERSION}. Got version {version!r} at "
                f"{backend.url!r} instead; upgrade latentzarr to read it."
            )
        return attrs

    # ------------------------------------------------------------------------------------ catalogue
    @property
    def url(self) -> str:
        """Where the store lives."""
        return self._backend.url

    @property
    def version(self) -> int:
        """Sequence number of the latest index commit loaded (-1: none); it grows with every put and every move."""
        return self._index.last_seq

    def moved_since(self, version: int) -> list[str]:
        """Ids re-pointed to new rows (by :meth:`rewrite` or a vacuum's compaction) by commits after ``version``
        (a :attr:`version` seen earlier), as far as this object has loaded: what a cache of decoded pictures or
        stored chunks keyed by id must drop after a :meth:`refresh`."""
        with self._mutex:
            return self._index.moved_since(version)

    def refresh(self) -> int:
        """Load index commits written since the last refresh (by any writer); return how many ids were added."""
        def load() -> int:
            with self._mutex:
                if not self._backend.exists("zarr.json"):  # gone, not empty: keep what is known, report an outage
                    raise ConnectionError(f"Expected the store {self.url!r} to exist. Got no root metadata "
                                          "instead: it is unreachable (a moved or unmounted folder, a lost bucket).")
                added = self._index.refresh()  # resumable: a failed attempt keeps the commits it loaded
                self._refresh_arrays()
                return added

        return with_retries(load, what="its id index", url=self.url)

    def _refresh_arrays(self) -> None:
        with self._mutex:
            names = self._backend.listdir(ARRAYS_GROUP)
            self._meta = list_arrays(self._backend.zarr_store, names, known=self._meta)

    def _array_meta(self, name: str) -> ArrayMeta:
        meta = self._meta.get(name)
        if meta is None:
            self._refresh_arrays()
            meta = self._meta[name]
        return meta

    def _handle(self, name: str, min_rows: int) -> zarr.Array:
        """A read handle of ``name`` whose shape covers ``min_rows`` rows (reopened when stale)."""
        handle = self._handles.get(name)
        if handle is None or handle.shape[0] < min_rows:
            handle = self._handles[name] = open_latent_array(self._backend.zarr_store, name)
        return handle

    # ------------------------------------------------------------------------------------ writing
    def put(self, ids: Sequence[str], latents: np.ndarray | Sequence[np.ndarray], *, model: str,
            model_attrs: Mapping[str, Any] | None = None, pixel_digests: Sequence[str | None] | None = None,
            decoder_setup: Mapping[str, Any] | str | None = None,
            source_bytes: Sequence[int | None] | None = None,
            precision: str | PrecisionMode = "lossless") -> None:
        """Store ``latents`` under ``ids``, bit-exactly (unless a lossy ``precision`` is asked for); all or nothing.

        Parameters
        ----------
        ids
            New, unique image ids (see :func:`latentzarr.ids.validate_id`). Committed ids are immutable.
        latents
            (N, C, h, w) array, or N arrays (C, h, w) of one shape; float16, float32 or ``ml_dtypes.bfloat16``.
        model
            Model id (e.g. ``"taef2"``). All arrays of one model share its channel count and ``model_attrs``.
        model_attrs
            JSON attributes of the model (``scaling_factor``, ``shift_factor``...); None uses the store's.
        pixel_digests
            Per id: SHA-256 hex of the pixels decoded at ingest (see ``decoder_setup``), or None.
        decoder_setup
            The setup those pixels were decoded with (device, dtype, threads, batch size...), for the batch.
        source_bytes
            Per id: size in bytes of the source image (e.g. its PNG), or None; used by :meth:`info`.
        precision
            Precision mode (text or :class:`~latentzarr.precision.PrecisionMode`): ``"lossless"`` (the default;
            every bit kept), or a lossy mode (``"bitround:K"``, ``"qB"``, ``"step:D"``, a resolved ``wstep``)
            applied only when passed here. A lossy mode writes to its own array (name suffix, attribute
            ``latentzarr.precision``); the stored digest is that of the values a read gives back.

        Raises
        ------
        InvalidIdError, DuplicateIdError, InvalidLatentError, StoreLockedError
        ValueError
            ``precision`` is not a mode, or an unresolved ``wstep`` mode.
        """
        self._require_writable()
        mode = _precision(precision)
        if isinstance(ids, str):
            raise InvalidIdError(f"Expected a sequence of ids. Got the str {ids!r} instead; pass [{ids!r}].")
        ids = validate_ids(ids)
        n = len(ids)
        model = validate_model(model)
        attrs = normalise_model_attrs(model_attrs)
        array, logical = coerce_latents(latents, n)
        if n == 0:
            return
        check_finite(array, ids)
        pixels = per_id(pixel_digests, n, "pixel_digests", str)
        sources = per_id(source_bytes, n, "source_bytes", (int, np.integer))
        if any(v is not None and v < 0 for v in sources):
            raise ValueError(f"Expected source_bytes >= 0 (sizes in bytes). Got {sources!r} instead.")
        setup = decoder_setup_json(decoder_setup)
        self.refresh()
        self._reject_committed(ids)
        meta, start, digests = self._append(model, attrs, array, logical, mode)
        now = datetime.now(UTC)
        table = commit_table({
            "id": ids, "array": [meta.name] * n, "row": list(range(start, start + n)), "latent_sha256": digests,
            "pixel_sha256": pixels, "decoder_setup": [setup] * n,
            "source_bytes": [None if s is None else int(s) for s in sources], "created": [now] * n,
        })
        with self._lock, self._mutex:  # 3) commit
            self._require_rows(meta, start, n)
            for attempt in range(_COMMIT_ATTEMPTS):
                self._index.refresh()
                self._reject_committed(ids)
                try:
                    self._index.commit(table)
                    break
                except FileExistsError:  # another writer took this seq (only after a broken lease): retry
                    if attempt == _COMMIT_ATTEMPTS - 1:
                        raise
        self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        """After a commit: write a checkpoint when one is due (derived data: outside the writer lock), and delete
        the index files an earlier checkpoint replaced more than the default grace period ago."""
        with self._mutex:
            if not self._index.checkpoint_due(CHECKPOINT_EVERY, CHECKPOINT_GROWTH, CHECKPOINT_MIN_BYTES):
                return
        if self._checkpoint() is not None:
            self._index.reclaim(DEFAULT_GRACE_S)

    def _checkpoint(self) -> int | None:
        """Write a checkpoint of what is loaded (under the mutex), then move the hint to it (under the writer lock
        alone: committers take the lock before the mutex)."""
        with self._mutex:
            seq = self._index.checkpoint()
        if seq is not None:
            with self._lock if self._lock is not None else contextlib.nullcontext():
                self._index.advance_hint(seq)
        return seq

    def _append(self, model: str, attrs: dict[str, Any] | None, array: np.ndarray, logical: str,
                mode: PrecisionMode | None) -> tuple[ArrayMeta, int, list[bytes]]:
        """Steps 1-2 of a write: reserve fresh shards of the (model, shape, dtype, mode) array, write ``array``.

        Returns the array, the first row written and the SHA-256 of each row's stored bits (for a lossy mode: of
        the values read back, i.e. what every later read gives). Nothing is visible until a commit names the rows.
        """
        lossy = mode is not None and mode.lossy
        shape = tuple(int(s) for s in array.shape[1:])

        def resolve() -> ArrayMeta:
            self._refresh_arrays()
            return self._resolve_array(model, shape, logical, attrs, mode.to_config() if lossy else None)

        return self._write_rows(resolve, array)

    def _write_rows(self, resolve: Callable[[], ArrayMeta], array: np.ndarray) -> tuple[ArrayMeta, int, list[bytes]]:
        """Reserve whole fresh shards of the array ``resolve()`` names (called under the writer lock), write
        ``array`` (logical dtype) into them, make them durable; return (array, first row, stored digests)."""
        n = len(array)
        meta, writer, start = self._reserve(resolve, n)  # 1) reserve whole fresh shards
        stored = to_storage(array, meta.dtype)
        writer[start:start + n] = stored  # 2) data, outside the lock, into shards only this write owns
        self._backend.sync([f"{meta.path}/zarr.json", *meta.shard_keys(start, n)])
        if meta.lossy:  # the digest of what a read gives back (the codec rounded the values)
            back = open_latent_array(self._backend.zarr_store, meta.name)[start:start + n]
            return meta, start, [latent_digest(to_storage(to_logical(b, meta.dtype), meta.dtype)) for b in back]
        return meta, start, [latent_digest(s) for s in stored]

    def _reserve(self, resolve: Callable[[], ArrayMeta], n: int) -> tuple[ArrayMeta, zarr.Array, int]:
        """Under the writer lock: grow the array ``resolve()`` names by whole fresh shards for ``n`` rows; return
        the array, a writable handle and the first reserved row (a multiple of the shard size). No other write ever
        touches these shards."""
        with self._lock:
            meta = resolve()
            writer = open_latent_array(self._backend.zarr_store, meta.name, writable=True)
            start = writer.shape[0]
            writer.resize((start + math.ceil(n / meta.shard_images) * meta.shard_images, *meta.shape))
        return meta, writer, start

    def _require_rows(self, meta: ArrayMeta, start: int, n: int) -> None:
        """Before a commit (under the writer lock): the shards just written must still exist. A vacuum whose grace
        period is shorter than a write may have taken them for garbage; committing would point ids at nothing."""
        missing = [k for k in meta.shard_keys(start, n) if not self._backend.exists(k)]
        if missing:
            raise WriteConflictError(
                f"Expected the shards this write filled to exist at its commit. Got {missing[:3]!r} removed instead "
                "(a vacuum with a grace period shorter than this write ran meanwhile); nothing was committed. Retry "
                "the write, and give vacuum a grace period longer than any write takes."
            )

    def rewrite(self, ids: Sequence[str], latents: np.ndarray | Sequence[np.ndarray], *,
                precision: str | PrecisionMode, expect: Mapping[str, tuple[str, int]] | None = None,
                pixel_digests: Sequence[str | None] | None = None,
                decoder_setup: Mapping[str, Any] | str | None = None,
                checked_sha256: Sequence[str] | None = None) -> list[str]:
        """Re-store committed ``ids`` with new ``latents`` in ``precision``, atomically per call (lifecycle).

        The new rows are appended to the mode's array (as :meth:`put` does), then ONE move commit re-points the
        ids to them. Until that commit lands every reader sees the old rows, after it the new ones; a crash in
        between leaves the old rows in place (the new ones are orphans). The old rows stay as garbage until
        :meth:`vacuum` reclaims them.

        Parameters
        ----------
        ids
            Committed ids, unique.
        latents
            (N, C, h, w), the same shape and dtype as each id's current latent (of one model).
        precision
            The mode to store them in (lossy modes only apply because they are asked for here).
        expect
            Per id, the (array, row) it must still be at when committing (default: where it is now). An id that
            moved meanwhile (another rewrite) is left alone.
        pixel_digests, decoder_setup
            As for :meth:`put`: SHA-256 hex of the pixels the new latent decodes to, and the setup.
        checked_sha256
            Per id, the SHA-256 hex of the stored values the caller checked (e.g. the lossy round trip whose PSNR
            it measured). When the values read back from the new rows differ, nothing is committed.

        Returns
        -------
        list of str
            The ids re-pointed (all but those that moved meanwhile), in the order given.

        Raises
        ------
        UnknownIdError, InvalidLatentError, StoreLockedError, ValueError
        CorruptDataError
            The rows read back differ from ``checked_sha256`` (nothing was committed).
        """
        self._require_writable()
        if isinstance(ids, str):
            raise InvalidIdError(f"Expected a sequence of ids. Got the str {ids!r} instead; pass [{ids!r}].")
        ids = validate_ids(ids)
        mode = _precision(precision)
        array, logical = coerce_latents(latents, len(ids))
        if not ids:
            return []
        check_finite(array, ids)
        pixels = per_id(pixel_digests, len(ids), "pixel_digests", str)
        setup = decoder_setup_json(decoder_setup)
        self.refresh()
        current = {i: (r["array"], r["row"]) for i, r in ((i, self.record(i)) for i in ids)}
        expect = dict(expect) if expect is not None else current
        metas = [self._array_meta(a) for a in sorted({a for a, _ in current.values()})]
        models = {m.model for m in metas}
        shape = tuple(int(s) for s in array.shape[1:])
        if len(models) != 1 or any(m.shape != shape or m.dtype != logical for m in metas):
            raise InvalidLatentError(
                f"Expected latents of the ids' own model, shape and dtype. Got {shape} {logical} for ids in arrays "
                f"{sorted(m.name for m in metas)!r} instead; rewrite ids of one model and pass same-shaped latents."
            )
        meta, start, digests = self._append(models.pop(), None, array, logical, mode)
        if checked_sha256 is not None:
            bad = [i for i, d, c in zip(ids, digests, checked_sha256, strict=True) if d.hex() != c]
            if bad:
                raise CorruptDataError(
                    f"Expected the rewritten rows to hold the checked values. Got different values for {bad[:5]!r} "
                    f"(array {meta.name!r}, rows from {start}) instead; nothing was committed, the ids keep their "
                    "old rows. Check the codec versions."
                )
        return self._commit_move(ids, expect, meta, start, digests, pixels, [setup] * len(ids))

    def _commit_move(self, ids: Sequence[str], expect: Mapping[str, tuple[str, int]], meta: ArrayMeta, start: int,
                     digests: Sequence[bytes], pixels: Sequence[str | None], setups: Sequence[str | None]) -> list[str]:
        """ONE move commit re-pointing ``ids[k]`` to row ``start + k`` of ``meta``, for the ids still at their
        ``expect``-ed (array, row); return those ids. The ids switch rows all at once, or not at all."""
        now = datetime.now(UTC)
        with self._lock, self._mutex:
            self._require_rows(meta, start, len(ids))
            for attempt in range(_COMMIT_ATTEMPTS):
                self._index.refresh()
                keep = [k for k, i in enumerate(ids) if self._where(i) == tuple(expect.get(i, ()))]
                if not keep:
                    return []
                self._upgrade_format()
                table = commit_table({
                    "id": [ids[k] for k in keep], "array": [meta.name] * len(keep),
                    "row": [start + k for k in keep], "latent_sha256": [digests[k] for k in keep],
                    "pixel_sha256": [pixels[k] for k in keep], "decoder_setup": [setups[k] for k in keep],
                    "source_bytes": [None] * len(keep), "created": [now] * len(keep),
                })
                try:
                    self._index.commit(table, kind=MOVE)
                    break
                except FileExistsError:
                    if attempt == _COMMIT_ATTEMPTS - 1:
                        raise
        return [ids[k] for k in keep]

    def _upgrade_format(self) -> None:
        """Before the first move commit (under the writer lock): raise the store's format version to
        :data:`FORMAT_VERSION`, so that a latentzarr that predates moves refuses the store instead of reading
        rows that moved (and may have been reclaimed since)."""
        if self._format_version >= FORMAT_VERSION:
            return
        group = zarr.open_group(store=self._backend.zarr_store, mode="r+", zarr_format=3)
        attrs = dict(group.attrs["latentzarr"])
        if attrs.get("format_version", 0) < FORMAT_VERSION:
            group.attrs["latentzarr"] = {**attrs, "format_version": FORMAT_VERSION}
        self._format_version = FORMAT_VERSION

    def _where(self, image_id: str) -> tuple[str, int] | None:
        """(array, row) of a loaded id, or None."""
        pos = self._index.position(image_id)
        if pos is None:
            return None
        codes, rows = self._index.locate(np.asarray([pos]))
        return self._index.array_name(int(codes[0])), int(rows[0])

    def _require_writable(self) -> None:
        if self._lock is None:
            raise PermissionError(
                f"Expected a store opened with mode='a' to write. Got mode={self.mode!r} instead; reopen it with "
                f"LatentStore.open({self.url!r}, mode='a')."
            )

    def _reject_committed(self, ids: Sequence[str]) -> None:
        dups = [i for i in ids if i in self._index]
        if dups:
            raise DuplicateIdError(
                f"Expected new ids. Got {len(dups)} already committed, {dups[:5]!r} instead; committed ids are "
                "immutable, so use new ids."
            )

    def _resolve_array(self, model: str, shape: tuple[int, int, int], logical: str,
                       attrs: dict[str, Any] | None, precision: dict[str, Any] | None = None) -> ArrayMeta:
        """The array for (model, shape, dtype, precision), created if new; checks channels and model attributes.

        ``precision``: a lossy mode's configuration, or None for lossless.
        """
        same_model = [m for m in self._meta.values() if m.model == model]
        for m in same_model:
            if m.shape[0] != shape[0]:
                raise InvalidLatentError(
                    f"Expected {m.shape[0]} channels for model {model!r} (array {m.name!r}). Got latents of "
                    f"shape {shape} instead; check the model name."
                )
        if same_model:
            known = same_model[0].model_attrs
            if attrs is not None and attrs != known:
                raise InvalidLatentError(
                    f"Expected model_attrs {known!r} for model {model!r}, as stored. Got {attrs!r} instead; "
                    "pass the same attributes (or None), or use another model name."
                )
            attrs = known
        wanted = precision if precision is not None else LOSSLESS
        base = name = array_name(model, shape, logical, str(wanted["mode"]))
        suffix = 1
        while name in self._meta:
            m = self._meta[name]
            if m.model == model and m.shape == shape and m.dtype == logical and m.precision == wanted:
                return m
            suffix += 1
            name = f"{base}-{suffix}"
        meta = create_latent_array(self._backend.zarr_store, name, model=model, model_attrs=attrs or {},
                                   shape=shape, dtype=logical, shard_images=self.shard_images, precision=precision)
        self._meta[name] = meta
        return meta

    # ------------------------------------------------------------------------------------ reading
    def _positions(self, ids: Sequence[str]) -> np.ndarray:
        positions = []
        refreshed = False
        for image_id in ids:
            pos = self._index.position(image_id)
            if pos is None and not refreshed:
                self.refresh()  # maybe another writer committed it
                refreshed = True
                pos = self._index.position(image_id)
            if pos is None:
                validate_id(image_id)
                raise UnknownIdError(image_id, where=f"the latent store {self.url!r}")
            positions.append(pos)
        return np.asarray(positions, dtype=np.int64)

    def get(self, ids: Sequence[str]) -> np.ndarray:
        """Latents of ``ids`` as one (N, C, h, w) array, bit-exact, in the order given.

        All ids must live in one array (same model, shape and dtype); bfloat16 comes back as
        ``ml_dtypes.bfloat16``. Reads every row with one Zarr call.

        Raises
        ------
        UnknownIdError
            An id is not committed.
        MixedArraysError
            The ids span several arrays; group them by ``record(id)["array"]``.
        CorruptDataError
            A chunk is damaged or missing; the message names the id, array and row.
        StoreUnavailableError
            The store did not answer, even after bounded retries of transient errors (retryable).
        """
        if isinstance(ids, str):
            raise TypeError(f"Expected a sequence of ids. Got the str {ids!r} instead; use get_one(id).")
        ids = list(ids)
        if not ids:
            raise ValueError("Expected at least one id. Got an empty sequence instead.")
        return self._read(f"a read of {len(ids)} latent(s) ({ids[0]!r}...)", self._get, ids)

    def _read(self, what: str, read: Callable[..., T], *args: Any) -> T:
        """``read(*args)`` under the store's read policy, the one place for it: transient errors are retried (then
        :class:`~latentzarr.errors.StoreUnavailableError`), and data found missing while the whole store is gone (a
        moved or unmounted folder, a lost bucket) is an outage, retried the same way, never reported as damage."""
        def attempt() -> T:
            try:
                return read(*args)
            except (FileNotFoundError, CorruptDataError) as exc:
                if not self._backend.exists("zarr.json"):
                    raise ConnectionError(f"Expected the store {self.url!r} to exist while reading {what}. Got "
                                          f"{type(exc).__name__} instead: it is unreachable.") from exc
                if not self._moved_on():
                    raise
                return read(*args)  # the index this read used was stale: its rows may have moved and been reclaimed

        return with_retries(attempt, what=what, url=self.url)

    def _moved_on(self) -> bool:
        """Refresh the index; True when commits arrived (a read that found its rows missing may retry: the ids may
        have moved, and a :meth:`vacuum` reclaimed their old rows)."""
        before = self.version
        self.refresh()
        return self.version != before

    def _get(self, ids: list[str]) -> np.ndarray:
        codes, rows = self._index.locate(self._positions(ids))
        if (codes != codes[0]).any():
            names = sorted({self._index.array_name(int(c)) for c in np.unique(codes)})
            raise MixedArraysError(
                f"Expected ids of one array. Got ids from arrays {names!r} instead; group them by "
                "store.record(id)['array'] and call get once per group."
            )
        name = self._index.array_name(int(codes[0]))
        meta = self._array_meta(name)
        return read_rows(self._handle(name, int(rows.max()) + 1), meta, rows, ids)

    def get_many(self, ids: Sequence[str]) -> list[np.ndarray]:
        """Latents (C, h, w) of ``ids`` in the order given, which may span arrays (one read per array)."""
        if isinstance(ids, str):
            raise TypeError(f"Expected a sequence of ids. Got the str {ids!r} instead; use get_one(id).")
        ids = list(ids)
        if not ids:
            return []
        return self._read(f"a read of {len(ids)} latent(s) ({ids[0]!r}...)", self._get_many, ids)

    def _get_many(self, ids: list[str]) -> list[np.ndarray]:
        codes, _ = self._index.locate(self._positions(ids))
        out: list[np.ndarray] = [np.empty(0)] * len(ids)
        for code in np.unique(codes):
            where = np.flatnonzero(codes == code)
            for i, latent in zip(where, self._get([ids[i] for i in where]), strict=True):
                out[i] = latent
        return out

    def get_one(self, image_id: str) -> np.ndarray:
        """The latent (C, h, w) of one id."""
        return self.get([image_id])[0]

    def __getitem__(self, image_id: str) -> np.ndarray:
        return self.get_one(image_id)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def ids(self) -> list[str]:
        """Every committed id (as of the last refresh), in commit order."""
        return list(self._index)

    def catalog(self) -> dict[str, np.ndarray]:
        """Every committed id's ``id``, ``array``, ``row`` and ``created`` (UTC, datetime64[us]) as columns, in
        commit order: one pass over the index, for listing or viewing a large store (``record`` costs ~20 us per id)."""
        self.refresh()
        return self._index.catalog()

    def record(self, image_id: str) -> dict[str, Any]:
        """Everything known about one id: array, row, model, model_attrs, shape, dtype, precision (the mode's
        name), lossy, digests, created... (``rewritten``: when it last moved, by the lifecycle or a vacuum's
        compaction, if since the last checkpoint)."""
        pos = int(self._positions([image_id])[0])
        rec = self._index.row_record(pos)
        meta = self._array_meta(rec["array"])
        rec.update(model=meta.model, model_attrs=dict(meta.model_attrs), shape=meta.shape, dtype=meta.dtype,
                   precision=meta.precision_name, lossy=meta.lossy)
        return rec

    def get_encoded(self, image_id: str) -> EncodedLatent:
        """The stored chunk of ``image_id``, compressed, as its array's codec wrote it (no decode).

        ``get_encoded(id).decode()`` equals ``get_one(id)`` bit for bit. Two ranged reads (shard index, chunk);
        transient storage errors are retried like every read.

        Raises
        ------
        UnknownIdError
            The id is not committed.
        CorruptDataError
            The shard is missing or damaged (the chunk's own CRC-32 is checked by ``decode()``).
        """
        return self._read(f"the stored chunk of {image_id!r}", self._get_encoded, image_id)

    def _get_encoded(self, image_id: str) -> EncodedLatent:
        from latentzarr.store.chunks import read_encoded

        code, row = self._index.locate(self._positions([image_id]))
        meta = self._array_meta(self._index.array_name(int(code[0])))
        return read_encoded(self._backend.zarr_store, meta, int(row[0]), image_id)

    def encoded_size(self, image_id: str) -> int:
        """Bytes of ``image_id``'s stored chunk (without its shard index entry)."""
        return self.get_encoded(image_id).nbytes

    # ------------------------------------------------------------------------------------ reporting
    def arrays(self) -> list[dict[str, Any]]:
        """One dict per array: name, model, model_attrs, shape (C, h, w), dtype, precision (the mode's name), lossy,
        shard_images, images, rows."""
        self.refresh()
        counts = self._index.array_counts()
        out = []
        for name, meta in sorted(self._meta.items()):
            rows = open_latent_array(self._backend.zarr_store, name).shape[0]
            out.append({"name": name, "model": meta.model, "model_attrs": dict(meta.model_attrs),
                        "shape": meta.shape, "dtype": meta.dtype, "precision": meta.precision_name,
                        "lossy": meta.lossy, "shard_images": meta.shard_images,
                        "images": counts.get(name, 0), "rows": rows})
        return out

    def info(self) -> dict[str, Any]:
        """Storage figures of the whole store (top-level keys) and per array (``arrays``); sizes in bytes.

        ``stored_bytes`` sums the sizes of the array's objects; ``raw_bytes`` is images x latent size;
        ``compression_ratio`` = raw / stored. ``source_bytes`` sums what callers reported for the images it is
        known for (the optimised PNG of each ingested picture), and ``data_reduction`` = 1 - (stored bytes per
        image x those images) / source_bytes: a fraction, not a percentage (0.37: the latents take 37% fewer
        bytes than those PNGs; negative: more bytes). ``stored_bytes`` counts every object, including rows no id
        points to any more (until a vacuum), and so do ``bytes_per_image`` and ``data_reduction``, per array and
        in the totals.
        Top-level ``lossy_images`` counts the images held in a lossy precision mode (each array says its own
        ``precision`` and ``lossy``).
        """
        arrays = self.arrays()
        totals = {"images": 0, "stored_bytes": 0, "raw_bytes": 0, "source_bytes": 0, "source_known": 0,
                  "source_stored_bytes": 0.0}
        for a in arrays:
            meta = self._meta[a["name"]]
            a["stored_bytes"] = self._backend.size(meta.path)
            a["raw_bytes"] = a["images"] * meta.raw_bytes_per_image
            a["bytes_per_image"] = a["stored_bytes"] / a["images"] if a["images"] else None
            a["compression_ratio"] = a["raw_bytes"] / a["stored_bytes"] if a["images"] else None
            a["source_bytes"], a["source_known"] = self._index.column_sum(a["name"], "source_bytes")
            known_stored = (a["bytes_per_image"] or 0) * a["source_known"]
            a["data_reduction"] = 1 - known_stored / a["source_bytes"] if a["source_bytes"] else None
            for key in ("images", "stored_bytes", "raw_bytes", "source_bytes", "source_known"):
                totals[key] += a[key]
            totals["source_stored_bytes"] += known_stored
        total: dict[str, Any] = {k: totals[k] for k in ("images", "stored_bytes", "raw_bytes", "source_bytes",
                                                        "source_known")}
        total["bytes_per_image"] = totals["stored_bytes"] / totals["images"] if totals["images"] else None
        total["compression_ratio"] = totals["raw_bytes"] / totals["stored_bytes"] if totals["images"] else None
        total["data_reduction"] = (1 - total["bytes_per_image"] * totals["source_known"] / totals["source_bytes"]
                                   if totals["source_bytes"] and totals["images"] else None)
        total["lossy_images"] = sum(a["images"] for a in arrays if a["lossy"])
        return {"url": self.url, "format_version": FORMAT_VERSION, **total, "arrays": arrays}

    def verify(self, ids: Sequence[str] | None = None, *, batch: int = 256, client: Any = None,
               progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Re-read latents (all, or ``ids``) and compare their SHA-256 with the index.

        For an id in a lossy array the digest is that of its stored (rounded) values: still a bit-exact check of
        what is stored.

        Parameters
        ----------
        ids
            Ids to check; None checks every id.
        batch
            Ids per batch (rows of one array, in row order; >= 1).
        client
            A ``distributed.Client``: check the batches as tasks on its cluster (workers open only the arrays,
            not the id index). None checks them here, one after another.
        progress
            Called with (ids checked, ids to check) after each batch.

        Returns
        -------
        dict
            ``checked`` (count), ``ok`` (count), ``mismatched`` (ids whose bits changed) and ``unreadable``
            (ids whose chunk is damaged or missing: ``{id: message}``).

        Raises
        ------
        StoreUnavailableError
            The store did not answer, even after retries: nothing is reported as damaged because of it.
        """
        from latentzarr.store.verifying import empty_report, merge_reports, verify_rows, verify_task

        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"Expected batch as an integer >= 1 (ids per batch). Got {batch!r} instead.")
        self.refresh()
        positions = self._positions(list(ids)) if ids is not None else np.arange(len(self._index))
        codes, rows = self._index.locate(positions)
        report = empty_report()
        parts = []  # (array name, rows, ids, expected digests)
        for code in np.unique(codes):
            name = self._index.array_name(int(code))
            sel = np.flatnonzero(codes == code)
            sel = sel[np.argsort(rows[sel], kind="stable")]
            for lo in range(0, len(sel), batch):
                part = sel[lo: lo + batch]
                parts.append((name, rows[part], self._index.ids_at(positions[part]),
                              [self._index.latent_digest(int(p)) for p in positions[part]]))
        total = len(positions)
        if client is None:
            for name, part_rows, part_ids, expected in parts:
                meta = self._array_meta(name)
                handle = self._read(f"array {name!r}", self._handle, name, int(part_rows.max()) + 1)
                merge_reports(report, verify_rows(handle, meta, part_rows, part_ids, expected, self._read))
                if progress is not None:
                    progress(report["checked"], total)
        else:
            from distributed import as_completed

            options = self._backend.storage_options or None
            futures = [client.submit(verify_task, self.url, options, self._array_meta(name), part_rows, part_ids,
                                     expected, pure=False)
                       for name, part_rows, part_ids, expected in parts]
            for future in as_completed(futures):
                merge_reports(report, future.result())
                if progress is not None:
                    progress(report["checked"], total)
        if report["unreadable"] and self._moved_on():  # ids may have moved (and a vacuum reclaimed their old rows)
            again = self.verify(list(report["unreadable"]), batch=batch)
            report["ok"] += again["ok"]
            report["mismatched"] += again["mismatched"]
            report["unreadable"] = again["unreadable"]
        return report

    def vacuum(self, *, grace: float = DEFAULT_GRACE_S, compact_at: float = DEFAULT_COMPACT_AT, dry_run: bool = False,
               progress: Callable[[str], None] | None = None) -> VacuumReport:
        """Reclaim the bytes of rows no id points to (left by :meth:`rewrite` and by writes that died).

        Shard objects no committed id points into are deleted once a vacuum has seen them garbage for ``grace``
        seconds (so the first vacuum only marks them, unless ``grace=0``); shards still holding ids but at least
        ``compact_at`` garbage (share of their bytes), and shards at most half full when packing them needs fewer
        shards, are first compacted: their live chunks are copied as they are into fresh shards, checked, and the
        ids moved by one commit per batch. No committed latent changes a
        bit, and reads by id never fail because of it (a read that finds its rows gone follows the id). Details:
        :mod:`latentzarr.store.vacuum`.

        Parameters
        ----------
        grace
            Seconds (>= 0) a garbage shard waits before deletion, and the least age of its last write: longer than
            any write takes and than views that captured rows (:meth:`to_xarray`) live. Default one hour.
        compact_at
            Share (0, 1] of a shard's bytes that must be garbage before its live rows are copied out.
        dry_run
            Change nothing; report what would be compacted and deleted now.
        progress
            Called with a line of text per step.

        Returns
        -------
        VacuumReport
            Shards scanned, compacted and deleted, bytes reclaimed and still waiting, stored bytes before/after.

        Raises
        ------
        StoreLockedError, StoreUnavailableError
        CorruptDataError
            A compacted copy did not read back as stored (nothing was committed).
        """
        return vacuum(self, grace=grace, compact_at=compact_at, dry_run=dry_run, progress=progress)

    def writer(self, *, max_ids: int = 1024, max_wait_s: float = 0.0) -> GroupWriter:
        """A :class:`~latentzarr.store.group.GroupWriter`: single-id puts of many threads share shards and index
        commits (group commit); each put returns once its id is durable. Close it (or use ``with``) to flush."""
        from latentzarr.store.group import GroupWriter

        return GroupWriter(self, max_ids=max_ids, max_wait_s=max_wait_s)

    def index_stats(self) -> dict[str, int]:
        """``index_bytes`` and ``index_files`` (every object under ``index/``: commits, checkpoints, hint) and
        ``live_index_bytes`` (what one checkpoint of the current index takes); sizes in bytes."""
        self.refresh()
        with self._mutex:
            live = self._index.live_bytes()
        return {"index_bytes": self._backend.size(INDEX_DIR), "index_files": len(self._backend.listdir(INDEX_DIR)),
                "live_index_bytes": live}

    def compact(self, *, grace: float | None = None) -> int | None:
        """Write an index checkpoint (merged commits) so that opening reads one file; return its seq.

        Parameters
        ----------
        grace
            Also delete the index files that checkpoint replaced (commit files, older checkpoints) when it is at
            least ``grace`` seconds (>= 0) old: ``0`` deletes them now. Readers that were behind catch up from the
            checkpoint; ``grace`` protects reads in flight. ``None`` (the default) deletes nothing.
        """
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0):
            raise ValueError(f"Expected grace as seconds >= 0 or None. Got {grace!r} instead.")
        self.refresh()
        seq = self._checkpoint()
        if grace is not None:
            self._index.reclaim(float(grace))
        return seq

    def to_xarray(self, array: str | None = None) -> xr.Dataset:
        """A lazy xarray view of one array's committed latents.

        Variable ``latent`` (dims image, channel, y, x; dask-backed, one dask chunk per shard), coordinate
        ``image_id``; attrs model, model_attrs (as JSON) and dtype. bfloat16 is shown as float32 (exact).
        ``array`` may be omitted when the store has a single array.
        """
        from latentzarr.store.xarray_view import array_dataset

        self.refresh()
        names = sorted(self._meta)
        if array is None:
            if len(names) != 1:
                raise ValueError(f"Expected array= naming one of {names!r}. Got None instead "
                                 f"(the store has {len(names)} arrays).")
            array = names[0]
        if array not in self._meta:
            raise KeyError(f"Expected an array name among {names!r}. Got {array!r} instead.")
        positions, rows = self._index.array_members(array)
        handle = open_latent_array(self._backend.zarr_store, array)
        return array_dataset(handle, self._meta[array], rows, self._index.ids_at(positions))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as "reopen this URL" (for Dask tasks); the copy refreshes its index on arrival."""
        return (_reopen, (self.url, self.mode, self._backend.storage_options, self._lock_timeout,
                          getattr(self._backend, "faults", None)))

    def __repr__(self) -> str:
        return (f"<LatentStore {self.url!r} mode={self.mode!r}: {len(self)} images in {len(self._meta)} "
                f"array(s)>")


def _precision(precision: str | PrecisionMode) -> PrecisionMode:
    """Parse a precision mode for writing: it must be resolved (a ``wstep`` needs its per-channel steps)."""
    from latentzarr.precision.modes import parse_mode

    mode = parse_mode(precision)
    if not mode.resolved:
        raise ValueError(f"Expected a resolved precision mode. Got {mode.name!r} without per-channel steps "
                         "instead; call latentzarr.precision.resolve_mode(mode, model) first.")
    return mode


def _reopen(url: str, mode: Literal["r", "a"], storage_options: dict[str, Any], lock_timeout: float,
            faults: FaultInjector | None = None) -> LatentStore:
    """Unpickle a :class:`LatentStore` by opening its URL again."""
    return LatentStore.open(url, mode, storage_options=storage_options or None, lock_timeout=lock_timeout,
                            faults=faults)
