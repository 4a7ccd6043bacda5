"""LatentClient: read pictures and latents of a latent store through a Dask cluster.

A read of id X in rendition R:

1. **fast path** -- ask X's owner worker (rendezvous hash over worker *names*) for R over a direct worker RPC;
   an image-tier hit returns ready bytes in well under a millisecond, without the scheduler;
2. **work path** -- otherwise one task with a key derived from (X, R), ``workers=[owner]`` and
   ``allow_other_workers=True``: concurrent misses of X coalesce on the key, and work stealing moves the task to
   an idle worker when the owner is busy (spillover); wherever it runs, the results land in the owner's cache.

All methods work with a synchronous client (they block) and an asynchronous one (they return awaitables).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from distributed import Client
from distributed.comm.core import CommClosedError

from latentzarr.cluster.plugin import (
    PLUGIN_NAME,
    LatentWorkerPlugin,
    cache_key,
    get_latentzarr_plugin,
    unpack_latent,
)
from latentzarr.cluster.ring import HashRing
from latentzarr.errors import LatentZarrError
from latentzarr.ids import validate_id

__all__ = ["LatentClient", "ReadFailedError"]

RING_TTL_S = 1.0
"""Seconds a worker-name -> address map is trusted before it is fetched again from the scheduler."""
SPILL_DEPTH = 2
"""Reads in flight on an owner beyond the least busy worker's before a new read is sent to that worker."""
FAST_PATH_TIMEOUT_S = 2.0
"""Longest wait (s) for the owner's image-tier answer before the read takes the task path."""


class ReadFailedError(LatentZarrError, RuntimeError):
    """A read could not complete (its worker died repeatedly or the cluster is gone); retrying may succeed."""

    retryable = True


def _read_task(image_id: str, rendition: Any, owner: str | None) -> bytes:
    return get_latentzarr_plugin().render(image_id, rendition, owner)


def _latent_task(image_id: str) -> np.ndarray:
    return unpack_latent(image_id, get_latentzarr_plugin().fetch_latent(image_id)[0])


def _worker_stats(dask_worker: Any) -> dict[str, Any]:
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return plugin.stats() if plugin is not None else {}


