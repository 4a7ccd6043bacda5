"""The worker plugin: each Dask worker's dual-format cache, decoder(s), decode batcher and store handle.

``LatentWorkerPlugin.__init__`` runs on the client and is pickled to the workers, so it holds only light,
validated settings; :meth:`setup` runs on each worker, opens the store, builds the cache and batcher, and
registers the worker RPC handlers the client and other workers call directly (no scheduler round trip):

=====================  =======================================================================================
``latentzarr_image``   image-tier lookup (the fast path); counts one request; returns the encoded bytes or None
``latentzarr_latent``  latent-tier lookup after an image miss (for a read running on another worker)
``latentzarr_admit``   write-back from a read that ran elsewhere: a fetched latent and/or a decoded image
``latentzarr_stats``   this worker's counters
``latentzarr_warm``    serve a list of warm-up reads in bulk through the same cache path (no scheduler, no decode)
=====================  =======================================================================================

Renditions share one decode: when a read decodes an id for a resized or lossy rendition and the cache keeps it,
the full-size PNG (the ``png`` rendition) is kept beside it (``keep_source``), and a later read of another
rendition of that id, on the owner, resizes and encodes that picture instead of decoding again (counted in
``resized``, not ``decodes``).

Serving modes (``mode=``), so that every configuration a benchmark compares is a deployment of the same workers:

==============  ==============================================================================================
``dual``        the :class:`~latentzarr.cache.DualFormatCache` (``cache_options`` make it image-only, latent-only,
                static or adaptive); ``cache_bytes=0`` caches nothing (Decode-All)
``imgstore``    no latents, no decode: a per-worker LRU (:class:`~latentzarr.cache.LRUImageCache`) of PNG bytes
                read from ``image_store`` (one PNG object per id); serves full-size PNG only
==============  ==============================================================================================

``get_latency`` (a :class:`~latentzarr.store.latency.GetLatencyModel`) adds a modelled object-store latency to
every object GET this worker makes (a latent chunk from the store, a PNG object from the image store).

Under faults: a store that fails transiently is retried by the store itself (bounded), then the read raises
:class:`~latentzarr.errors.StoreUnavailableError` (retryable); cached pictures and latents are still served while
the store is down. A worker whose store could not be opened at start-up opens it at its first read. Above
``shed_at`` x the worker's memory limit the worker empties its cache (see :meth:`LatentWorkerPlugin.check_memory`).

Tasks reach the plugin with :func:`get_latentzarr_plugin`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dask
from distributed import WorkerPlugin, get_worker
from distributed.comm.core import CommClosedError
from distributed.protocol import to_serialize
from distributed.utils import sync

from latentzarr.errors import CorruptDataError, LatentZarrError, StoreUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from distributed import Worker

    from latentzarr.cache import DualFormatCache
    from latentzarr.cluster.batcher import DecodeBatcher
    from latentzarr.models import LatentAutoencoder
    from latentzarr.models.images import Rendition
    from latentzarr.store import EncodedLatent, LatentStore
    from latentzarr.store.faults import FaultInjector
    from latentzarr.store.latency import GetLatencyModel

__all__ = ["PLUGIN_NAME", "LatentWorkerPlugin", "PluginMissingError", "get_latentzarr_plugin"]

PLUGIN_NAME = "latentzarr"
MODES = ("dual", "imgstore")
"""Serving modes of the plugin."""
DEFAULT_CACHE_BYTES = 256 * 2**20
"""Default per-worker cache budget (bytes): both tiers together."""
OWNER_TIMEOUT_S = 2.0
"""Longest wait (s) for the owner worker's cache during a read that runs elsewhere."""
MEMORY_CHECK_MS = 200
STORE_REFRESH_MS = 5000
"""How often (ms) a worker loads new index commits and drops what it cached of ids that moved since (a lifecycle
rewrite or a vacuum's compaction): a picture decoded from an id's old latent is served at most this long after."""
"""Period (ms) of the worker memory check that sheds the cache under memory pressure."""


