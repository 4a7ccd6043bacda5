"""Request traces: readers, the synthetic generator of the published AI-image workload, and trace analysis.

* :func:`read_trace` / :func:`write_trace` / :func:`convert_trace`: Parquet, CSV, the Tencent photo-cache trace and
  ``timestamp id size`` CDN traces, with malformed lines counted (:class:`Trace`).
* :func:`synth_trace` (:class:`SynthParams`): a synthetic trace whose statistics match the paper's.
* :func:`analyze_trace`: popularity (Zipf fit), decay by age, re-access intervals and LRU / S3-FIFO miss-ratio
  curves with dask.dataframe (imported lazily: ``latentzarr.traces.analysis``).
"""

from __future__ import annotations

from latentzarr.traces.readers import (
    TRACE_FORMATS,
    TraceFormatWarning,
    convert_trace,
    detect_format,
    read_trace,
    write_trace,
)
from latentzarr.traces.synth import SynthParams, synth_trace
from latentzarr.traces.trace import DEFAULT_OBJECT_SIZE, Trace

__all__ = [
    "DEFAULT_OBJECT_SIZE",
    "TRACE_FORMATS",
    "SynthParams",
    "Trace",
    "TraceFormatWarning",
    "analyze_trace",
    "convert_trace",
    "detect_format",
    "read_trace",
    "synth_trace",
    "write_trace",
]


def __getattr__(name: str):
    if name == "analyze_trace":  # keeps dask out of ``import latentzarr.traces``
        from latentzarr.traces.analysis import analyze_trace

        return analyze_trace
    raise AttributeError(f"module 'latentzarr.traces' has no attribute {name!r}")
