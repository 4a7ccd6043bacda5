"""The store at scale: open time, memory, lookups, catalog, ingest and index bytes of a store of N tiny latents.

``bench_scale`` builds (or reuses) a store of ``ids`` tiny latents (``TINY_SHAPE`` float16, smooth random values,
written in batches of ``BATCH`` ids: the batched ingest path), then measures, each in a fresh process so that
nothing is cached in Python (the OS page cache is not dropped):

- ``cold_open_s`` and ``rss_mb_after_open``: ``LatentStore.open`` and the process's resident memory (MB) after it;
- ``lookup_p50_ms`` / ``lookup_p99_ms``: ``store[id]`` of random committed ids after the open;
- ``info_s``, ``open_dataset_s`` (``latentzarr.open_dataset``), ``refresh_noop_ms`` (a refresh with nothing new)
  and ``refresh_lag_s`` (a reader ``lag_commits`` single-id commits behind catches up);
- ``verify_s`` when asked (it re-reads every latent);
- ``single_put_ids_per_s``: ``writers`` threads each putting one id at a time (waiting for each) through one
  group-commit writer (:meth:`LatentStore.writer`) into a fresh scratch store next to the main one, for
  ``single_puts`` ids in all; ``single_put_bytes_per_id`` is that scratch store's bytes (chunks and index) per id,
  against ``batched_bytes_per_id`` of the main store, and ``single_put_bytes_per_id_compacted`` the same after
  ``vacuum(grace=0)`` and ``compact(grace=0)`` (part-filled shards packed, commits merged);
- ``single_put_processes_ids_per_s`` / ``..._bytes_per_id``: the same with ``writers`` processes, each calling
  ``put`` with one id at a time (no group commit: what a service of several processes gets);
- ``index_bytes`` (every object under ``index/``) against ``live_index_bytes`` (one checkpoint of the current
  index: what a fully compacted index would take), and ``index_bytes_compacted`` after ``compact(grace=0)`` at the
  end of the run (which leaves the store compacted).

Figures are only comparable within one machine; the JSON names it (``machine``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BATCH", "TINY_SHAPE", "bench_scale", "build_scale_store", "tiny_latents"]

TINY_SHAPE = (4, 8, 8)
"""(C, h, w) of the benchmark's latents (float16): 512 raw bytes, so the index, not the chunks, dominates."""

BATCH = 1024
"""Ids per put when building the store (the batched ingest path)."""

MODEL = "bench-tiny"


def tiny_latents(start: int, n: int) -> np.ndarray:
    """(n, *TINY_SHAPE) float16 latents for ids ``start .. start + n - 1``: smooth random fields, seeded by id."""
    rng = np.random.default_rng(start)
    base = rng.normal(size=(n, *TINY_SHAPE)).astype(np.float32)
    return np.cumsum(base, axis=-1).astype(np.float16)


def _id(k: int) -> str:
    return f"img-{k:010d}"


