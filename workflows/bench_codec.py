"""Benchmark the latentzarr.latent codec against raw, zstd, Blosc and plain PCodec on real taef2 latents.

For every sample photo (``latentzarr.samples``) and size, the taef2 latent (32 x size/8 x size/8) is encoded in
float32, float16 and bfloat16 (ml_dtypes, round to nearest from float32). Each codec's bytes, ratio vs raw, and
compress / decompress speed (MB/s of raw latent, median of ``--repeats``, one thread) are reported per image and
in total, with the order-0 entropy bound of the values, ours vs plain PCodec and vs format version 1's encoder
(``ours_v1``), and the optimised PNG and lossless
WebP sizes of the source image (data reduction = 1 - latent bytes / PNG bytes). Every round trip is checked
bit-exact. Speeds are only comparable within one run (figures are ratios against baselines of the same run).

    LATENTZARR_MODELS=/work/shared/models python workflows/bench_codec.py --sizes 512,1024 --json codec.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numcodecs
import numpy as np
from latentzarr_codecs import LatentPCodec
from numcodecs import Blosc, PCodec, Zstd
from PIL import Image

DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16), "bfloat16": np.dtype(ml_dtypes.bfloat16)}
CODEC_NAMES = ("raw", "zstd", "blosc_shuffle", "blosc_bitshuffle", "pcodec", "ours_v1", "ours")


def make_codecs(dtype_name: str) -> dict[str, tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]]:
    """``{name: (encode, decode)}``; bfloat16 goes to the baselines as its uint16 bits (they cannot take it)."""

    def bits(array: np.ndarray) -> np.ndarray:
        return array.view(np.uint16) if dtype_name == "bfloat16" else array

    zstd = Zstd(level=3)
    shuffle = Blosc(cname="zstd", clevel=5, shuffle=Blosc.SHUFFLE)
    bitshuffle = Blosc(cname="zstd", clevel=5, shuffle=Blosc.BITSHUFFLE)
    pcodec = PCodec(level=8)
    ours = LatentPCodec(dtype=dtype_name)
    ours_v1 = LatentPCodec(dtype=dtype_name, level=9, version=1)  # format version 1's encoder (its default level)
    return {
        "raw": (lambda a: a.tobytes(), lambda b: np.frombuffer(b, dtype=np.uint8)),
        "zstd": (lambda a: zstd.encode(bits(a)), zstd.decode),
        "blosc_shuffle": (lambda a: shuffle.encode(bits(a)), shuffle.decode),
        "blosc_bitshuffle": (lambda a: bitshuffle.encode(bits(a)), bitshuffle.decode),
        "pcodec": (lambda a: pcodec.encode(bits(a)), pcodec.decode),
        "ours_v1": (ours_v1.encode, ours_v1.decode),
        "ours": (ours.encode, ours.decode),
    }


def entropy_bytes(values: np.ndarray) -> float:
    """Order-0 (empirical) entropy of the values, in bytes: the bound for any coder of independent values."""
    _, counts = np.unique(values.reshape(-1).view(np.dtype(f"u{values.dtype.itemsize}")), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum() * values.size / 8)


def entropy_bound_bytes(values: np.ndarray) -> float:
    """The bound reported in tables: order-0 entropy for 16-bit values. For float32 nearly every value of a
    latent is distinct, so its empirical entropy is just log2(n) bits and no real coder gets near it; we take
    the order-0 entropy of the high 16 bits (sign, exponent, 7 mantissa bits) plus the low 16 mantissa bits
    as incompressible (they are essentially random, design.md)."""
    if values.dtype.itemsize != 4:
        return entropy_bytes(values)
    high = (values.reshape(-1).view(np.uint32) >> 16).astype(np.uint16)
    return entropy_bytes(high) + 2 * values.size


def _timed(func: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def image_sizes(image: np.ndarray) -> dict[str, int]:
    """Bytes of the source image as optimised PNG (Pillow ``optimize=True``) and lossless WebP."""
    sizes = {}
    for name, kwargs in (("png", {"format": "PNG", "optimize": True}), ("webp", {"format": "WEBP", "lossless": True})):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, **kwargs)
        sizes[name] = buf.tell()
    return sizes


def bench_latent(latent: np.ndarray, dtype_name: str, repeats: int) -> dict[str, Any]:
    """All codecs on one (1, C, h, w) latent of ``dtype_name``; checks each round trip bit-exact."""
    raw_bytes = latent.nbytes
    row: dict[str, Any] = {
        "raw_bytes": raw_bytes,
        "entropy_bytes": entropy_bytes(latent),
        "entropy_bound_bytes": entropy_bound_bytes(latent),
        "codecs": {},
    }
    expected = latent.reshape(-1).view(np.uint8)
    for name, (encode, decode) in make_codecs(dtype_name).items():
        encoded, t_enc = _timed(lambda encode=encode: encode(latent), repeats)
        decoded, t_dec = _timed(lambda decode=decode, encoded=encoded: decode(encoded), repeats)
        got = np.ascontiguousarray(decoded).reshape(-1).view(np.uint8)
        if not np.array_equal(got, expected):
            raise AssertionError(f"{name} did not round-trip {dtype_name} bit-exactly")
        size = len(encoded)
        row["codecs"][name] = {"bytes": size, "ratio": raw_bytes / size, "compress_s": t_enc, "decompress_s": t_dec}
    return row


def add_derived(row: dict[str, Any]) -> None:
    """Ratios and speeds that follow from bytes and seconds (per image and for totals alike)."""
    mb = row["raw_bytes"] / 1e6
    for stats in row["codecs"].values():
        stats["ratio"] = row["raw_bytes"] / stats["bytes"]
        stats["compress_mb_s"] = mb / stats["compress_s"] if stats["compress_s"] else None
        stats["decompress_mb_s"] = mb / stats["decompress_s"] if stats["decompress_s"] else None
    ours, pcodec = row["codecs"]["ours"]["bytes"], row["codecs"]["pcodec"]["bytes"]
    row["ours_vs_pcodec"] = pcodec / ours
    row["ours_vs_entropy_bound"] = row["entropy_bound_bytes"] / ours
    row["reduction_vs_png"] = {"ours": 1 - ours / row["png_bytes"], "pcodec": 1 - pcodec / row["png_bytes"]}
    row["ours_decompress_speed_vs_pcodec"] = (
        row["codecs"]["pcodec"]["decompress_s"] / row["codecs"]["ours"]["decompress_s"]
    )
    row["ours_compress_speed_vs_pcodec"] = row["codecs"]["pcodec"]["compress_s"] / row["codecs"]["ours"]["compress_s"]
    row["ours_v1_compress_speed_vs_pcodec"] = (
        row["codecs"]["pcodec"]["compress_s"] / row["codecs"]["ours_v1"]["compress_s"]
    )
    row["ours_vs_ours_v1_bytes"] = row["codecs"]["ours"]["bytes"] / row["codecs"]["ours_v1"]["bytes"]


def total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum bytes and seconds over images (so total speeds are total MB / total seconds)."""
    out: dict[str, Any] = {"image": "TOTAL", "codecs": {}}
    for key in ("raw_bytes", "entropy_bytes", "entropy_bound_bytes", "png_bytes", "webp_bytes"):
        out[key] = sum(r[key] for r in rows)
    for name in CODEC_NAMES:
        out["codecs"][name] = {
            k: sum(r["codecs"][name][k] for r in rows) for k in ("bytes", "compress_s", "decompress_s")
        }
    add_derived(out)
    return out


