"""Group commit: many small puts from the threads of one process share shards and index commits.

A :class:`GroupWriter` takes puts of one id each (:meth:`~GroupWriter.put` blocks, :meth:`~GroupWriter.submit`
returns a future) and hands them to one flusher thread, which writes everything pending for one array as a single
:meth:`LatentStore.put` (one shard reservation, one data write, one index commit). A future resolves only after
that commit is durable, so nothing is acknowledged that a crash could lose; a put that fails resolves with its
exception (per id: a duplicate fails alone, the rest of its batch is retried).

Batching: the flusher starts a flush as soon as something is pending and the previous flush is done, so puts that
arrive while a flush runs form the next batch (group commit; the batch grows with the offered load). With
``max_wait_s > 0`` it also waits up to that long after the first pending put for more, until ``max_ids`` are
pending: fewer, bigger commits for a little latency. :meth:`~GroupWriter.close` (or leaving the ``with`` block)
flushes everything pending.

Processes do not share one writer: each process has its own (and the store's writer lock orders their commits).
Small batches leave part-filled shards and small commit files behind; :meth:`LatentStore.vacuum` packs the
shards and :meth:`LatentStore.compact` merges the commits, after which the bytes per id are those of a batched
ingest.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from latentzarr.errors import DuplicateIdError, InvalidIdError
from latentzarr.ids import validate_id
from latentzarr.store.validation import (
    check_finite,
    coerce_latents,
    decoder_setup_json,
    normalise_model_attrs,
    validate_model,
)

if TYPE_CHECKING:
    from latentzarr.store.core import LatentStore

__all__ = ["DEFAULT_MAX_IDS", "DEFAULT_MAX_WAIT_S", "GroupWriter"]

DEFAULT_MAX_IDS = 1024
"""Most ids one flush commits."""

DEFAULT_MAX_WAIT_S = 0.0
"""Seconds a flush waits for more puts after the first pending one (0: flush as soon as the last flush is done)."""


@dataclass
class _Item:
    image_id: str
    latent: np.ndarray
    pixel_digest: str | None
    source_bytes: int | None
    future: Future = field(default_factory=Future)


@dataclass
class _Group:
    """Puts that can share one ``LatentStore.put`` (same array, model attributes and decoder setup)."""

    model: str
    model_attrs: dict[str, Any] | None
    decoder_setup: str | None
    precision: str
    items: list[_Item] = field(default_factory=list)
    since: float = 0.0


class GroupWriter:
    """Buffer single-id puts of many threads into shared commits; see the module docstring.

    Parameters
    ----------
    store
        A store opened with ``mode="a"``.
    max_ids
        Most ids per commit (>= 1).
    max_wait_s
        Seconds (>= 0) a flush waits for more puts after the first pending one.

    Examples
    --------
    >>> with store.writer() as writer:                                  # doctest: +SKIP
    ...     writer.put("img-1", latent, model="taef2")                  # returns once committed
    """

    def __init__(self, store: LatentStore, *, max_ids: int = DEFAULT_MAX_IDS,
                 max_wait_s: float = DEFAULT_MAX_WAIT_S) -> None:
        if isinstance(max_ids, bool) or not isinstance(max_ids, int) or max_ids < 1:
            raise ValueError(f"Expected max_ids as an integer >= 1. Got {max_ids!r} instead.")
        if isinstance(max_wait_s, bool) or not isinstance(max_wait_s, int | float) or not max_wait_s >= 0:
            raise ValueError(f"Expected max_wait_s as seconds >= 0. Got {max_wait_s!r} instead.")
        store._require_writable()
        self.store = store
        self.max_ids = max_ids
        self.max_wait_s = float(max_wait_s)
        self.commits = 0
        """Index commits this writer made."""
        self.committed = 0
        """Ids this writer committed."""
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._pending_ids: set[str] = set()
        self._unresolved: set[Future] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=f"latentzarr-group-writer-{store.url}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------ API
    def submit(self, image_id: str, latent: np.ndarray, *, model: str, model_attrs: Mapping[str, Any] | None = None,
               pixel_digest: str | None = None, decoder_setup: Mapping[str, Any] | str | None = None,
               source_bytes: int | None = None, precision: str = "lossless") -> Future:
        """Queue one put; return a future that resolves (to None) once the id is committed and durable.

        Arguments as for :meth:`LatentStore.put`, for one id: ``latent`` is one (C, h, w) array. Bad input
        raises here, at once (not through the future); a duplicate id resolves the future with
        :class:`~latentzarr.errors.DuplicateIdError`.
        """
        if not isinstance(image_id, str):
            raise InvalidIdError(f"Expected one id as a str. Got {type(image_id).__name__} {image_id!r} instead.")
        validate_id(image_id)
        model = validate_model(model)
        attrs = normalise_model_attrs(model_attrs)
        array, logical = coerce_latents([latent], 1)
        check_finite(array, [image_id])
        if pixel_digest is not None and not isinstance(pixel_digest, str):
            raise ValueError(f"Expected pixel_digest as a hex str or None. Got {pixel_digest!r} instead.")
        if source_bytes is not None and (isinstance(source_bytes, bool) or source_bytes < 0
                                         or not isinstance(source_bytes, int | np.integer)):
            raise ValueError(f"Expected source_bytes as bytes >= 0 or None. Got {source_bytes!r} instead.")
        if not isinstance(precision, str):
            raise ValueError(f"Expected precision as its text form (e.g. 'lossless'). Got {precision!r} instead.")
        setup = decoder_setup_json(decoder_setup)
        key = (model, json.dumps(attrs, sort_keys=True), setup, array.shape[1:], logical, precision)
        item = _Item(image_id, array[0], pixel_digest, None if source_bytes is None else int(source_bytes))
        with self._cond:
            if self._closed:
                raise RuntimeError(f"Expected an open GroupWriter. Got one already closed for {self.store.url!r} "
                                   "instead; make a new one with store.writer().")
            if image_id in self._pending_ids:
                item.future.set_exception(DuplicateIdError(
                    f"Expected a new id. Got {image_id!r} instead, already waiting to be committed by this writer."))
                return item.future
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(model, attrs, setup, precision, since=time.monotonic())
            group.items.append(item)
            self._pending_ids.add(image_id)
            self._unresolved.add(item.future)
            self._cond.notify_all()
        return item.future

    def put(self, image_id: str, latent: np.ndarray, **kwargs: Any) -> None:
        """:meth:`submit` and wait: returns once the id is committed (raises what the put raised)."""
        self.submit(image_id, latent, **kwargs).result()

    def flush(self) -> None:
        """Return once everything submitted before the call is committed (or failed)."""
        with self._cond:
            futures = list(self._unresolved)
        for future in futures:
            future.exception()  # waits; failures stay with their future

    def close(self) -> None:
        """Flush everything pending and stop the flusher thread. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def __enter__(self) -> GroupWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"GroupWriter({self.store.url!r}, max_ids={self.max_ids}, max_wait_s={self.max_wait_s}, "
                f"commits={self.commits}, committed={self.committed})")

    # ------------------------------------------------------------------------------------ flusher
    def _take(self) -> _Group | None:
        """Under the condition: wait for a batch that is due; return it (None once closed and drained)."""
        while True:
            if self._groups:
                key, group = min(self._groups.items(), key=lambda kv: kv[1].since)
                due = group.since + self.max_wait_s
                now = time.monotonic()
                if self._closed or len(group.items) >= self.max_ids or now >= due:
                    batch = _Group(group.model, group.model_attrs, group.decoder_setup, group.precision,
                                   group.items[: self.max_ids])
                    group.items = group.items[self.max_ids:]
                    if not group.items:
                        del self._groups[key]
                    else:
                        group.since = now
                    return batch
                self._cond.wait(due - now)
            elif self._closed:
                return None
            else:
                self._cond.wait()

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
            if batch is None:
                return
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._pending_ids.difference_update(item.image_id for item in batch.items)
                    self._unresolved.difference_update(item.future for item in batch.items)

    def _commit(self, batch: _Group) -> None:
        items = batch.items
        while items:
            try:
                self.store.put(
                    [i.image_id for i in items], np.stack([i.latent for i in items]), model=batch.model,
                    model_attrs=batch.model_attrs, pixel_digests=[i.pixel_digest for i in items],
                    decoder_setup=batch.decoder_setup, source_bytes=[i.source_bytes for i in items],
                    precision=batch.precision,
                )
            except DuplicateIdError as exc:  # another writer committed some of these ids: fail those alone
                self.store.refresh()
                taken = [i for i in items if i.image_id in self.store]
                if not taken:
                    self._fail(items, exc)
                    return
                for i in taken:
                    i.future.set_exception(DuplicateIdError(
                        f"Expected a new id. Got {i.image_id!r} instead, committed by another writer meanwhile; "
                        "committed ids are immutable, so use a new id."))
                items = [i for i in items if i.image_id not in self.store]
                continue
            except BaseException as exc:  # every failure goes to the callers that wait
                self._fail(items, exc)
                return
            self.commits += 1
            self.committed += len(items)
            for i in items:
                i.future.set_result(None)
            return

    @staticmethod
    def _fail(items: list[_Item], exc: BaseException) -> None:
        for i in items:
            i.future.set_exception(exc)
