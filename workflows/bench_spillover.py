"""Spillover measured the paper's way: one trace replayed with spillover on and off through the same cluster.

A thin wrapper of ``latentzarr bench spillover`` (every option is the CLI's; the replay is
:func:`latentzarr.replay.replay_trace` with ``spill="both"``). STORE must exist; build one with
``latentzarr replay STORE synthetic --objects N ...`` or ``latentzarr.bench.build_sample_store``.

    LATENTZARR_MODELS=/work/shared/models python workflows/bench_spillover.py STORE --json spillover.json
"""

from __future__ import annotations

import sys

from latentzarr.cli.bench import spillover

if __name__ == "__main__":
    spillover.main(sys.argv[1:], prog_name="workflows/bench_spillover.py")
