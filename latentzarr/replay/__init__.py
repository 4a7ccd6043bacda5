"""End-to-end trace replay through a Dask cluster: five serving configurations on the same workers, one store,
one per-worker cache budget, one object-store GET latency model."""

from __future__ import annotations

from latentzarr.replay.driver import CONFIGS, NO_SPILL, PAPER_TABLE4, map_window, plugin_settings, replay_trace
from latentzarr.replay.report import format_table, plot_cdf
from latentzarr.replay.stores import (
    ImageObjectStore,
    build_image_store,
    build_replay_store,
    disk_bytes,
    image_store_path,
)
from latentzarr.store.latency import DEFAULT_GET_LATENCY, GetLatencyModel, parse_get_latency

__all__ = [
    "CONFIGS",
    "DEFAULT_GET_LATENCY",
    "NO_SPILL",
    "PAPER_TABLE4",
    "GetLatencyModel",
    "ImageObjectStore",
    "build_image_store",
    "build_replay_store",
    "disk_bytes",
    "format_table",
    "image_store_path",
    "map_window",
    "parse_get_latency",
    "plot_cdf",
    "plugin_settings",
    "replay_trace",
]
