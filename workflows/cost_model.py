"""Long-term cost model: ImgStore vs ImgStore with archive tiering vs latent-first at two GPU prices.

Prints the paper's published figures beside this model's on the paper's own inputs (cumulative cost normalised to
ImgStore at trace end = 1, over the 35-month trace and to 2050 at constant and at falling prices; relative error,
within-10% check), the cumulative cost tables, and the same model fed with figures measured in this project;
writes the JSON document (``--json``) and the cumulative-cost figures (``--plot``; a second ``*_measured.png``
next to it). Every input is documented in :class:`latentzarr.cost.CostInputs`, and
:data:`latentzarr.cost.PUBLISHED_SOURCES` names its source.

    python workflows/cost_model.py --json results/cost/cost.json --plot results/cost/cumulative.png
    # another price; a measured store and simulation for our variant
    python workflows/cost_model.py --set storage_usd_per_gb_month=0.021 \
        --gpu "H100:2.5:32.6" --gpu "RTX 5090:0.69:47.3" \
        --store my.lz --sim-json sim.json --sim-fraction 0.01 --json cost.json
"""

from __future__ import annotations

import argparse
import sys

from latentzarr.cost.report import run


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", dest="json_out", default=None, help="write the JSON document here")
    p.add_argument("--plot", dest="plot_out", default=None, help="write the cumulative-cost PNG here")
    p.add_argument("--horizon-year", type=float, default=2050, help="projection to the end of this year [2050]")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="FIELD=VALUE",
                   help="change one published input (a CostInputs field), e.g. storage_usd_per_gb_month=0.02")
    p.add_argument("--gpu", dest="gpus", action="append", default=[], metavar="NAME:USD_PER_HOUR:DECODE_MS",
                   help="replace the GPU list (repeat; the last one is the consumer GPU of the headline)")
    p.add_argument("--store", default=None, help="measured: latent and image bytes from this store's info()")
    p.add_argument("--sim-json", default=None, help="measured: decode-trigger rate from a `latentzarr simulate` JSON")
    p.add_argument("--sim-config", default="adaptive", help="configuration in --sim-json [adaptive]")
    p.add_argument("--sim-fraction", type=float, default=None, help="cache fraction in --sim-json")
    p.add_argument("--latent-bytes", type=float, default=None, help="measured bytes per stored latent")
    p.add_argument("--image-bytes", type=float, default=None, help="measured bytes per stored image (PNG)")
    p.add_argument("--decode-trigger-rate", type=float, default=None, help="measured fraction of reads that decode")
    p.add_argument("--gpu-decode-ms", action="append", default=[], metavar="NAME=MS",
                   help="measured decode time of a GPU of the list (repeat)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the cost model; print the tables."""
    args = parser().parse_args(argv)
    try:
        _, text = run(**vars(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
