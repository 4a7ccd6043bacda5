"""Replay a trace window against five serving configurations on one store, with injected store latency.

Configurations (same store backend, same total cache budget, same injected latency distribution and seed):

==============  ============================================================================================
``decode-all``  no cache: every read fetches the latent (injected latency) and decodes it
``imgstore``    PNG objects in the same backend, an LRU image cache (:class:`~latentzarr.cache.LRUImageCache`)
                of PNG bytes; a miss fetches the PNG object (injected latency), no decode
``image-only``  latent store, :meth:`DualFormatCache.image_only` (decoded PNGs cached)
``latent-only`` latent store, :meth:`DualFormatCache.latent_only` (stored chunks cached; a hit decodes)
``adaptive``    latent store, :class:`~latentzarr.cache.DualFormatCache` with the marginal-hit tuner
==============  ============================================================================================

The serving path of each configuration mirrors the worker plugin's (:meth:`LatentWorkerPlugin.render`): image
tier, then latent tier, then the store; decodes go through one decoder at a time (one accelerator), and concurrent
misses of one id coalesce into one fetch and decode. It runs in this process (threads), not through a Dask cluster:
the figures measure caching, store latency and decode, without the scheduler's ~10 ms per task.

Requests arrive open-loop at the trace's own times divided by a speed-up, at most ``in_flight`` at once; a
request's latency runs from its scheduled arrival to its answer (queueing included).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latentzarr.errors import LatentZarrError, ObjectTooLargeError
from latentzarr.replay.latency import LatencyInjector, parse_latency
from latentzarr.replay.stores import ImageObjectStore, disk_bytes, image_store_path

if TYPE_CHECKING:
    from latentzarr.store import EncodedLatent

__all__ = ["CONFIGS", "OUTCOMES", "format_table", "map_window", "plot_cdf", "replay_trace"]

CONFIGS: tuple[str, ...] = ("decode-all", "imgstore", "image-only", "latent-only", "adaptive")
"""The replayed configurations, in report order."""
_WARMUP_SEED = 1_000_003
"""Offset of the warm-up's latency seed from the window's."""
OUTCOMES: tuple[str, ...] = ("image_hit", "latent_hit", "miss", "coalesced")
"""Per-request outcomes; their counts add up to the requests replayed. ``coalesced``: waited for a concurrent
read of the same id (no fetch, no decode of its own)."""


def map_window(trace: Any, ids: Sequence[str], *, start: int = 0, requests: int = 1000) -> tuple[list[str], np.ndarray]:
    """Requests ``start .. start+requests`` of ``trace`` mapped onto the store's ``ids``; and their times (s).

    Objects of the window are ranked by their request count in the window (most requested first, ties by first
    appearance); rank r reads ``ids[r % len(ids)]``, so the most popular objects get distinct ids and the long
    tail folds onto them. Times are seconds from the window's first request.
    """
    if not ids:
        raise LatentZarrError("Expected a store with at least one id. Got an empty store; ingest images first.")
    if requests < 1 or start < 0 or start >= len(trace):
        raise ValueError(f"Expected 0 <= start < {len(trace)} and requests >= 1. Got start={start!r}, "
                         f"requests={requests!r} instead.")
    obj = trace.object_ids[start : start + requests]
    ts = trace.timestamps[start : start + requests]
    uniq, first, inverse, counts = np.unique(obj, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))  # by count descending, then first appearance
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    mapped = [ids[int(r) % len(ids)] for r in rank[inverse]]
    return mapped, np.asarray(ts - ts.min(), dtype=float)


class _Server:
    """One configuration's serving path (thread-safe)."""

    def __init__(self, config: str, *, cache_bytes: int, latent_read: Callable[[str], EncodedLatent],
                 image_read: Callable[[str], bytes], decode: Callable[[np.ndarray], np.ndarray],
                 cache_options: Mapping[str, Any]) -> None:
        from latentzarr.cache import DualFormatCache, LRUImageCache

        self.config = config
        self.latent_read, self.image_read, self.decode = latent_read, image_read, decode
        if config == "decode-all":
            self.cache = None
        elif config == "imgstore":
            self.cache = LRUImageCache(cache_bytes)
        elif config == "image-only":
            self.cache = DualFormatCache.image_only(cache_bytes)
        elif config == "latent-only":
            self.cache = DualFormatCache.latent_only(cache_bytes)
        elif config == "adaptive":
            self.cache = DualFormatCache(cache_bytes, **cache_options)
        else:
            raise ValueError(f"Expected a configuration in {CONFIGS}. Got {config!r} instead.")
        self._lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self.counters = {"store_reads": 0, "decodes": 0}
        self.decode_ms_total = 0.0

    def reset_counters(self) -> None:
        """Zero the store-read and decode counters (after a warm-up); the cache keeps its contents and state."""
        with self._lock:
            self.counters = dict.fromkeys(self.counters, 0)
            self.decode_ms_total = 0.0

    def _count(self, name: str, decode_ms: float = 0.0) -> None:
        with self._lock:
            self.counters[name] += 1
            self.decode_ms_total += decode_ms

    def read(self, image_id: str) -> str:
        """Serve one read; returns its outcome (one of :data:`OUTCOMES`)."""
        if self.cache is not None and self.cache.get_image(image_id) is not None:
            return "image_hit"
        with self._lock:
            fut = self._inflight.get(image_id)
            leader = fut is None
            if leader:
                fut = self._inflight[image_id] = Future()
        if not leader:
            fut.result()
            return "coalesced"
        try:
            outcome = self._work(image_id)
            fut.set_result(outcome)
            return outcome
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        finally:
            with self._lock:
                del self._inflight[image_id]

    def _work(self, image_id: str) -> str:
        from latentzarr.models.images import encode_image

        cache = self.cache
        if self.config == "imgstore":
            t0 = time.perf_counter()
            data = self.image_read(image_id)
            self._count("store_reads")
            cache.record_fetch_ms((time.perf_counter() - t0) * 1000)
            self._admit(lambda: cache.offer_image(image_id, data, len(data)))
            return "miss"
        latent = cache.get_latent(image_id) if cache is not None else None
        outcome = "miss" if latent is None else "latent_hit"
        fetch_ms = None
        if latent is None:
            t0 = time.perf_counter()
            latent = self.latent_read(image_id)
            fetch_ms = (time.perf_counter() - t0) * 1000
            self._count("store_reads")
        t0 = time.perf_counter()
        pixels = self.decode(latent.decode())
        decode_ms = (time.perf_counter() - t0) * 1000  # includes the wait for the decoder
        self._count("decodes", decode_ms)
        data = encode_image(pixels, "png")
        if cache is not None:
            cache.record_decode_ms(decode_ms)
            if fetch_ms is not None:
                cache.record_fetch_ms(fetch_ms)
                self._admit(lambda: cache.put_latent(image_id, latent, latent.nbytes))
            self._admit(lambda: cache.offer_image(image_id, data, len(data), latent_id=image_id))
        return outcome

    @staticmethod
    def _admit(offer: Callable[[], bool]) -> None:
        with contextlib.suppress(ObjectTooLargeError):  # larger than the whole budget: served uncached
            offer()