def print_table(size: int, dtype_name: str, rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'image':22s} {'raw':>8s} {'bound':>8s} {'zstd':>8s} {'b-shuf':>8s} {'b-bit':>8s} {'pcodec':>8s} "
        f"{'ours':>8s} {'pc/ours':>7s} {'bnd/ours':>8s} {'PNG':>8s} {'WebP':>8s} {'red.PNG':>7s}"
    )
    print(f"\n== {size}x{size} images, {dtype_name} latents (bytes per image; ratios) ==\n{head}")
    for r in rows:
        c = r["codecs"]
        print(
            f"{r['image']:22s} {r['raw_bytes']:8d} {r['entropy_bound_bytes']:8.0f} {c['zstd']['bytes']:8d} "
            f"{c['blosc_shuffle']['bytes']:8d} {c['blosc_bitshuffle']['bytes']:8d} {c['pcodec']['bytes']:8d} "
            f"{c['ours']['bytes']:8d} {r['ours_vs_pcodec']:7.4f} {r['ours_vs_entropy_bound']:8.4f} {r['png_bytes']:8d} "
            f"{r['webp_bytes']:8d} {r['reduction_vs_png']['ours']:7.1%}"
        )
    t = rows[-1]
    print("  ratio vs raw: " + ", ".join(f"{n} {t['codecs'][n]['ratio']:.3f}" for n in CODEC_NAMES))
    print(
        "  MB/s compress / decompress: "
        + ", ".join(
            f"{n} {t['codecs'][n]['compress_mb_s']:.0f}/{t['codecs'][n]['decompress_mb_s']:.0f}" for n in CODEC_NAMES
        )
    )
    print(f"  ours decompress speed / pcodec's: {t['ours_decompress_speed_vs_pcodec']:.2f}")
    print(f"  compress speed / pcodec's: ours {t['ours_compress_speed_vs_pcodec']:.2f}, ours_v1 "
          f"{t['ours_v1_compress_speed_vs_pcodec']:.2f}; ours bytes / ours_v1 bytes {t['ours_vs_ours_v1_bytes']:.4f} "
          f"(worst image {max(r['ours_vs_ours_v1_bytes'] for r in rows[:-1]):.4f})")


