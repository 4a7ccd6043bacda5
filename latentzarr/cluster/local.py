"""Start a local Dask cluster ready for latentzarr: GPU workers when there are GPUs, CPU processes otherwise.

Settings that serving needs and Dask does not default to:

* work stealing every 20 ms instead of 1 s (stealing is the spillover; a burst would wait up to a second);
* worker memory limits that include the cache budget (plugin memory counts as *unmanaged* memory, and a worker
  whose cache pushes it over its limit gets paused and restarted, losing the cache);
* the GPU as a worker resource (``resources={"GPU": 1}``) for batch work only: loosely restricted reads never
  carry resource restrictions (with distributed 2026.8 the stealer moves them to workers without the resource,
  which then fail).
"""

from __future__ import annotations

import logging
from typing import Any

import dask

from latentzarr.cluster.plugin import DEFAULT_CACHE_BYTES, LatentWorkerPlugin
from latentzarr.cluster.spawn_guard import refuse_unguarded_start

__all__ = ["gpu_count", "local_cluster", "start_cluster"]

log = logging.getLogger(__name__)

WORKER_BASE_MEMORY = 2 * 2**30
"""Bytes a worker needs besides its cache: model weights, a decode batch, Python (generous for taef2)."""

SERVING_CONFIG = {
    "distributed.scheduler.work-stealing-interval": "20ms",
    "distributed.scheduler.unknown-task-duration": "100ms",
}


def gpu_count() -> int:
    """Number of CUDA GPUs torch can use (0 without torch/CUDA)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - broken CUDA installs
        return 0


def local_cluster(*, n_workers: int | None = None, threads_per_worker: int = 2,
                  cache_bytes: int = DEFAULT_CACHE_BYTES, memory_limit: int | None = None,
                  gpu: bool | None = None, dashboard_address: str = ":0", **kwargs: Any):
    """A ``LocalCUDACluster`` (one worker per GPU, ``resources={"GPU": 1}``) or a ``LocalCluster`` of processes.

    ``gpu=None`` picks CUDA when dask-cuda and a GPU are present, and falls back to CPU on any failure, logging
    the reason (a warning on the ``latentzarr.cluster.local`` logger; the reason is also kept in the returned
    cluster's ``latentzarr_fallback`` attribute, None when nothing fell back). ``gpu=True`` raises instead of
    falling back (:class:`RuntimeError` when no GPU is visible); ``gpu=False`` never tries CUDA.
    ``memory_limit`` is the per-worker limit (bytes) *besides* the cache (default :data:`WORKER_BASE_MEMORY`).
    The dashboard (when bokeh is installed) takes a free port unless ``dashboard_address`` says otherwise.

    Raises :class:`~latentzarr.cluster.spawn_guard.SpawnedImportError` at once, before any process starts, when
    called from a script's top level outside ``if __name__ == "__main__":`` (every worker would re-run it).
    """
    refuse_unguarded_start()
    limit = (memory_limit or WORKER_BASE_MEMORY) + cache_bytes
    common = {"threads_per_worker": threads_per_worker, "memory_limit": limit,
              "dashboard_address": dashboard_address, **kwargs}
    reason = None
    with dask.config.set(SERVING_CONFIG):
        gpus = gpu_count() if gpu is not False else 0
        if gpu and not gpus:
            raise RuntimeError("Expected a CUDA GPU for gpu=True. Got none visible to torch instead; pass gpu=None "
                               "to fall back to CPU workers.")
        if gpus:
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError as exc:
                if gpu:
                    raise
                reason = f"dask-cuda is not installed ({exc}); pip install 'latentzarr[gpu]'"
            else:
                try:
                    return LocalCUDACluster(n_workers=n_workers, resources={"GPU": 1}, **common)
                except Exception as exc:  # NVML missing, driver mismatch...
                    if gpu:
                        raise
                    reason = f"LocalCUDACluster failed: {type(exc).__name__}: {exc}"
            log.warning("%s; falling back to a CPU LocalCluster", reason)
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=n_workers or 2, processes=True, **common)
        cluster.latentzarr_fallback = reason
        return cluster


def start_cluster(store_url: str, *, address: str | None = None, n_workers: int | None = None,
          threads_per_worker: int = 2, cache_bytes: int = DEFAULT_CACHE_BYTES, gpu: bool | None = None,
          spill: bool = True, storage_options: dict | None = None, **plugin_options: Any):
    """Connect to ``address`` (or start :func:`local_cluster`), register the plugin, return a LatentClient.

    The returned client's ``close()`` also closes a cluster it started.
    """
    from distributed import Client

    from latentzarr.cluster.client import LatentClient

    if address is None:
        torch_threads = plugin_options.pop("torch_threads", threads_per_worker)
        cluster = local_cluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                cache_bytes=cache_bytes, gpu=gpu)
        client = Client(cluster)
    else:
        torch_threads = plugin_options.pop("torch_threads", None)
        cluster, client = None, Client(address)
    client.register_plugin(LatentWorkerPlugin(store_url, storage_options=storage_options, cache_bytes=cache_bytes,
                                              torch_threads=torch_threads, **plugin_options))
    return LatentClient(client, spill=spill, owns_cluster=cluster)