def _summary(lat_ms: np.ndarray) -> dict[str, float]:
    p50, p95, p99 = np.percentile(lat_ms, [50, 95, 99])
    return {"n": int(lat_ms.size), "mean_ms": float(lat_ms.mean()), "p50_ms": float(p50), "p95_ms": float(p95),
            "p99_ms": float(p99), "max_ms": float(lat_ms.max())}


def _warm(server: _Server, ids: Sequence[str], in_flight: int) -> None:
    """Serve ``ids`` closed-loop (``in_flight`` at once, no pacing, nothing measured): fills the caches and
    gives the adaptive tuner its first windows, as the requests before a window of a long trace would."""
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        for f in [pool.submit(server.read, i) for i in ids]:
            f.result()


def _run_one(server: _Server, ids: Sequence[str], arrivals: np.ndarray, in_flight: int) -> tuple[np.ndarray, list]:
    lat = np.empty(len(ids))
    outcomes: list[str] = [""] * len(ids)

    def one(n: int, due: float) -> None:
        outcomes[n] = server.read(ids[n])
        lat[n] = (time.perf_counter() - due) * 1000

    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        t_start = time.perf_counter()
        futures = []
        for n, offset in enumerate(arrivals):
            due = t_start + float(offset)
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, n, due))
        for f in futures:
            f.result()  # re-raise a failed read
    return lat, outcomes


