"""Precision tiers over time: persistent bytes of lossless-only vs a lifecycle policy on a synthetic trace.

A synthetic trace with the published popularity ageing (:func:`latentzarr.traces.synth_trace`, seeded) is replayed
through the policy "objects not read for ``--days`` days are rewritten at ``--mode`` if their PSNR is at least
``--threshold`` dB" (:mod:`latentzarr.sim.tiers`). Every object of the trace is one of the 8 sample photos, drawn
at random, and takes that photo's measured lossless bytes, bytes at the mode and PSNR at the mode: from a fidelity
evaluation JSON (``--fidelity``, default ``/work/shared/fidelity/fid512.json``, written by ``workflows/fidelity.py``)
or from a fresh evaluation with the trained taef2 decoder at ``--evaluate`` pixels.

Prints the per-photo table, persistent bytes at the trace end for lossless only and for the policy, and the bars:

1. the policy's persistent bytes are at most 70% of lossless-only (at least 30% more reduction than lossless alone);
2. no demoted object is under the PSNR threshold (the lowest PSNR of the objects ever demoted is shown).

Then a sweep over idle days, the no-re-promotion vs re-promotion difference, and the cost model
(:mod:`latentzarr.cost`, published inputs) with a "Latent-first + tiers" scenario fed with the demoted share by age.

    LATENTZARR_MODELS=/work/shared/models python workflows/precision_tiers.py --json tiers.json --plot tiers.png
    python workflows/precision_tiers.py --evaluate 256 --mode q8 --requests 100000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from latentzarr.cost import PUBLISHED, cost_series, headline_ratios, latent_name, months_until, tier_name
from latentzarr.cost.plot import plot_cumulative
from latentzarr.sim.tiers import (
    DAY_S,
    TierPolicy,
    assign_samples,
    fidelity_table,
    pass_rate_from_fidelity,
    plot_tier_bytes,
    tier_series,
)
from latentzarr.traces import synth_trace

DEFAULT_FIDELITY = "/work/shared/fidelity/fid512.json"
MAX_RATIO = 0.70  # bar 1: policy bytes <= 70% of lossless-only bytes at the trace end
SWEEP_DAYS = (0.0, 7.0, 30.0, 90.0, 365.0, math.inf)


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=2_000_000, help="requests of the synthetic trace [2,000,000]")
    p.add_argument("--seed", type=int, default=0, help="seed of the trace and of the photo drawn per object [0]")
    p.add_argument("--days", type=float, default=30.0, help="idle days before demotion [30]")
    p.add_argument("--mode", default="wstep:0.08", help="precision mode of the demoted tier [wstep:0.08]")
    p.add_argument("--threshold", type=float, default=50.0, help="minimum PSNR (dB) to demote [50]")
    p.add_argument("--fidelity", default=None, help=f"fidelity JSON of workflows/fidelity.py [{DEFAULT_FIDELITY}]")
    p.add_argument("--fidelity-size", default=None, help="picture size in --fidelity [its smallest]")
    p.add_argument("--evaluate", type=int, default=None, metavar="PX",
                   help="evaluate the 8 sample photos at PX x PX with taef2 now instead of reading --fidelity")
    p.add_argument("--repromote", action="store_true", help="a read after demotion rewrites the object lossless")
    p.add_argument("--json", dest="json_out", default=None, help="write the JSON document here")
    p.add_argument("--plot", dest="plot_out", default=None,
                   help="write the persistent-bytes PNG here (and the cost figure as *_cost.png)")
    return p


def evaluate(px: int, mode: str) -> dict[str, Any]:
    """A fresh fidelity evaluation of the sample photos at ``px`` pixels (lossless and ``mode``), as a JSON doc."""
    from latentzarr.models import load_model
    from latentzarr.precision import evaluate_fidelity
    from latentzarr.samples import sample_images

    images = sample_images(px)
    model = load_model("taef2", device="cpu")
    latents = model.encode(np.stack(list(images.values())), dtype=np.float16)
    result = evaluate_fidelity(latents, model, ["lossless", mode], image_codecs=(), match_bytes=False,
                               names=list(images))
    return json.loads(result.to_json())


def _png_bytes(doc: dict[str, Any], size: str | None) -> float | None:
    """Optimised PNG bytes per image of the lossless decode recorded in a fidelity document, if any."""
    if "sizes" in doc:
        key = str(size) if size else min(doc["sizes"], key=int)
        doc = doc["sizes"][key]["result"]
    return doc.get("info", {}).get("png_bytes_per_image")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the workflow; print as it goes; return the JSON document."""
    t0 = time.perf_counter()
    if args.evaluate is not None:
        print(f"fidelity: evaluating the sample photos at {args.evaluate} px with taef2 (lossless, {args.mode})")
        doc = evaluate(args.evaluate, args.mode)
        source = f"fresh evaluation at {args.evaluate} px"
    else:
        path = args.fidelity or DEFAULT_FIDELITY
        with open(path) as f:
            doc = json.load(f)
        source = f"{path}" + (f" (size {args.fidelity_size})" if args.fidelity_size else "")
    kw = {"size": args.fidelity_size} if args.fidelity_size and "sizes" in doc else {}
    table = fidelity_table(doc, args.mode, **kw)
    rate = pass_rate_from_fidelity(doc, args.mode, args.threshold, **kw)
    print(f"fidelity source: {source}")
    print(f"{'photo':<22} {'lossless B':>11} {args.mode + ' B':>15} {'PSNR dB':>8}  >= {args.threshold:g} dB")
    for i, name in enumerate(table["names"]):
        psnr = table["psnr_db"][i]
        print(f"{name:<22} {table['lossless_bytes'][i]:>11,.0f} {table['mode_bytes'][i]:>15,.0f} {psnr:>8.2f}  "
              f"{'yes' if psnr >= args.threshold else 'no'}")
    print(f"pass rate {rate:.0%}; mean bytes lossless {table['lossless_bytes'].mean():,.0f}, {args.mode} "
          f"{table['mode_bytes'].mean():,.0f} ({table['mode_bytes'].mean() / table['lossless_bytes'].mean():.3f}x)")

    trace = synth_trace(args.requests, seed=args.seed)
    end_s = float(trace.meta["params"]["days"]) * DAY_S
    print(f"\ntrace: {trace!r} (synthetic, published ageing, seed {args.seed})")
    per_obj = assign_samples(trace.n_objects, table, seed=args.seed)
    objects = {k: per_obj[k] for k in ("lossless_bytes", "mode_bytes", "psnr_db")}

    def policy(days: float, repromote: bool = args.repromote) -> TierPolicy:
        return TierPolicy(days, args.mode, args.threshold, float(table["lossless_bytes"].mean()),
                          float(table["mode_bytes"].mean()), pass_rate=rate, repromote=repromote)

    main = tier_series(trace, policy(args.days), end_s=end_s, **objects)
    lossless_end, policy_end = main.lossless_bytes[-1], main.policy_bytes[-1]
    print(f"\npolicy: {args.mode} after {args.days:g} idle days if PSNR >= {args.threshold:g} dB"
          f"{', re-promote on read' if args.repromote else ', no re-promotion'}")
    print(f"persistent bytes at trace end ({main.months} months, {main.n_objects:,} objects, "
          f"{main.demoted[-1]:,.0f} demoted):")
    print(f"  lossless only  {lossless_end / 1e9:10.3f} GB")
    print(f"  policy         {policy_end / 1e9:10.3f} GB  ({main.ratio:.3f}x, {main.reduction:.1%} less)")
    print(f"  floor          {main.floor_bytes[-1] / 1e9:10.3f} GB  (everything at {args.mode})")
    png = _png_bytes(doc, kw.get("size"))
    if png:
        png_total = png * main.catalogue[-1]
        print(f"  vs optimised PNG ({png:,.0f} B/image): lossless alone {1 - lossless_end / png_total:.1%} less, "
              f"policy {1 - policy_end / png_total:.1%} less")
    bar1 = main.ratio <= MAX_RATIO
    print(f"bar 1 ({'met' if bar1 else 'NOT met'}): policy bytes {main.ratio:.3f}x lossless-only "
          f"(<= {MAX_RATIO:.2f}x needed): {main.reduction:.1%} more reduction than lossless alone (>= 30% needed)")
    low = main.demoted_psnr_min
    bar2 = low is None or low >= args.threshold
    print(f"bar 2 ({'met' if bar2 else 'NOT met'}): lowest PSNR of the demoted objects "
          f"{'n/a (none demoted)' if low is None else f'{low:.2f} dB'} (threshold {args.threshold:g} dB); "
          f"{main.n_objects - main.n_eligible:,.0f} objects under the threshold stay lossless")

    print(f"\n{'idle days':>9} {'no re-promotion':>16} {'re-promotion':>13}  (policy / lossless at trace end)")
    sweep = []
    for days in sorted(set(SWEEP_DAYS) | {args.days}):
        a = tier_series(trace, policy(days, False), end_s=end_s, **objects)
        b = tier_series(trace, policy(days, True), end_s=end_s, **objects)
        sweep.append({"days": None if math.isinf(days) else days, "ratio": a.ratio, "ratio_repromote": b.ratio})
        print(f"{'never' if math.isinf(days) else f'{days:g}':>9} {a.ratio:>16.3f} {b.ratio:>13.3f}")

    inputs = PUBLISHED.with_tiers(main.mode_bytes_ratio, main.demoted_by_age)
    heads = headline_ratios(inputs)
    print(f"\ncost model (published inputs; tier latent {inputs.tier_bytes:,.0f} B = {main.mode_bytes_ratio:.3f}x "
          f"of {inputs.latent_bytes:,.0f} B):")
    cost_rows = []
    for g in inputs.gpus:
        row = {"gpu": g.name}
        for key in ("trace_period", "horizon"):
            h = heads[key]
            row[key] = {"latent_first": h["saving_vs_imgstore"][latent_name(g)],
                        "latent_first_tiers": h["saving_vs_imgstore"][tier_name(g)]}
        cost_rows.append(row)
        print(f"  {g.name:<9} saving vs ImgStore: trace period {row['trace_period']['latent_first']:.1%} -> "
              f"{row['trace_period']['latent_first_tiers']:.1%} with tiers; to {heads['horizon']['year']:g} "
              f"{row['horizon']['latent_first']:.1%} -> {row['horizon']['latent_first_tiers']:.1%}")

    out: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "fidelity_source": source,
        "per_photo": [{"photo": str(n), "lossless_bytes": float(a), "mode_bytes": float(b),
                       "psnr_db": None if not math.isfinite(c) else float(c)}
                      for n, a, b, c in zip(table["names"], table["lossless_bytes"], table["mode_bytes"],
                                            table["psnr_db"], strict=True)],
        "pass_rate": rate,
        "trace": {"requests": len(trace), "objects": trace.n_objects, "days": end_s / DAY_S, "seed": args.seed},
        "series": main.to_dict(),
        "bars": {"max_ratio": MAX_RATIO, "ratio": main.ratio, "reduction": main.reduction, "bar1_met": bar1,
                 "threshold_db": args.threshold, "demoted_psnr_min": low, "bar2_met": bar2},
        "sweep": sweep,
        "cost": {"inputs": inputs.to_dict(), "savings": cost_rows},
        "seconds": time.perf_counter() - t0,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1))
        print(f"wrote {args.json_out}")
    if args.plot_out:
        extra = [tier_series(trace, policy(d), end_s=end_s, **objects) for d in (7.0, 90.0, 365.0) if d != args.days]
        plot_tier_bytes([main, *extra], args.plot_out,
                        title=f"Persistent bytes, synthetic trace ({len(trace):,} requests)")
        cost_png = Path(args.plot_out).with_name(Path(args.plot_out).stem + "_cost.png")
        horizon = months_until(inputs, heads["horizon"]["year"])
        plot_cumulative([("trace period", cost_series(inputs)), (f"to {heads['horizon']['year']:g}",
                                                                 cost_series(inputs, horizon))],
                        cost_png, start_year=inputs.trace_end_year - inputs.trace_months / 12)
        print(f"wrote {args.plot_out} and {cost_png}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the workflow; 2 on bad input."""
    args = parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
