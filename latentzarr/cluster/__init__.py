"""Serving and batch work on a Dask cluster: worker plugin, hash routing, coalescing, spillover."""

from __future__ import annotations

from latentzarr.cluster.batcher import DecodeBatcher
from latentzarr.cluster.client import LatentClient, ReadFailedError
from latentzarr.cluster.local import local_cluster, start_cluster
from latentzarr.cluster.plugin import LatentWorkerPlugin, PluginMissingError, get_latentzarr_plugin
from latentzarr.cluster.ring import HashRing

__all__ = [
    "DecodeBatcher",
    "HashRing",
    "LatentClient",
    "LatentWorkerPlugin",
    "PluginMissingError",
    "ReadFailedError",
    "get_latentzarr_plugin",
    "local_cluster",
    "start_cluster",
]
