"""Start and stop a latentzarr cluster from asynchronous code (an ASGI lifespan, a notebook's event loop).

:func:`latentzarr.cluster.start_cluster` builds a *synchronous* client; a server running on an event loop needs
an asynchronous one on that loop, so that :class:`~latentzarr.cluster.LatentClient` methods return awaitables and
a read costs no thread hop.
"""

from __future__ import annotations

from typing import Any

import dask

from latentzarr.cluster.client import LatentClient
from latentzarr.cluster.local import SERVING_CONFIG, local_cluster
from latentzarr.cluster.plugin import DEFAULT_CACHE_BYTES, LatentWorkerPlugin

__all__ = ["close_async", "start_cluster_async"]


async def start_cluster_async(store_url: str, *, address: str | None = None, n_workers: int | None = None,
                              threads_per_worker: int = 2, cache_bytes: int = DEFAULT_CACHE_BYTES,
                              gpu: bool | None = None, spill: bool = True, storage_options: dict | None = None,
                              **plugin_options: Any) -> LatentClient:
    """Asynchronous twin of :func:`~latentzarr.cluster.start_cluster`: same parameters, an awaitable result.

    Connects an asynchronous :class:`distributed.Client` to the scheduler at ``address`` (or to a new
    :func:`~latentzarr.cluster.local_cluster`), registers :class:`LatentWorkerPlugin` and returns a
    :class:`LatentClient` whose methods return awaitables. Close it with :func:`close_async`, which also closes
    a cluster started here.
    """
    from distributed import Client

    if address is None:
        torch_threads = plugin_options.pop("torch_threads", threads_per_worker)
        with dask.config.set(SERVING_CONFIG):  # the scheduler reads these when it starts (on await)
            cluster = await local_cluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                          cache_bytes=cache_bytes, gpu=gpu, asynchronous=True)
        client = await Client(cluster, asynchronous=True)
    else:
        torch_threads = plugin_options.pop("torch_threads", None)
        cluster, client = None, await Client(address, asynchronous=True)
    try:
        await client.register_plugin(LatentWorkerPlugin(
            store_url, storage_options=storage_options, cache_bytes=cache_bytes, torch_threads=torch_threads,
            **plugin_options))
    except BaseException:
        await client.close()
        if cluster is not None:
            await cluster.close()
        raise
    return LatentClient(client, spill=spill, owns_cluster=cluster)


async def close_async(latent_client: LatentClient) -> None:
    """Close an asynchronous :class:`LatentClient`, and the cluster :func:`start_cluster_async` started for it."""
    await latent_client.client.close()
    cluster = latent_client._cluster  # same package: the cluster this client owns
    if cluster is not None:
        await cluster.close()
