"""``batch_decode``: decode a selection of ids into a training set (Zarr uint8 arrays or image shards).

Two ways to run, same output bytes on the same decoder setup:

* **local** (no client): a pipelined loop in this process. A reader thread prefetches the next chunks' latents
  (store read + decompression) and a writer thread encodes and writes finished chunks, while the calling thread
  decodes; torch uses the cores for the decode, so I/O hides behind compute.
* **cluster** (``client`` given): a dask graph of one ``dask.delayed`` task per output chunk (read ``batch_size``
  latents -> decode -> write that chunk's region and marker), computed on the cluster. Tasks decode with the
  worker plugin's model when the plugin serves this store (:func:`~latentzarr.cluster.get_latentzarr_plugin`),
  else with a model loaded once per worker process. When every worker has a ``GPU`` resource the tasks ask for
  ``resources={"GPU": 1}`` (no worker restrictions, so stealing never moves them to a worker without a GPU).

Finished chunks are recorded durably (see :mod:`latentzarr.batch.output`), so a re-run after an interruption
decodes only the missing chunks.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from latentzarr.batch.output import BatchOutput
from latentzarr.batch.plan import Chunk, check_batch_size, plan_selection

if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.models import LatentAutoencoder
    from latentzarr.store import LatentStore

__all__ = ["BatchReport", "batch_decode", "decode_chunk_task", "decode_ids_task", "decode_tasks", "open_source"]


@dataclass
class BatchReport:
    """What one :func:`batch_decode` call did.

    Attributes
    ----------
    out : str
        Output location.
    images : int
        Images decoded by this call (finished chunks skipped on a resume are not counted).
    total_images : int
        Images in the selection.
    seconds : float
        Wall time of the decode phase (s), from the first read to the last write.
    chunks, skipped_chunks : int
        Chunks in the selection; chunks already finished by an earlier run (not redone).
    arrays : dict
        Output array name -> number of images (one output array per source array).
    decode_seconds : float
        Seconds spent inside ``model.decode``, summed over chunks (and over workers on a cluster). Divided by
        ``seconds`` (times the number of decoding slots on a cluster) it is the share of time the decoder was
        busy: near 1 when reads, decompression and writes hide behind compute.
    """

    out: str
    images: int
    total_images: int
    seconds: float
    chunks: int
    skipped_chunks: int
    arrays: dict[str, int] = field(default_factory=dict)
    decode_seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Decoded images per second of wall time (0 when nothing was decoded)."""
        return self.images / self.seconds if self.images and self.seconds > 0 else 0.0


def open_source(store_or_url: LatentStore | str, storage_options: dict[str, Any] | None = None) -> LatentStore:
    """A :class:`LatentStore` given one or its URL (opened read-only)."""
    from latentzarr.store import LatentStore

    if isinstance(store_or_url, LatentStore):
        return store_or_url
    return LatentStore.open(str(store_or_url), mode="r", storage_options=storage_options)