class PluginMissingError(LatentZarrError, RuntimeError):
    """A latentzarr task ran on a worker without the latentzarr plugin."""


class LatentWorkerPlugin(WorkerPlugin):
    """Per-worker state for serving and batch-decoding a latent store.

    Parameters
    ----------
    store_url
        Local path or fsspec URL of the :class:`~latentzarr.store.LatentStore`, reachable from every worker.
    storage_options
        fsspec options for ``store_url``.
    cache_bytes
        Byte budget of this worker's :class:`~latentzarr.cache.DualFormatCache` (both tiers).
    cache_options
        Further keyword arguments of the cache (``alpha``, ``adaptive``, ``promote_after``, ``window``...).
    model
        Model to decode with; None uses the model recorded in each id's array.
    device
        Torch device for decoding (None: CUDA when present, else CPU).
    max_batch, max_wait_ms
        Decode batching: most latents per forward pass, longest wait (ms) for companions.
    torch_threads
        ``torch.set_num_threads`` on the worker (None: leave as is).
    faults
        Inject faults into the worker's store I/O (:class:`~latentzarr.store.faults.FaultInjector`; tests, soak).
    mode
        ``"dual"`` or ``"imgstore"`` (see the module docstring).
    image_store, image_storage_options
        Folder or URL of the PNG objects (:class:`~latentzarr.replay.ImageObjectStore`) and its fsspec options:
        required by ``imgstore``; used by the bulk warm-up in every mode.
    get_latency
        Object-store latency model applied to every object GET (None: none beyond the store's own).
    shed_at
        Fraction of the worker's memory limit above which the worker empties its cache (None: Dask's
        ``distributed.worker.memory.spill`` fraction, which comes before the *pause* fraction; False: never).
        The plugin's memory is unmanaged to Dask, so without this a worker over its limit is paused and then
        restarted, losing the cache anyway and failing the reads in flight.
    keep_source
        Keep the full-size PNG of an id beside a resized or lossy rendition the cache keeps, so other renditions
        of that id are a resize + encode rather than a decode (costs a PNG encode per cached decode, and its
        bytes in the image tier).
    """

    name = PLUGIN_NAME
    idempotent = True  # re-registering must not empty a warm cache

    def __init__(self, store_url: str, *, storage_options: Mapping[str, Any] | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, cache_options: Mapping[str, Any] | None = None,
                 model: str | None = None, device: str | None = None, max_batch: int = 8,
                 max_wait_ms: float = 2.0, torch_threads: int | None = None,
                 faults: FaultInjector | None = None, shed_at: float | bool | None = None,
                 keep_source: bool = True, mode: str = "dual", image_store: str | None = None,
                 image_storage_options: Mapping[str, Any] | None = None,
                 get_latency: GetLatencyModel | None = None) -> None:
        if not isinstance(cache_bytes, int) or cache_bytes < 0:
            raise ValueError(f"Expected cache_bytes as an int >= 0. Got {cache_bytes!r} instead.")
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(
                f"Expected max_batch >= 1 and max_wait_ms >= 0. Got {max_batch!r}, {max_wait_ms!r} instead.")
        self.store_url = str(store_url)
        self.storage_options = dict(storage_options or {})
        self.cache_bytes = cache_bytes
        self.cache_options = dict(cache_options or {})
        self.model = model
        self.device = device
        self.max_batch = int(max_batch)
        self.max_wait_ms = float(max_wait_ms)
        self.torch_threads = torch_threads
        self.faults = faults
        if shed_at is None:
            shed_at = dask.config.get("distributed.worker.memory.spill") or 0.7
        if shed_at is not False and not 0 < float(shed_at) <= 1:
            raise ValueError(f"Expected shed_at in (0, 1], None or False. Got {shed_at!r} instead.")
        self.shed_at = False if shed_at is False else float(shed_at)
        self.keep_source = bool(keep_source)
        if mode not in MODES:
            raise ValueError(f"Expected mode in {MODES}. Got {mode!r} instead.")
        if mode == "imgstore" and not image_store:
            raise ValueError("Expected image_store (a folder or URL of PNG objects) with mode='imgstore'. Got None.")
        self.mode = mode
        self.image_store = None if image_store is None else str(image_store)
        self.image_storage_options = dict(image_storage_options or {})
        self.get_latency = get_latency
        self.worker: Worker | None = None
        self._store: LatentStore | None = None

    def __repr__(self) -> str:
        return (f"LatentWorkerPlugin(store_url={self.store_url!r}, cache_bytes={self.cache_bytes}, "
                f"model={self.model!r}, device={self.device!r}, mode={self.mode!r})")

    # ------------------------------------------------------------------------------------------ lifecycle
    def setup(self, worker: Worker) -> None:
        from latentzarr.cache import DualFormatCache, LRUImageCache
        from latentzarr.store import LatentStore

        if self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)
        self.worker = worker
        self._store_lock = threading.Lock()
        try:
            self._store = LatentStore.open(self.store_url, mode="r", storage_options=self.storage_options,
                                           faults=self.faults)
        except StoreUnavailableError:  # the store is down: open it at the first read instead
            self._store = None
        self._followed = self._store.version if self._store is not None else -1  # see follow_moves
        if self.mode == "imgstore":
            self.cache: DualFormatCache = LRUImageCache(max(self.cache_bytes, 1), **self.cache_options)
        else:
            self.cache = DualFormatCache(max(self.cache_bytes, 1), **self.cache_options)
        self._images = None  # the image store, opened at first use
        self._latency = None if self.get_latency is None else self.get_latency.with_stream(str(worker.name))
        self._models: dict[str, LatentAutoencoder] = {}
        self._batchers: dict[str, DecodeBatcher] = {}
        self._mutex = threading.Lock()
        self.counters = dict.fromkeys(
            ("reads", "decodes", "store_fetches", "image_fetches", "spilled", "writebacks", "owner_unreachable",
             "sheds", "invalidated", "resized", "warmup_requests"), 0)
        self._get_ms = 0.0  # total modelled GET latency (ms) given so far
        worker.handlers.update({
            "latentzarr_image": self._h_image,
            "latentzarr_latent": self._h_latent,
            "latentzarr_admit": self._h_admit,
            "latentzarr_stats": self._h_stats,
            "latentzarr_warm": self._h_warm,
        })
        from tornado.ioloop import PeriodicCallback

        callbacks = {"latentzarr-refresh": (self._follow_moves, STORE_REFRESH_MS)}
        if self.shed_at is not False:
            callbacks["latentzarr-memory"] = (self.check_memory, MEMORY_CHECK_MS)
        for name, (callback, ms) in callbacks.items():
            pc = PeriodicCallback(callback, ms)
            worker.periodic_callbacks[name] = pc  # the worker stops it when it closes
            pc.start()

    def teardown(self, worker: Worker) -> None:
        for name in ("latentzarr_image", "latentzarr_latent", "latentzarr_admit", "latentzarr_stats",
                     "latentzarr_warm"):
            worker.handlers.pop(name, None)
        for name in ("latentzarr-memory", "latentzarr-refresh"):
            pc = worker.periodic_callbacks.pop(name, None)
            if pc is not None:
                pc.stop()
        for batcher in getattr(self, "_batchers", {}).values():
            batcher.close()

    # ------------------------------------------------------------------------------------------ RPC handlers
    async def _h_image(self, key: str) -> Any:
        value = self.cache.get_image(key)
        return None if value is None else to_serialize(value)

    async def _h_latent(self, image_id: str) -> Any:
        value = self.cache.get_latent(image_id)
        return None if value is None else to_serialize(value)

    async def _h_admit(self, image_id: str, key: str | None = None, image: bytes | None = None,
                       latent: Any = None, decode_ms: float | None = None, fetch_ms: float | None = None) -> bool:
        return self._admit(image_id, key, image, latent, decode_ms, fetch_ms, remote=True)

    async def _h_stats(self) -> dict[str, Any]:
        return self.stats()

    async def _h_warm(self, ids: list[str], latency_seed: int | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.warm, ids, latency_seed=latency_seed)

    @property
    def store(self) -> LatentStore:
        """The worker's store handle, opened at setup or, if the store was down then, at first use.

        Raises :class:`~latentzarr.errors.StoreUnavailableError` while the store cannot be opened.
        """
        if self._store is None:
            from latentzarr.store import LatentStore

            with self._store_lock:
                if self._store is None:
                    self._store = LatentStore.open(self.store_url, mode="r", storage_options=self.storage_options,
                                                   faults=self.faults)
        return self._store

    def check_memory(self) -> bool:
        """Empty the cache when the worker process uses more than ``shed_at`` x its memory limit; True if shed.

        Runs every :data:`MEMORY_CHECK_MS` ms on the worker. Behaviour under memory pressure: the cache never
        exceeds its byte budget anyway; above the threshold every cached object is dropped (counted in
        ``sheds``), so reads degrade to store fetches and decodes -- slower, never failing -- and the cache
        refills once memory is back under the threshold.
        """
        limit = self.worker.memory_manager.memory_limit if self.worker is not None else None
        if not limit or self.shed_at is False or not len(self.cache):
            return False
        if self.worker.monitor.get_process_memory() <= self.shed_at * limit:
            return False
        self.cache.clear()
        self._count("sheds")
        return True

    async def _follow_moves(self) -> None:
        """Every :data:`STORE_REFRESH_MS` ms: refresh the store (in a thread) and drop what is cached of moved ids."""
        if self._store is not None:
            await asyncio.to_thread(self.follow_moves)

    def follow_moves(self) -> int:
        """Load new index commits; drop the cached latents and pictures of ids that moved since the last load
        (counted in ``invalidated``). Returns how many cache entries were dropped; a store that does not answer
        drops nothing (the next call catches up)."""
        store = self._store
        if store is None:
            return 0
        try:
            store.refresh()
        except StoreUnavailableError:
            return 0
        # since the version this last looked at, not since this refresh: reads refresh the store too
        followed, self._followed = self._followed, store.version
        moved = set(store.moved_since(followed))
        if not moved:
            return 0
        keys = [k for k in self.cache.image_keys() if cache_key_id(k) in moved]
        dropped = self.cache.discard([*keys, *moved])
        self._count("invalidated", dropped)
        return dropped

    # ------------------------------------------------------------------------------------------ work
    def model_for(self, image_id: str) -> LatentAutoencoder:
        """The decoder of ``image_id`` (the plugin's model, else the one recorded in its array), loaded once."""
        from latentzarr.models import load_model

        name = self.model or self.store.record(image_id)["model"]
        with self._mutex:
            if name not in self._models:
                self._models[name] = load_model(name, device=self.device)
            return self._models[name]

    def batcher_for(self, image_id: str) -> DecodeBatcher:
        """The decode batcher of ``image_id``'s model."""
        from latentzarr.cluster.batcher import DecodeBatcher

        model = self.model_for(image_id)
        with self._mutex:
            if model.name not in self._batchers:
                # With one task thread no companion request can arrive while a decode waits: do not wait.
                wait = self.max_wait_ms if self.worker.state.nthreads > 1 else 0.0
                self._batchers[model.name] = DecodeBatcher(
                    lambda x: model.decode(x, batch_size=len(x)), max_batch=self.max_batch, max_wait_ms=wait)
            return self._batchers[model.name]

    def fetch_latent(self, image_id: str) -> tuple[EncodedLatent, float]:
        """Read ``image_id``'s stored chunk (compressed) from the store; returns (chunk, fetch ms)."""
        t0 = time.perf_counter()
        try:
            latent = self.store.get_encoded(image_id)
        except KeyError:
            self.store.refresh()  # committed after this worker opened the store?
            latent = self.store.get_encoded(image_id)
        self._count("store_fetches")
        self._modelled_get(latent.nbytes, t0)
        return latent, (time.perf_counter() - t0) * 1000

    def _modelled_get(self, nbytes: int, t0: float) -> None:
        """Sleep what the GET latency model adds to a GET of ``nbytes`` that started at ``t0``."""
        if self._latency is not None:
            ms = self._latency.wait(nbytes, already_ms=(time.perf_counter() - t0) * 1000)
            with self._mutex:
                self._get_ms += ms

    @property
    def images(self) -> Any:
        """The image store (:class:`~latentzarr.replay.ImageObjectStore`) of PNG objects, opened at first use."""
        if self._images is None:
            if not self.image_store:
                raise LatentZarrError("Expected an image store for this worker. Got none; register the plugin with "
                                      "image_store=... (a folder or URL of PNG objects).")
            from latentzarr.replay.stores import ImageObjectStore

            self._images = ImageObjectStore(self.image_store, self.image_storage_options)
        return self._images

    def fetch_image(self, image_id: str) -> tuple[bytes, float]:
        """Read ``image_id``'s PNG object from the image store (one GET, modelled latency); (bytes, fetch ms)."""
        t0 = time.perf_counter()
        data = self.images.get(image_id)
        self._count("image_fetches")
        self._modelled_get(len(data), t0)
        return data, (time.perf_counter() - t0) * 1000

    def render(self, image_id: str, rendition: Rendition, owner: str | None) -> bytes:
        """Serve one read that missed the owner's image tier: latent (cache or store) -> decode -> encode.

        Runs in a task thread, on the owner or, after stealing, on another worker; either way the latent and
        the picture are offered to the *owner's* cache, so each id is cached on one worker only.
        """
        from latentzarr.models.images import Rendition, render_image

        self._count("reads")
        if self.mode == "imgstore":
            return self._render_stored(image_id, rendition, owner)
        here = self.worker.address
        remote = owner is not None and owner != here
        if remote:
            self._count("spilled")
        key = cache_key(image_id, rendition)
        version = self._store.version if self._store is not None else -1
        cached = None if remote else self.cache.peek_image(key)  # finished by a read that ran before this one
        if cached is not None:
            return cached
        source = cache_key(image_id, Rendition()) if self.keep_source else None
        picture = None if remote or source == key else self.cache.peek_image(source)
        if picture is not None:  # another rendition of this id is cached with its full-size picture
            data = render_image(_png_pixels(picture), rendition)
            self._count("resized")
            if self._store is None or image_id not in self._store.moved_since(version):
                self._admit(image_id, key, data, None, None, None)
            return data
        # The latent tier keeps the stored chunk, compressed (1.2-1.6x more latents per byte); unpacking it
        # costs < 1 ms, and it travels to a spilled read's worker in that form too.
        latent = self._owner_call(owner, "latentzarr_latent", image_id=image_id) if remote \
            else self.cache.get_latent(image_id)
        fetch_ms = None
        if latent is None:
            latent, fetch_ms = self.fetch_latent(image_id)
        t0 = time.perf_counter()
        pixels = self.batcher_for(image_id).decode(unpack_latent(image_id, latent))
        decode_ms = (time.perf_counter() - t0) * 1000
        self._count("decodes")
        data = render_image(pixels, rendition)
        if self._store is not None and image_id in self._store.moved_since(version):
            return data  # the id moved while this read ran: what it decoded may be the old latent, so cache nothing
        if remote:
            self._owner_call(owner, "latentzarr_admit", image_id=image_id, key=key, image=to_serialize(data),
                             latent=to_serialize(latent) if fetch_ms is not None else None,
                             decode_ms=decode_ms, fetch_ms=fetch_ms)
        else:
            self._admit(image_id, key, data, latent if fetch_ms is not None else None, decode_ms, fetch_ms)
            if source is not None and source != key and self.cache.where(key) == "image":  # promoted just now
                self._admit(image_id, source, render_image(pixels, Rendition()), None, None, None)
        return data

    def _render_stored(self, image_id: str, rendition: Rendition, owner: str | None) -> bytes:
        """``imgstore`` mode: the stored PNG object, no decode; admitted to the owner's LRU of PNG bytes."""
        from latentzarr.models.images import Rendition

        if rendition.token != Rendition().token:
            raise LatentZarrError(f"Expected a full-size PNG read from an imgstore worker. Got {rendition.token!r} "
                                  "instead; the image store holds PNGs only.")
        key = cache_key(image_id, rendition)
        remote = owner is not None and owner != self.worker.address
        if remote:
            self._count("spilled")
        elif (cached := self.cache.peek_image(key)) is not None:
            return cached
        data, fetch_ms = self.fetch_image(image_id)
        if remote:
            self._owner_call(owner, "latentzarr_admit", image_id=image_id, key=key, image=to_serialize(data),
                             fetch_ms=fetch_ms)
        else:
            self._admit(image_id, key, data, None, None, fetch_ms)
        return data

    def warm(self, ids: list[str], *, latency_seed: int | None = None) -> dict[str, Any]:
        """Serve warm-up reads of full-size PNGs in bulk, in order, through this worker's cache; returns counts.

        Each read takes the live path's cache steps (image-tier lookup, then latent-tier lookup, admission of the
        fetched latent and of the picture, promotion, tuning), so the cache ends in the state the same reads
        served one by one would leave, with real bytes: but nothing is slept or decoded. The picture admitted is
        the id's PNG object from the image store (the same decoder's output, as ``build_image_store`` wrote it);
        each object is read once per call. The tuner sees the decode time measured here once and fetch times
        drawn from the GET latency model (stream ``latency_seed``), not slept. Counted in ``warmup_requests``.
        """
        from latentzarr.models.images import Rendition

        png = Rendition.parse("png", None, None)
        latents: dict[str, Any] = {}
        pictures: dict[str, bytes] = {}
        model = None if self._latency is None else self._latency.with_stream(str(self.worker.name),
                                                                             seed=latency_seed)
        decode_ms = self._measure_decode_ms(ids[0]) if ids and self.mode != "imgstore" else None

        def fetch_ms(nbytes: int) -> float:
            return model.draw(nbytes) if model is not None else 0.0

        def picture(image_id: str) -> bytes:
            if image_id not in pictures:
                pictures[image_id] = self.images.get(image_id)
            return pictures[image_id]

        for image_id in ids:
            key = cache_key(image_id, png)
            if self.cache.get_image(key) is not None:
                continue
            if self.mode == "imgstore":
                data = picture(image_id)
                self._admit(image_id, key, data, None, None, fetch_ms(len(data)))
                continue
            latent = self.cache.get_latent(image_id)
            fetched = latent is None
            if fetched:
                if image_id not in latents:
                    latents[image_id] = self.store.get_encoded(image_id)
                latent = latents[image_id]
            self._admit(image_id, key, picture(image_id), latent if fetched else None, decode_ms,
                        fetch_ms(latent.nbytes) if fetched else None)
        self._count("warmup_requests", len(ids))
        return {"requests": len(ids), "objects": len(set(ids)), "decode_ms": decode_ms}

    def _measure_decode_ms(self, image_id: str) -> float:
        """Decode time (ms) of one latent of ``image_id``'s kind on this worker (the decoder warmed first)."""
        latent = unpack_latent(image_id, self.store.get_encoded(image_id))
        batcher = self.batcher_for(image_id)
        batcher.decode(latent)
        t0 = time.perf_counter()
        batcher.decode(latent)
        return (time.perf_counter() - t0) * 1000

    def _admit(self, image_id: str, key: str | None, image: bytes | None, latent: Any,
               decode_ms: float | None, fetch_ms: float | None, *, remote: bool = False) -> bool:
        from latentzarr.errors import ObjectTooLargeError

        if remote:
            self._count("writebacks")
        if decode_ms is not None:
            self.cache.record_decode_ms(decode_ms)
        if fetch_ms is not None:
            self.cache.record_fetch_ms(fetch_ms)
        kept = False
        try:
            if latent is not None:
                kept |= self.cache.put_latent(image_id, latent, latent.nbytes)
            if image is not None and key is not None:
                kept |= self.cache.offer_image(key, image, len(image), latent_id=image_id)
        except ObjectTooLargeError:
            return False  # larger than this worker's whole cache: serve it uncached
        return kept

    def _owner_call(self, owner: str, handler: str, **kwargs: Any) -> Any:
        """Call ``handler`` on the owner worker from a task thread (blocking).

        Returns None when the owner cannot be reached within :data:`OWNER_TIMEOUT_S` (it died or restarted):
        the read then goes on without the owner's cache, which is only an optimisation.
        """
        async def call() -> Any:
            return await asyncio.wait_for(getattr(self.worker.rpc(owner), handler)(**kwargs), OWNER_TIMEOUT_S)

        try:
            return sync(self.worker.loop, call)
        except (TimeoutError, OSError, CommClosedError):
            self._count("owner_unreachable")
            return None

    def _count(self, name: str, n: int = 1) -> None:
        with self._mutex:
            self.counters[name] += n

    def stats(self) -> dict[str, Any]:
        """Cache counters and state, plus this worker's reads, decodes, store fetches, spilled reads, write-backs."""
        out = self.cache.stats()
        with self._mutex:
            out.update(self.counters)
            out["get_latency_ms"] = self._get_ms
        out["mode"] = self.mode
        out["queue_depth"] = sum(b.queue_depth for b in self._batchers.values())
        out["decode_batches"] = sum(b.batches for b in self._batchers.values())
        out["decode_wait_ms"] = sum(b.wait_ms for b in self._batchers.values())
        out["decoded"] = sum(b.decoded for b in self._batchers.values())
        out["worker"] = self.worker.address if self.worker else None
        out["worker_name"] = str(self.worker.name) if self.worker else None
        return out


