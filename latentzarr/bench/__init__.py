"""Benchmarks of the serving path on a local Dask cluster (image-hit overhead, spillover) and of the GPU
(:mod:`latentzarr.bench.gpu`: every GPU figure in one bounded run).

Library functions return JSON-ready dicts; ``latentzarr bench`` and ``workflows/bench_*.py`` call them.
"""

from __future__ import annotations

from latentzarr.bench._common import build_sample_store, machine_info, summarize
from latentzarr.bench.gpu import bench_gpu
from latentzarr.bench.serving import bench_serving
from latentzarr.bench.spillover import bench_spillover

__all__ = ["bench_gpu", "bench_serving", "bench_spillover", "build_sample_store", "machine_info", "summarize"]