def machine() -> dict[str, Any]:
    import pcodec
    import zarr

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numcodecs": numcodecs.__version__,
        "pcodec": pcodec.__version__,
        "zarr": zarr.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="512,1024", help="comma-separated image sizes in pixels (default 512,1024)")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats per codec; the median is kept (5)")
    parser.add_argument("--json", dest="json_path", default=None, help="write all figures to this JSON file")
    parser.add_argument("--images", default=None, help="comma-separated sample names (default: all)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        parser.error(f"Expected --sizes like 512,1024. Got {args.sizes!r} instead.")
    if args.repeats < 1:
        parser.error(f"Expected --repeats >= 1. Got {args.repeats!r} instead.")

    from latentzarr.models import load_model
    from latentzarr.samples import sample_images

    numcodecs.blosc.set_nthreads(1)  # every codec on one thread
    model = load_model("taef2", device="cpu")
    names = args.images.split(",") if args.images else None
    report: dict[str, Any] = {"command": " ".join(sys.argv), "machine": machine(), "repeats": args.repeats, "runs": []}
    for size in sizes:
        images = sample_images(size, names=names)
        start = time.perf_counter()
        latents = model.encode(np.stack(list(images.values())), dtype=np.float32)
        print(f"taef2 encode of {len(images)} images at {size}: {time.perf_counter() - start:.1f} s", flush=True)
        pictures = {name: image_sizes(image) for name, image in images.items()}
        for dtype_name, dtype in DTYPES.items():
            rows = []
            for name, latent in zip(images, latents, strict=True):
                values = np.ascontiguousarray(latent[None].astype(dtype))
                row = {"image": name, **bench_latent(values, dtype_name, args.repeats)}
                row["png_bytes"], row["webp_bytes"] = pictures[name]["png"], pictures[name]["webp"]
                add_derived(row)
                rows.append(row)
            rows.append(total(rows))
            print_table(size, dtype_name, rows)
            report["runs"].append({"size": size, "dtype": dtype_name, "rows": rows})
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(report, f, indent=1)
        print(f"\nwrote {args.json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