def unpack_latent(image_id: str, latent: EncodedLatent) -> np.ndarray:
    """Decode a stored chunk (:class:`~latentzarr.store.EncodedLatent`) of ``image_id``; damage names the id.

    Raises :class:`~latentzarr.errors.CorruptDataError` (not retryable) naming ``image_id`` when the chunk fails
    its CRC-32 or does not decode.
    """
    try:
        return latent.decode()
    except CorruptDataError as exc:
        raise CorruptDataError(f"Expected an intact stored latent for image id {image_id!r}. Got a damaged chunk "
                               f"instead ({exc}). Restore its shard from a backup, or re-ingest the image.") from exc


def _png_pixels(data: bytes) -> np.ndarray:
    """uint8 (H, W, 3) pixels of PNG bytes."""
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def cache_key(image_id: str, rendition: Rendition) -> str:
    """Image-tier key of ``image_id`` in ``rendition``."""
    return f"{image_id}\x00{rendition.token}"


def cache_key_id(key: object) -> str | None:
    """The image id of an image-tier key made by :func:`cache_key` (None for any other key)."""
    return key.split("\x00", 1)[0] if isinstance(key, str) else None


def get_latentzarr_plugin() -> LatentWorkerPlugin:
    """The latentzarr plugin of the worker running the current task.

    Raises :class:`PluginMissingError` (saying how to fix it) outside a worker or when it is not registered.
    """
    try:
        worker = get_worker()
    except ValueError as exc:
        raise PluginMissingError(
            "Expected to run inside a Dask worker task. Got no worker; submit this function with client.submit."
        ) from exc
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None:
        raise PluginMissingError(
            f"Expected the {PLUGIN_NAME!r} worker plugin on {worker.address}. Got none instead; register it with "
            "client.register_plugin(LatentWorkerPlugin(store_url)) or create the client with "
            "latentzarr.start_cluster(store_url)."
        )
    return plugin