class LatentClient:
    """Routing, coalescing and spillover of reads over a :class:`distributed.Client`.

    Parameters
    ----------
    client
        A connected client (synchronous or asynchronous) whose workers run :class:`LatentWorkerPlugin`.
    spill
        Allow reads to run on other workers than their owner (``allow_other_workers``). ``False`` pins every
        read to its owner (the no-spillover baseline).
    owns_cluster
        A cluster that :meth:`close` shuts down with the client (set by :func:`latentzarr.cluster.start_cluster`).
    """

    def __init__(self, client: Client, *, spill: bool = True, owns_cluster: Any = None) -> None:
        self.client = client
        self.spill = spill
        self._cluster = owns_cluster
        self.generation = 0
        self._ring = HashRing()
        self._addresses: dict[str, str] = {}
        self._ring_time = -np.inf
        self._in_flight: dict[str, int] = {}  # reads this client has submitted and not yet got back, by worker
        self.fast_path_fallbacks = 0
        """Reads whose owner did not answer the image-tier lookup in time (they took the task path)."""

    @property
    def asynchronous(self) -> bool:
        return bool(self.client.asynchronous)

    def _sync(self, fn, *args, **kwargs):
        return self.client.sync(fn, *args, **kwargs)

    def register(self, store_url: str, **plugin_options: Any):
        """Register :class:`LatentWorkerPlugin` for ``store_url`` on every worker (and workers that join later)."""
        return self.client.register_plugin(LatentWorkerPlugin(store_url, **plugin_options))

    # ------------------------------------------------------------------------------------------ routing
    async def _refresh_ring(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._ring_time < RING_TTL_S:
            return
        info = await self.client.scheduler.identity(n_workers=-1)
        addresses = {str(w.get("name", addr)): addr for addr, w in info.get("workers", {}).items()}
        if set(addresses) != set(self._ring.names):
            self._ring = HashRing(sorted(addresses))
        self._addresses = addresses
        self._ring_time = time.monotonic()

    async def _owner(self, image_id: str) -> str:
        await self._refresh_ring()
        if not self._addresses:
            await self._refresh_ring(force=True)
        try:
            return self._addresses[self._ring.owner(image_id)]
        except LookupError as exc:
            raise ReadFailedError("Expected at least one worker in the cluster. Got none; start workers.") from exc

    def owner(self, image_id: str) -> str:
        """Address of the worker that owns ``image_id`` now."""
        return self._sync(self._owner, validate_id(image_id))

    # ------------------------------------------------------------------------------------------ reads
    async def _read(self, image_id: str, format: str = "png", size: int | None = None,
                    quality: int | None = None, rendition: Any = None) -> bytes:
        from latentzarr.models.images import Rendition

        validate_id(image_id)
        if rendition is None:
            rendition = Rendition.parse(format, size, quality)
        elif not isinstance(rendition, Rendition):
            raise TypeError(f"Expected rendition as a Rendition. Got {type(rendition).__name__} instead.")
        owner = await self._owner(image_id)
        try:
            hit = await asyncio.wait_for(
                self.client.rpc(owner).latentzarr_image(key=cache_key(image_id, rendition)), FAST_PATH_TIMEOUT_S)
        except (TimeoutError, OSError, CommClosedError):  # owner gone: re-route, let the task path take it
            self.fast_path_fallbacks += 1
            await self._refresh_ring(force=True)
            owner = await self._owner(image_id)
            hit = None
        if hit is not None:
            return hit
        return await self._run(_read_task, image_id, rendition, owner,
                               key=rendition_task_key(image_id, rendition, self.generation), owner=owner)

    def _placement(self, owner: str) -> str:
        """Worker to run a read of ``owner``'s id on: the owner, unless spilling is on and the owner has at
        least :data:`SPILL_DEPTH` more of this client's reads in flight than the least busy worker.

        Work stealing moves queued reads too, but only on its own schedule and estimates; this sends a read to an
        idle worker at once when this client can see the owner's queue is deep. The read still writes its
        results back to the owner's cache.
        """
        if not self.spill or len(self._addresses) < 2:
            return owner
        idle = min(self._addresses.values(), key=lambda a: self._in_flight.get(a, 0))
        if self._in_flight.get(owner, 0) - self._in_flight.get(idle, 0) >= SPILL_DEPTH:
            return idle
        return owner

    async def _run(self, fn, *args: Any, key: str, owner: str) -> Any:
        from distributed import KilledWorker

        target = self._placement(owner)
        self._in_flight[target] = self._in_flight.get(target, 0) + 1
        fut = self.client.submit(fn, *args, key=key, workers=[target], allow_other_workers=self.spill, pure=False)
        try:
            return await fut
        except LatentZarrError:
            raise  # unknown id, corrupt data...: the caller's business, not the cluster's
        except (TimeoutError, KilledWorker, OSError, CommClosedError) as exc:
            self.generation += 1  # a fresh key for the retry: a cancelled key cannot be resubmitted safely
            raise ReadFailedError(f"Expected a read of {args[0]!r} to finish. Got {type(exc).__name__}: {exc}; "
                                  "retry the read.") from exc
        finally:
            self._in_flight[target] -= 1
            fut.release()

    def read(self, image_id: str, format: str = "png", size: int | None = None,
             quality: int | None = None, *, rendition: Any = None) -> bytes:
        """Encoded picture of ``image_id`` (PNG / WebP / JPEG / AVIF, longest side bounded by ``size`` px); or give
        a whole :class:`~latentzarr.models.images.Rendition` (width/height/fit/gravity...) as ``rendition``.

        Raises :class:`~latentzarr.errors.UnknownIdError` for an id not in the store, ``InvalidRenditionError``
        for a bad format/size/quality, :class:`ReadFailedError` when the cluster cannot complete it.
        """
        return self._sync(self._read, image_id, format, size, quality, rendition)

    async def _read_many(self, ids: Sequence[str], format: str, size: int | None, quality: int | None) -> list:
        return list(await asyncio.gather(*(self._read(i, format, size, quality) for i in ids)))

    def read_many(self, ids: Sequence[str], format: str = "png", size: int | None = None,
                  quality: int | None = None) -> list[bytes]:
        """:meth:`read` of every id, concurrently; results in the order of ``ids``."""
        return self._sync(self._read_many, list(ids), format, size, quality)

    async def _read_latent(self, image_id: str) -> np.ndarray:
        validate_id(image_id)
        owner = await self._owner(image_id)
        return await self._run(_latent_task, image_id, key=f"latentzarr-latent-{_digest(image_id)}", owner=owner)

    def read_latent(self, image_id: str) -> np.ndarray:
        """The stored latent (C, h, w) of ``image_id``, bit-exact, read by its owner worker."""
        return self._sync(self._read_latent, image_id)

    async def _warm(self, ids: list[str], latency_seed: int | None) -> dict[str, Any]:
        await self._refresh_ring(force=True)
        by_owner: dict[str, list[str]] = {}
        for image_id in ids:
            by_owner.setdefault(await self._owner(image_id), []).append(image_id)
        answers = await asyncio.gather(*(self.client.rpc(addr).latentzarr_warm(ids=part, latency_seed=latency_seed)
                                         for addr, part in by_owner.items()))
        return dict(zip(by_owner, answers, strict=True))

    def warm(self, ids: Sequence[str], *, latency_seed: int | None = None) -> dict[str, Any]:
        """Serve ``ids`` (full-size PNG reads, in order) as a bulk warm-up on their owners' caches.

        Each owner gets its own ids in their order over one direct RPC (no scheduler) and runs them through
        :meth:`LatentWorkerPlugin.warm <latentzarr.cluster.LatentWorkerPlugin.warm>`: the cache ends as the same
        reads served one by one would leave it, without their waits and decodes. Returns each worker's answer.
        """
        return self._sync(self._warm, [validate_id(i) for i in ids], latency_seed)

    # ------------------------------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        """Per-worker cache and plugin counters (``{"workers": {address: {...}}, "total": {...}}``)."""
        return self._sync(self._stats)

    async def _stats(self) -> dict[str, Any]:
        per = await self.client.run(_worker_stats)
        return {"workers": per, "total": _cluster_totals(list(per.values()))}

    def close(self) -> None:
        """Close the client, and the cluster if this client started it."""
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> LatentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LatentClient({self.client!r}, spill={self.spill})"


_MEANS = ("alpha", "decode_ms", "fetch_ms")
"""Per-worker figures that are averaged, not summed, in cluster totals."""
_SETTINGS = ("window", "promote_after", "step", "tail")
"""Per-worker settings: not aggregated."""


def _cluster_totals(per: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum counters and bytes over workers; average alpha and the latency EWMAs (ms)."""
    total: dict[str, Any] = {"workers": len(per)}
    for st in per:
        for k, v in st.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in _SETTINGS:
                total[k] = total.get(k, 0) + v
    for k in _MEANS:
        if k in total and per:
            total[k] /= len(per)
    return total


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def rendition_task_key(image_id: str, rendition: Any, generation: int = 0) -> str:
    """Deterministic task key of a read: equal for equal (id, rendition, generation), so reads coalesce."""
    return f"latentzarr-read-{_digest(cache_key(image_id, rendition))}-{generation}"