def build_scale_store(path: str | os.PathLike[str], ids: int, *, progress: bool = False) -> dict[str, Any]:
    """Create (or grow) the store at ``path`` until it holds ``ids`` ids ``img-0000000000``...; return
    ``{"built_ids", "build_s"}`` (ids added now and the seconds it took; 0 when the store was already big enough)."""
    from latentzarr.store import LatentStore

    path = Path(path)
    store = LatentStore.open(path, mode="a") if path.exists() else LatentStore.create(path)
    have = len(store)
    start = time.perf_counter()
    for lo in range(have, ids, BATCH):
        n = min(BATCH, ids - lo)
        store.put([_id(k) for k in range(lo, lo + n)], tiny_latents(lo, n), model=MODEL)
        if progress and (lo // BATCH) % 100 == 0:
            print(f"  built {lo + n:,} / {ids:,} ids", file=sys.stderr, flush=True)
    return {"built_ids": max(ids - have, 0), "build_s": time.perf_counter() - start}


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


_PROBE = r"""
import json, sys, time, random
t0 = time.perf_counter()
from latentzarr.store import LatentStore
import_s = time.perf_counter() - t0
t0 = time.perf_counter()
store = LatentStore.open(sys.argv[1])
open_s = time.perf_counter() - t0
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None
rss = rss_mb()
n = len(store)
rng = random.Random(0)
ids = [f"img-{rng.randrange(n):010d}" for _ in range(int(sys.argv[2]))]
store[ids[0]]
times = []
for i in ids:
    t = time.perf_counter(); store[i]; times.append((time.perf_counter() - t) * 1e3)
t = time.perf_counter(); store.refresh(); noop = (time.perf_counter() - t) * 1e3
print(json.dumps({"import_s": import_s, "open_s": open_s, "rss_mb": rss, "ids": n, "lookups_ms": times,
                  "refresh_noop_ms": noop}))
"""


def _probe(path: Path, lookups: int) -> dict[str, Any]:
    """Open the store in a fresh interpreter; time the open, read the RSS, time ``lookups`` random reads."""
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path), str(lookups)], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _group_puts(path: Path, writers: int, total: int) -> dict[str, Any]:
    """``writers`` threads, one id per put, through one group-commit writer; rate, bytes per id, commits."""
    import threading

    from latentzarr.store import LatentStore

    if path.exists():
        shutil.rmtree(path)
    store = LatentStore.create(path)
    per = max(total // writers, 1)
    latents = tiny_latents(10**9, per * writers)
    errors: list[BaseException] = []
    with store.writer() as writer:
        def work(w: int) -> None:
            try:
                for k in range(per):
                    writer.put(f"g{w:02d}-{k:08d}", latents[w * per + k], model=MODEL)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    done = per * writers
    if len(LatentStore.open(path)) != done:
        raise AssertionError(f"Expected {done} ids acknowledged by the group writer. Got {len(store)} instead.")
    out = {"single_put_ids": done, "single_put_wall_s": wall, "single_put_ids_per_s": done / wall,
           "single_put_commits": writer.commits, "single_put_bytes_per_id": _dir_bytes(path) / done}
    store.vacuum(grace=0)
    store.compact(grace=0)
    out["single_put_bytes_per_id_compacted"] = _dir_bytes(path) / done
    return out


def _single_putter(url: str, writer: int, n: int, queue: Any) -> None:
    """One writer process: ``n`` puts of one id each; reports (ids acknowledged, seconds)."""
    from latentzarr.store import LatentStore

    store = LatentStore.open(url, mode="a")
    latents = tiny_latents(10**9 + writer * n, n)
    start = time.perf_counter()
    for k in range(n):
        store.put([f"w{writer:02d}-{k:08d}"], latents[k:k + 1], model=MODEL)
    queue.put((n, time.perf_counter() - start))


def _single_puts(path: Path, writers: int, total: int) -> dict[str, Any]:
    from latentzarr.store import LatentStore

    if path.exists():
        shutil.rmtree(path)
    LatentStore.create(path)
    per = max(total // writers, 1)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_single_putter, args=(str(path), w, per, queue)) for w in range(writers)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=3600) for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    put_s = max(r[1] for r in results)  # writers start at slightly different times: the slowest one's span
    check = LatentStore.open(path)
    if len(check) != done:
        raise AssertionError(f"Expected {done} ids acknowledged by the single-id writers. Got {len(check)} instead.")
    return {"single_put_processes_ids": done, "single_put_processes_wall_s": wall,
            "single_put_processes_ids_per_s": done / put_s,
            "single_put_processes_bytes_per_id": _dir_bytes(path) / done}


def _refresh_lag(path: Path, commits: int) -> float:
    """Seconds a reader that is ``commits`` single-id commits behind takes to refresh (the commits go into a copy
    of the main store's index only: a scratch store would not have the main one's index size)."""
    from latentzarr.store import LatentStore

    reader = LatentStore.open(path)
    writer = LatentStore.open(path, mode="a")
    base = len(writer)
    for k in range(commits):
        writer.put([f"lag-{base + k:010d}"], tiny_latents(base + k, 1), model=MODEL)
    start = time.perf_counter()
    reader.refresh()
    return time.perf_counter() - start


def bench_scale(ids: int, *, store: str | os.PathLike[str] | None = None, writers: int = 8,
                single_puts: int = 800, process_puts: int | None = None, lookups: int = 2000,
                lag_commits: int = 100, verify: bool = False,
                workdir: str | os.PathLike[str] | None = None, progress: bool = False) -> dict[str, Any]:
    """Run the scale benchmark; return a JSON-ready dict (keys in the module docstring; seconds, ms, MB, bytes).

    Parameters
    ----------
    ids
        Ids the store must hold (>= 1); a reused store is grown to this many, never shrunk.
    store
        Path of the store to build or reuse (default ``<workdir>/scale-<ids>.zarr``).
    writers
        Concurrent single-id writer processes (>= 1).
    single_puts
        Single-id puts in all, shared by the writer threads.
    process_puts
        Single-id puts in all by the writer processes (default ``single_puts``; 0: skip that measure).
    lookups
        Random ``store[id]`` reads timed after the cold open.
    lag_commits
        Single-id commits a reader is behind when its refresh is timed (they are added to the store: a reused
        store then holds ``lag-*`` ids beyond ``ids``).
    verify
        Also time :meth:`LatentStore.verify` of the whole store.
    workdir
        Folder for the store and the scratch store (default: the current folder).
    """
    from latentzarr.bench._common import machine_info
    from latentzarr.store import LatentStore

    if ids < 1:
        raise ValueError(f"Expected ids >= 1. Got {ids!r} instead.")
    if writers < 1:
        raise ValueError(f"Expected writers >= 1. Got {writers!r} instead.")
    work = Path(workdir) if workdir is not None else Path.cwd()
    path = Path(store) if store is not None else work / f"scale-{ids}.zarr"
    doc: dict[str, Any] = {"ids": ids, "store": str(path), "latent_shape": list(TINY_SHAPE), "dtype": "float16",
                           "batch": BATCH, "writers": writers}
    doc.update(build_scale_store(path, ids, progress=progress))
    main = LatentStore.open(path)
    doc["ids_in_store"] = len(main)
    doc["batched_bytes_per_id"] = _dir_bytes(path) / len(main)
    doc.update(main.index_stats())
    del main
    probe = _probe(path, lookups)
    lat = np.asarray(probe["lookups_ms"])
    doc.update({"cold_open_s": probe["open_s"], "import_s": probe["import_s"], "rss_mb_after_open": probe["rss_mb"],
                "lookup_p50_ms": float(np.percentile(lat, 50)), "lookup_p99_ms": float(np.percentile(lat, 99)),
                "refresh_noop_ms": probe["refresh_noop_ms"]})
    reader = LatentStore.open(path)
    start = time.perf_counter()
    reader.info()
    doc["info_s"] = time.perf_counter() - start
    import latentzarr as lz

    start = time.perf_counter()
    lz.open_dataset(str(path))
    doc["open_dataset_s"] = time.perf_counter() - start
    if verify:
        start = time.perf_counter()
        report = reader.verify()
        doc["verify_s"] = time.perf_counter() - start
        doc["verify_ok"] = report["ok"] == report["checked"]
    doc["refresh_lag_commits"] = lag_commits
    doc["refresh_lag_s"] = _refresh_lag(path, lag_commits) if lag_commits else 0.0
    doc.update(_group_puts(work / f"scale-group-{ids}.zarr", writers, single_puts))
    doc["single_put_vs_batched_bytes"] = doc["single_put_bytes_per_id"] / doc["batched_bytes_per_id"]
    doc["single_put_vs_batched_bytes_compacted"] = (doc["single_put_bytes_per_id_compacted"]
                                                    / doc["batched_bytes_per_id"])
    process_puts = single_puts if process_puts is None else process_puts
    if process_puts:
        doc.update(_single_puts(work / f"scale-singles-{ids}.zarr", writers, process_puts))
    compacted = LatentStore.open(path, mode="a")
    compacted.compact(grace=0)
    stats = compacted.index_stats()
    doc["index_bytes_compacted"], doc["live_index_bytes_at_end"] = stats["index_bytes"], stats["live_index_bytes"]
    doc["machine"] = machine_info()
    return doc


FIELDS = (
    ("ids", "ids", "{:,}"),
    ("cold_open_s", "cold open (s)", "{:.3f}"),
    ("rss_mb_after_open", "RSS after open (MB)", "{:.0f}"),
    ("lookup_p50_ms", "store[id] p50 (ms)", "{:.2f}"),
    ("lookup_p99_ms", "store[id] p99 (ms)", "{:.2f}"),
    ("refresh_noop_ms", "no-op refresh (ms)", "{:.2f}"),
    ("refresh_lag_s", "refresh after lag commits (s)", "{:.3f}"),
    ("info_s", "info() (s)", "{:.3f}"),
    ("open_dataset_s", "open_dataset (s)", "{:.3f}"),
    ("verify_s", "verify() (s)", "{:.1f}"),
    ("single_put_ids_per_s", "single-id puts, group (ids/s)", "{:,.0f}"),
    ("single_put_bytes_per_id", "single-put bytes/id", "{:,.0f}"),
    ("single_put_bytes_per_id_compacted", "  after vacuum + compact", "{:,.0f}"),
    ("single_put_processes_ids_per_s", "single-id puts, processes (ids/s)", "{:,.0f}"),
    ("single_put_processes_bytes_per_id", "  bytes/id", "{:,.0f}"),
    ("batched_bytes_per_id", "batched bytes/id", "{:,.0f}"),
    ("index_bytes", "index bytes", "{:,}"),
    ("live_index_bytes", "live index bytes", "{:,}"),
    ("index_bytes_compacted", "index bytes after compact", "{:,}"),
)
"""(key, label, format) of the printed table."""


def format_table(doc: dict[str, Any]) -> str:
    """The figures of one run as ``label: value`` lines (keys missing from ``doc`` are left out)."""
    return "\n".join(f"{label:32s} {fmt.format(doc[key])}" for key, label, fmt in FIELDS if key in doc)
