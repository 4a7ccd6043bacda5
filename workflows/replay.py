"""End-to-end trace replay through a Dask cluster: Decode-All, ImgStore, image-only, latent-only and adaptive.

A thin wrapper of ``latentzarr replay`` (one implementation; every option is the CLI's). The run the project
reports (BENCHMARKS.md, "End-to-end replay"):

    LATENTZARR_MODELS=/work/shared/models python workflows/replay.py work/replay.zarr synthetic --quick \\
        --json replay.json --plot replay_cdf.png

builds (when missing) a store of 1000 crops of the sample photos at 48 px and its PNG image store, copies both into
the moto S3 stand-in, warms the caches with the 100,000 requests before the window, and replays a 1,000-request
window open-loop through a local cluster of 2 workers in all five configurations, at 1% of the store's PNG
footprint per worker, with the S3 GET latency model on every GET.
"""

from __future__ import annotations

import sys

from latentzarr.cli.replay import replay

if __name__ == "__main__":
    replay.main(sys.argv[1:], prog_name="workflows/replay.py")
