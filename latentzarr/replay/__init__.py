"""End-to-end trace replay: five serving configurations, one store, one cache budget, injected store latency."""

from __future__ import annotations

from latentzarr.replay.driver import CONFIGS, OUTCOMES, format_table, map_window, plot_cdf, replay_trace
from latentzarr.replay.latency import DISTRIBUTIONS, LatencyInjector, parse_latency
from latentzarr.replay.stores import (
    ImageObjectStore,
    build_image_store,
    build_replay_store,
    disk_bytes,
    image_store_path,
)

__all__ = [
    "CONFIGS",
    "DISTRIBUTIONS",
    "OUTCOMES",
    "ImageObjectStore",
    "LatencyInjector",
    "build_image_store",
    "build_replay_store",
    "disk_bytes",
    "format_table",
    "image_store_path",
    "map_window",
    "parse_latency",
    "plot_cdf",
    "replay_trace",
]