def batch_decode(store_or_url: LatentStore | str, out: str, *, ids: Iterable[str] | None = None,
                 client: Any = None, batch_size: int = 8, format: str = "zarr", quality: int | None = None,
                 progress: bool = True, model: LatentAutoencoder | str | None = None, prefetch: int = 2,
                 storage_options: dict[str, Any] | None = None,
                 out_storage_options: dict[str, Any] | None = None) -> BatchReport:
    """Decode ``ids`` (default: every id) of a latent store into a training set at ``out``; resumable.

    Parameters
    ----------
    store_or_url
        A :class:`~latentzarr.store.LatentStore` or its URL.
    out
        Output folder or fsspec URL (see :mod:`latentzarr.batch.output` for the layout). A selection that spans
        several source arrays (models or latent shapes) gets one output array (or shard folder) per source
        array, named after it; each keeps its ids in selection order (Zarr attribute ``image_id``).
    ids
        Selection, in output order; None for every committed id.
    client
        A ``distributed.Client`` (or :class:`~latentzarr.cluster.LatentClient`) to run on; None decodes in
        this process.
    batch_size
        Images per chunk: one task, one forward pass, one output chunk ``(batch_size, H, W, 3)``. Part of the
        decoder setup (results are bit-exact for a fixed batch size), so a resume must use the same one.
    format
        ``"zarr"`` (uint8 arrays) or ``"png"``/``"webp"``/``"jpeg"`` (one tar shard of encoded images per chunk).
    quality
        Encoder quality for webp/jpeg.
    progress
        Show a tqdm progress bar (images).
    model
        Decoder: a loaded model, or a name for :func:`~latentzarr.models.load_model`; None uses the model
        recorded with each source array. On a cluster a loaded model is reloaded on the workers by its name.
    prefetch
        Local run: chunks read ahead of the decode (and written behind it) by helper threads.
    storage_options, out_storage_options
        fsspec options for the store URL and for ``out``.

    Returns
    -------
    BatchReport

    Raises
    ------
    UnknownIdError, InvalidIdError, DuplicateIdError
        A bad id in ``ids`` (raised before any work starts).
    ValueError
        Empty selection, bad batch size or format.
    FileExistsError
        ``out`` holds something other than a batch-decode output.
    BatchOutputError
        ``out`` holds a batch decode made with another batch size, format or selection.
    """
    batch_size = check_batch_size(batch_size)
    if prefetch < 1:
        raise ValueError(f"Expected prefetch >= 1. Got {prefetch!r} instead.")
    store = open_source(store_or_url, storage_options)
    output = BatchOutput(out, format=format, quality=quality, storage_options=out_storage_options)
    arrays = plan_selection(store, ids)
    done = output.prepare(arrays, batch_size=batch_size, source=store.url)
    all_chunks = [c for a in arrays for c in a.chunks(batch_size)]
    todo = [c for c in all_chunks if c.key not in done]
    models = {a.name: (model if model is not None else a.model) for a in arrays}
    from tqdm.auto import tqdm

    total = sum(len(a.ids) for a in arrays)
    bar = tqdm(total=sum(len(c.ids) for c in todo), disable=not progress, unit="img", desc="batch-decode")
    if client is None and todo:  # load decoders before the clock starts
        models = {name: _load(spec) for name, spec in models.items()}
    busy = [0.0]

    def advance(images: int, decode_s: float) -> None:
        bar.update(images)
        busy[0] += decode_s

    t0 = time.perf_counter()
    try:
        if client is None:
            _run_local(store, output, todo, models, batch_size, prefetch, advance)
        else:
            _run_cluster(getattr(client, "client", client), store, output, todo, models, batch_size, advance,
                         storage_options)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return BatchReport(out=output.url, images=sum(len(c.ids) for c in todo), total_images=total, seconds=seconds,
                       chunks=len(all_chunks), skipped_chunks=len(all_chunks) - len(todo),
                       arrays={a.name: len(a.ids) for a in arrays}, decode_seconds=busy[0])


# ---------------------------------------------------------------------------------------------- local run
_PROCESS: dict[Any, Any] = {}  # per-process caches: ("store", url) and ("model", name)
_PROCESS_LOCK = threading.Lock()


def _load(spec: Any) -> Any:
    """A loaded model given one or a name (names are loaded once per process)."""
    if not isinstance(spec, str):
        return spec
    with _PROCESS_LOCK:
        if ("model", spec) not in _PROCESS:
            from latentzarr.models import load_model

            _PROCESS[("model", spec)] = load_model(spec)
        return _PROCESS[("model", spec)]


def _run_local(store: LatentStore, output: BatchOutput, todo: list[Chunk], models: dict[str, Any],
               batch_size: int, prefetch: int, advance: Callable[[int, float], Any]) -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="batch-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="batch-write") as writer:
        reads: deque[Future] = deque(reader.submit(store.get, list(c.ids)) for c in todo[:prefetch])
        writes: deque[tuple[Future, int, float]] = deque()  # (write, images, decode s)
        for n, chunk in enumerate(todo):
            latents = reads.popleft().result()
            if n + prefetch < len(todo):
                reads.append(reader.submit(store.get, list(todo[n + prefetch].ids)))
            t0 = time.perf_counter()
            pixels = decode_checked(models[chunk.array], latents, batch_size, chunk)
            writes.append((writer.submit(output.write, chunk, pixels), len(chunk.ids), time.perf_counter() - t0))
            while len(writes) > prefetch or (writes and writes[0][0].done()):
                fut, count, decode_s = writes.popleft()
                fut.result()
                advance(count, decode_s)
        while writes:
            fut, count, decode_s = writes.popleft()
            fut.result()
            advance(count, decode_s)


def decode_checked(model: Any, latents: np.ndarray, batch_size: int, chunk: Chunk | None = None) -> np.ndarray:
    """``model.decode(latents, batch_size)``, checked to give uint8 (n, 8h, 8w, 3)."""
    pixels = model.decode(latents, batch_size=batch_size)
    n, _, h, w = latents.shape
    from latentzarr.batch.plan import DOWNSCALE

    if pixels.shape != (n, h * DOWNSCALE, w * DOWNSCALE, 3) or pixels.dtype != np.uint8:
        where = f" of chunk {chunk.key}" if chunk else ""
        raise ValueError(f"Expected decoded images{where} as uint8 {(n, h * DOWNSCALE, w * DOWNSCALE, 3)}. Got "
                         f"{pixels.dtype} {pixels.shape} instead; the model's downscale factor is not supported.")
    return pixels


