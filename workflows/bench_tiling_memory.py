"""Peak RSS of an ingest-like encode + decode against picture size, tiled vs whole (taef2 on CPU).

Each (size, mode) runs in a fresh subprocess, so its ``ru_maxrss`` is that picture's peak alone: the child loads
taef2, encodes one real photo (a sample photo resized to the size), decodes the latent (what ingest does for the
pixel digest) and reports its peak RSS, the seconds of each half and where it saved the decoded picture. The
parent prints a table, writes JSON, and compares each tiled decode with the whole one of the same size (PSNR,
share of pixel values within 1 level), where the whole one ran.

    python workflows/bench_tiling_memory.py --json tiling.json
    python workflows/bench_tiling_memory.py --sizes 1024x1024,2048x2048 --whole-max 2048x2048
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _child(height: int, width: int, mode: str, out: str, threads: int) -> None:
    import resource

    import torch
    from PIL import Image

    from latentzarr.models import load_model
    from latentzarr.samples import sample_images

    torch.set_num_threads(threads)
    photo = sample_images(512, ["astronaut"])["astronaut"]
    picture = np.asarray(Image.fromarray(photo).resize((width, height), Image.Resampling.LANCZOS))
    model = load_model("taef2", device="cpu")
    model.load_encoder()
    if mode == "whole":
        model.tiling = None
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    latent = model.encode(picture, dtype=np.float16)
    t1 = time.perf_counter()
    decoded = model.decode(latent)
    t2 = time.perf_counter()
    np.save(out, decoded)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_rss_bytes": peak, "rss_before_bytes": base, "encode_s": t1 - t0, "decode_s": t2 - t1,
                      "tiled": model._tiled(height, width) is not None}))


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.partition("x")
    return int(h), int(w or h)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="512x512,1024x1024,1536x1536,2048x2048,3000x4000",
                   help="HEIGHTxWIDTH list (multiples of 8).")
    p.add_argument("--whole-max", default="2048x2048",
                   help="Largest picture also run whole (untiled); larger ones would need ~13 GB at 4000x3000.")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", dest="json_out", default=None)
    p.add_argument("--child", nargs=4, metavar=("H", "W", "MODE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        h, w, mode, out = args.child
        _child(int(h), int(w), mode, out, args.threads)
        return {}
    from latentzarr.models import psnr

    sizes = [_size(s) for s in args.sizes.split(",")]
    wh, ww = _size(args.whole_max)
    rows = []
    with tempfile.TemporaryDirectory(prefix="lz-tiling-") as tmp:
        for h, w in sizes:
            outs = {}
            for mode in ("tiled", "whole"):
                if mode == "whole" and (h * w > wh * ww or not rows[-1].get("tiled", True)):
                    continue  # too big to run whole, or the "tiled" run was whole already
                out = os.path.join(tmp, f"{h}x{w}-{mode}.npy")
                res = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--child", str(h),
                                      str(w), mode, out], capture_output=True, text=True, check=False)
                if res.returncode:
                    rows.append({"height": h, "width": w, "mode": mode, "error": res.stderr.strip()[-500:]})
                    continue
                row = {"height": h, "width": w, "mode": mode, **json.loads(res.stdout.strip().splitlines()[-1])}
                rows.append(row)
                outs[mode] = out
                _write(args.json_out, rows)
                print(f"{h:>5}x{w:<5} {mode:<6} tiled={row['tiled']!s:<5} peak RSS {row['peak_rss_bytes'] / 2**30:6.2f}"
                      f" GiB  encode {row['encode_s']:6.1f} s  decode {row['decode_s']:6.1f} s", flush=True)
            if len(outs) == 2 and rows[-2].get("tiled"):
                a, b = np.load(outs["tiled"]), np.load(outs["whole"])
                diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
                cmp = {"psnr_db": psnr(a, b), "max_abs_diff": int(diff.max()),
                       "within_1_share": float((diff <= 1).mean()), "exact_share": float((diff == 0).mean())}
                rows[-2]["vs_whole"] = cmp
                print(f"{'':12} tiled vs whole: {cmp['psnr_db']:.2f} dB, max {cmp['max_abs_diff']} levels, "
                      f"{100 * cmp['within_1_share']:.2f}% within 1 level", flush=True)
                _write(args.json_out, rows)
    return _write(args.json_out, rows)


def _write(path: str | None, rows: list[dict]) -> dict:
    """The report so far (written after every row, so a long run that is stopped keeps what it measured)."""
    from latentzarr.bench import machine_info
    from latentzarr.models import DEFAULT_TILING

    doc = {"bench": "tiling_memory", "tiling": DEFAULT_TILING.as_dict(), "rows": rows, "machine": machine_info(),
           "note": "encode + decode of one picture per fresh process; peak RSS is ru_maxrss of that process"}
    if path:
        Path(path).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


if __name__ == "__main__":
    main()