def replay_trace(store_url: str | os.PathLike[str], trace: Any, *, image_store: str | os.PathLike[str] | None = None,
                 configs: Sequence[str] = CONFIGS, start: int | None = None, requests: int = 1000,
                 warmup: int | None = None, speedup: float | None = None, rate: float | None = 20.0,
                 in_flight: int = 16,
                 latency: str | LatencyInjector = "uniform:100:200", cache_fraction: float = 0.5,
                 cache_options: Mapping[str, Any] | None = None, seed: int = 0, model: str | None = None,
                 torch_threads: int | None = 1, keep_latencies: bool = True) -> dict[str, Any]:
    """Replay a trace window against each configuration of :data:`CONFIGS`; latency (ms) and hit split of each.

    Parameters
    ----------
    store_url
        The :class:`~latentzarr.store.LatentStore` (local path or URL).
    trace
        A :class:`~latentzarr.traces.Trace` (``synth_trace``, ``read_trace``...).
    image_store
        Folder of the PNG objects (default :func:`~latentzarr.replay.stores.image_store_path`); build it with
        :func:`~latentzarr.replay.build_image_store`.
    configs
        Configurations to replay, a subset of :data:`CONFIGS`.
    start, requests
        The window: requests ``start .. start+requests`` of the trace (see :func:`map_window`); ``start`` None
        takes the last ``requests`` requests (a synthetic trace's early requests touch only the first-born objects).
    warmup
        Requests of the trace just before the window (default: ``requests``, as many as the trace has) that every
        configuration serves first, closed-loop and unmeasured, with latencies drawn from another seed: the
        measured window then starts from warm caches and a tuned split, as a window of a long trace does. The
        objects of warm-up and window are mapped onto ids together (:func:`map_window`). 0: cold start.
    speedup, rate
        Arrival times are the trace's divided by ``speedup``; when ``speedup`` is None it is chosen so that the
        window arrives at ``rate`` requests/s on average; both None: all requests due at once (closed loop of
        ``in_flight``).
    in_flight
        Most requests served at once (threads).
    latency
        Store latency injected before every object read (:func:`~latentzarr.replay.parse_latency` text or an
        injector); every configuration starts from the same seed.
    cache_fraction
        Total cache budget of every cached configuration as a fraction of the window's working set (bytes of the
        PNGs of the distinct ids it reads).
    cache_options
        Keyword arguments of the adaptive :class:`~latentzarr.cache.DualFormatCache` (default: a tuning window of
        ``requests // 25`` requests, step 0.05).
    seed
        Seed of the latency generator.
    model
        Decoder (default: the one recorded in the store).
    torch_threads
        ``torch.set_num_threads`` during the replay (restored afterwards); None leaves it.
    keep_latencies
        Put every request's latency (ms) per configuration in the result (``latencies_ms``), for CDF plots.

    Returns
    -------
    dict
        JSON-ready: ``configs`` (per configuration ``mean_ms``, ``p50_ms``, ``p95_ms``, ``p99_ms``, ``image_hit``,
        ``latent_hit``, ``miss``, ``coalesced`` (counts), ``persistent_bytes``, ``cache_bytes``, store reads,
        decodes, ``decode_ms_mean`` (decoder wait plus decode), injected latency), ``bar``, ``window``,
        ``settings``, ``machine``.
    """
    import torch

    from latentzarr.bench._common import machine_info
    from latentzarr.models import load_model
    from latentzarr.store import LatentStore

    unknown = [c for c in configs if c not in CONFIGS]
    if unknown or not configs:
        raise ValueError(f"Expected configurations among {CONFIGS}. Got {list(configs)!r} instead.")
    if in_flight < 1 or not cache_fraction > 0:
        raise ValueError(f"Expected in_flight >= 1 and cache_fraction > 0. Got {in_flight!r}, {cache_fraction!r} "
                         "instead.")
    injector = latency if isinstance(latency, LatencyInjector) else parse_latency(latency, seed)
    store = LatentStore.open(store_url)
    images = ImageObjectStore(image_store if image_store is not None else image_store_path(store_url))
    if start is None:
        start = max(0, len(trace) - requests)
    if warmup is not None and warmup < 0:
        raise ValueError(f"Expected warmup >= 0 requests. Got {warmup!r} instead.")
    warm_n = min(start, requests if warmup is None else warmup)
    mapped, times = map_window(trace, store.ids(), start=start - warm_n, requests=requests + warm_n)
    warm_ids, ids, arrivals = mapped[:warm_n], mapped[warm_n:], times[warm_n:] - times[warm_n:].min()
    span = float(arrivals.max()) if len(arrivals) else 0.0
    if speedup is None and rate is not None and span > 0:
        speedup = rate * span / len(ids)
    arrivals = arrivals / speedup if speedup else np.zeros(len(ids))
    distinct = sorted(set(ids))
    working_set = sum(len(images.get(i)) for i in distinct)
    cache_bytes = max(1, int(cache_fraction * working_set))
    opts = {"window": max(10, len(ids) // 25), "step": 0.05, **dict(cache_options or {})}
    persistent = {"latent": disk_bytes(store_url) if Path(str(store_url)).exists() else None,
                  "imgstore": images.nbytes()}

    name = model or store.record(distinct[0])["model"]
    decoder = load_model(name, device="cpu")
    decode_lock = threading.Lock()

    def decode(latent: np.ndarray) -> np.ndarray:
        with decode_lock:  # one decoder, as one accelerator per worker
            return decoder.decode(latent[None], batch_size=1)[0]

    old_threads = torch.get_num_threads()
    if torch_threads:
        torch.set_num_threads(torch_threads)
    out: dict[str, Any] = {}
    lats: dict[str, list[float]] = {}
    try:
        decode(store.get_one(distinct[0]))  # warm the decoder outside the timed runs
        gate: list[LatencyInjector] = [injector]  # the injector every object read waits on now

        def delayed(read: Callable[[str], Any]) -> Callable[[str], Any]:
            def call(image_id: str) -> Any:
                gate[0].wait()
                return read(image_id)
            return call

        for config in configs:
            gate[0] = injector.fresh(seed + _WARMUP_SEED)  # warm-up draws, then the window's (same in every config)
            server = _Server(config, cache_bytes=cache_bytes, latent_read=delayed(store.get_encoded),
                             image_read=delayed(images.get), decode=decode, cache_options=opts)
            if warm_ids:
                _warm(server, warm_ids, in_flight)
                server.reset_counters()
            inj = gate[0] = injector.fresh()
            t0 = time.perf_counter()
            lat, outcomes = _run_one(server, ids, arrivals, in_flight)
            wall = time.perf_counter() - t0
            row: dict[str, Any] = _summary(lat)
            row.update({o: outcomes.count(o) for o in OUTCOMES})
            row.update(server.counters)
            row["persistent_bytes"] = persistent["imgstore" if config == "imgstore" else "latent"]
            row["cache_bytes"] = 0 if server.cache is None else cache_bytes
            row["decode_ms_mean"] = server.decode_ms_total / row["decodes"] if row["decodes"] else 0.0
            row["injected_reads"] = inj.reads
            row["injected_ms_mean"] = inj.injected_ms / inj.reads if inj.reads else 0.0
            row["wall_s"] = wall
            if server.cache is not None:
                st = server.cache.stats()
                row["alpha_final"] = float(st.get("alpha", 1.0))
            out[config] = row
            lats[config] = lat.tolist()
    finally:
        torch.set_num_threads(old_threads)
    result: dict[str, Any] = {
        "bench": "replay",
        "store": str(store_url),
        "image_store": str(images.path),
        "configs": out,
        "window": {"start": start, "requests": len(ids), "warmup": warm_n, "distinct_ids": len(distinct),
                   "store_ids": len(store),
                   "trace_seconds": span, "speedup": speedup, "arrival_rate_per_s":
                       len(ids) / (span / speedup) if speedup and span > 0 else None,
                   "working_set_bytes": working_set},
        "settings": {"in_flight": in_flight, "latency": injector.spec, "seed": seed, "cache_fraction": cache_fraction,
                     "cache_bytes": cache_bytes, "cache_options": opts, "model": name,
                     "torch_threads": torch_threads, "trace_meta": _jsonable(getattr(trace, "meta", {}))},
        "bar": _bar(out),
        "machine": machine_info(),
    }
    if keep_latencies:
        result["latencies_ms"] = lats
    return result


def _jsonable(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if isinstance(v, str | int | float | bool | list | dict | type(None))}


def _bar(out: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The issue's bar: adaptive beats ImgStore on mean and P99, with at most half its persistent bytes."""
    a, i = out.get("adaptive"), out.get("imgstore")
    if a is None or i is None:
        return {"checked": False}
    half = a["persistent_bytes"] is not None and a["persistent_bytes"] <= 0.5 * i["persistent_bytes"]
    return {"checked": True, "mean_lower": a["mean_ms"] < i["mean_ms"], "p99_lower": a["p99_ms"] < i["p99_ms"],
            "bytes_at_most_half": bool(half),
            "met": bool(a["mean_ms"] < i["mean_ms"] and a["p99_ms"] < i["p99_ms"] and half),
            "mean_ratio_adaptive_over_imgstore": a["mean_ms"] / i["mean_ms"],
            "p99_ratio_adaptive_over_imgstore": a["p99_ms"] / i["p99_ms"],
            "bytes_ratio_latent_over_imgstore": (a["persistent_bytes"] / i["persistent_bytes"]
                                                 if a["persistent_bytes"] is not None else None),
            "published": {"adaptive_mean_ms": 41.2, "imgstore_mean_ms": 49.4, "adaptive_p99_ms": 227.0,
                          "imgstore_p99_ms": 277.0}}


def plot_cdf(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a latency CDF (one line per configuration, log-scale ms) of a :func:`replay_trace` result as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lats = result.get("latencies_ms")
    if not lats:
        raise ValueError("Expected a replay result with latencies_ms. Got none; replay with keep_latencies=True.")
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, values in lats.items():
        a = np.sort(np.asarray(values))
        ax.plot(a, np.arange(1, a.size + 1) / a.size, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("read latency (ms)")
    ax.set_ylabel("fraction of requests")
    s = result.get("settings", {})
    ax.set_title(f"Trace replay, {result['window']['requests']} requests, store latency {s.get('latency')}",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    return out


def format_table(result: Mapping[str, Any]) -> str:
    """A plain-text table of a :func:`replay_trace` result."""
    head = f"{'config':<12}{'mean':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'img':>6}{'lat':>6}{'miss':>6}{'coal':>6}" \
           f"{'persist_B':>12}"
    lines = [head]
    for name, r in result["configs"].items():
        lines.append(f"{name:<12}{r['mean_ms']:>8.1f}{r['p50_ms']:>8.1f}{r['p95_ms']:>8.1f}{r['p99_ms']:>8.1f}"
                     f"{r['image_hit']:>6}{r['latent_hit']:>6}{r['miss']:>6}{r['coalesced']:>6}"
                     f"{r['persistent_bytes'] if r['persistent_bytes'] is not None else '-':>12}")
    return "\n".join(lines)