# ---------------------------------------------------------------------------------------------- cluster run
def _gpu_resources(client: Any) -> dict[str, int] | None:
    """``{"GPU": 1}`` when every worker has a GPU resource, else None (no restriction at all)."""
    workers = client.scheduler_info(n_workers=-1)["workers"] if _takes_n_workers(client) \
        else client.scheduler_info()["workers"]
    if workers and all(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers.values()):
        return {"GPU": 1}
    return None


def _takes_n_workers(client: Any) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def decode_tasks(store_url: str, output: BatchOutput, chunks: list[Chunk], models: dict[str, Any],
                 batch_size: int, *, storage_options: dict[str, Any] | None = None,
                 token: str | None = None) -> list[Any]:
    """The dask graph of a batch decode: one ``dask.delayed`` task per chunk (read -> decode -> write).

    Each task returns (images written, seconds spent decoding). Keys are ``latentzarr-batch-<token>-<array>-<index>``
    (a fresh token per call unless given, so a retry never collides with an old result).
    """
    import dask

    token = token or uuid.uuid4().hex[:12]
    task = dask.delayed(decode_chunk_task, pure=False)
    return [task(store_url, storage_options, output, chunk, _model_name(models[chunk.array]), batch_size,
                 dask_key_name=f"latentzarr-batch-{token}-{chunk.array}-{chunk.index}")
            for chunk in chunks]


def _model_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else spec.name


def _run_cluster(client: Any, store: LatentStore, output: BatchOutput, todo: list[Chunk],
                 models: dict[str, Any], batch_size: int, advance: Callable[[int, float], Any],
                 storage_options: dict[str, Any] | None) -> None:
    from distributed import as_completed

    if not todo:
        return
    tasks = decode_tasks(store.url, output, todo, models, batch_size, storage_options=storage_options)
    futures = client.compute(tasks, resources=_gpu_resources(client))
    try:
        for fut in as_completed(futures):
            advance(*fut.result())
    finally:
        client.cancel(futures)


# ---------------------------------------------------------------------------------------------- worker side
def _worker_store(url: str, storage_options: dict[str, Any] | None) -> LatentStore:
    key = ("store", url)
    with _PROCESS_LOCK:
        if key not in _PROCESS:
            _PROCESS[key] = open_source(url, storage_options or None)
        return _PROCESS[key]


def _worker_model(store_url: str, model: str, first_id: str) -> Any:
    """The plugin's decoder when the plugin serves this store and model, else one loaded per process."""
    from latentzarr.cluster.plugin import PluginMissingError, get_latentzarr_plugin

    try:
        plugin = get_latentzarr_plugin()
    except PluginMissingError:
        plugin = None
    if plugin is not None and plugin.store_url == store_url and plugin.model in (None, model):
        found = plugin.model_for(first_id)
        if found.name == model:
            return found
    return _load(model)


def decode_ids_task(store_url: str, storage_options: dict[str, Any] | None, ids: tuple[str, ...], model: str,
                    batch_size: int) -> np.ndarray:
    """Worker task: read ``ids`` (one array) and decode them; returns uint8 (n, H, W, 3)."""
    return _read_decode(store_url, storage_options, ids, model, batch_size)[0]


def _read_decode(store_url: str, storage_options: dict[str, Any] | None, ids: tuple[str, ...], model: str,
                 batch_size: int) -> tuple[np.ndarray, float]:
    store = _worker_store(store_url, storage_options)
    latents = np.stack(store.get_many(list(ids)))  # one array when planned; a rewrite since may have split them
    decoder = _worker_model(store_url, model, ids[0])
    t0 = time.perf_counter()
    return decode_checked(decoder, latents, batch_size), time.perf_counter() - t0


def decode_chunk_task(store_url: str, storage_options: dict[str, Any] | None, output: BatchOutput, chunk: Chunk,
                      model: str, batch_size: int) -> tuple[int, float]:
    """Worker task: decode one chunk and write it (data, then marker); returns (images, seconds decoding)."""
    pixels, decode_s = _read_decode(store_url, storage_options, chunk.ids, model, batch_size)
    output.write(chunk, pixels)
    return len(chunk.ids), decode_s


