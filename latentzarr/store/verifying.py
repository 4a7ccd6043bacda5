"""Verification of stored latents against the index digests: one batch of rows, here or on a Dask worker.

:meth:`LatentStore.verify` splits the ids into batches of rows of one array (in row order) and checks each batch
with :func:`verify_rows`: locally one after another, or, given a Dask client, as tasks on the cluster
(:func:`verify_task`), which open only the array (never the id index: the driver sends each task its rows, ids and
expected digests). A batch that fails to read is checked id by id, so one damaged chunk marks one id unreadable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from latentzarr.errors import CorruptDataError
from latentzarr.store.arrays import ArrayMeta, open_latent_array, read_rows
from latentzarr.store.layout import latent_digest, to_storage

__all__ = ["empty_report", "merge_reports", "verify_rows", "verify_task"]

T = TypeVar("T")
Reader = Callable[..., Any]
"""``read(what, fn, *args)``: call ``fn(*args)`` under a read policy (retries, outage vs damage)."""


def empty_report() -> dict[str, Any]:
    """``{"checked": 0, "ok": 0, "mismatched": [], "unreadable": {}}``."""
    return {"checked": 0, "ok": 0, "mismatched": [], "unreadable": {}}


def merge_reports(into: dict[str, Any], part: dict[str, Any]) -> None:
    """Add a batch's report to ``into``."""
    into["checked"] += part["checked"]
    into["ok"] += part["ok"]
    into["mismatched"] += part["mismatched"]
    into["unreadable"].update(part["unreadable"])


def verify_rows(handle: Any, meta: ArrayMeta, rows: np.ndarray, ids: Sequence[str], expected: Sequence[str],
                read: Reader) -> dict[str, Any]:
    """Check rows ``rows`` (ids ``ids``) of an open array ``handle`` against SHA-256 hex digests ``expected``."""
    report = empty_report()
    what = f"rows of array {meta.name!r}"
    try:
        latents = read(what, read_rows, handle, meta, rows, ids)
        pairs = list(zip(ids, latents, expected, strict=True))
    except CorruptDataError:  # damaged somewhere in this batch: check one by one
        pairs = []
        for i, image_id in enumerate(ids):
            try:
                pairs.append((image_id, read(what, read_rows, handle, meta, rows[i:i + 1], [image_id])[0],
                              expected[i]))
            except CorruptDataError as exc:
                report["checked"] += 1
                report["unreadable"][image_id] = str(exc)
    for image_id, latent, digest in pairs:
        report["checked"] += 1
        if latent_digest(to_storage(latent, meta.dtype)).hex() == digest:
            report["ok"] += 1
        else:
            report["mismatched"].append(image_id)
    return report


def verify_task(url: str, storage_options: Mapping[str, Any] | None, meta: ArrayMeta, rows: np.ndarray,
                ids: Sequence[str], expected: Sequence[str]) -> dict[str, Any]:
    """:func:`verify_rows` on a Dask worker: opens the store's backend read-only and the one array it needs.

    Transient errors are retried; data found missing while the whole store is gone is an outage
    (:class:`~latentzarr.errors.StoreUnavailableError` after retries), never reported as damage.
    """
    from latentzarr.store.backend import Backend
    from latentzarr.store.retry import with_retries

    backend = Backend(url, storage_options, read_only=True)

    def read(what: str, fn: Callable[..., T], *args: Any) -> T:
        def attempt() -> T:
            try:
                return fn(*args)
            except (FileNotFoundError, CorruptDataError) as exc:
                if not backend.exists("zarr.json"):
                    raise ConnectionError(f"Expected the store {url!r} to exist while reading {what}. Got "
                                          f"{type(exc).__name__} instead: it is unreachable.") from exc
                raise

        return with_retries(attempt, what=what, url=url)

    handle = read(f"array {meta.name!r}", open_latent_array, backend.zarr_store, meta.name)
    return verify_rows(handle, meta, rows, ids, expected, read)
