"""Write the golden files of the ``latentzarr.latent`` codec ONCE per format version (the newest by default).

    LATENTZARR_MODELS=/work/shared/models PYTHONPATH=.:codecs python tests/golden/make_golden.py [VERSION]

Writes ``tests/golden/latentzarr.latent/v<VERSION>/{config.json, <case>.npy, <case>.dat}``: the input (bfloat16
kept as its uint16 bits, so numpy alone can load it), the encoded bytes, and per case the Zarr codec metadata used.
Refuses to run when any of those files exists: golden files are never regenerated; a new format version gets a
new folder. v1 was written with version 1's defaults (level 9); v2 with version 2's (level 8).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
from latentzarr_codecs import LatentCodec, LatentPCodec

from latentzarr_codecs.config import FORMAT_VERSION

ROOT = Path(__file__).resolve().parent / "latentzarr.latent"


def _special(width: type, values: list[int], shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, np.iinfo(width).max, size=shape, dtype=width, endpoint=True)
    raw.reshape(-1)[: len(values)] = values
    return raw


def cases(version: int) -> dict[str, tuple[np.ndarray, str | None]]:
    """``{case: (input array as stored in .npy, codec dtype)}``."""
    from latentzarr.models import load_model
    from latentzarr.samples import sample_images

    image = sample_images(128, names=["astronaut"])["astronaut"]
    model = load_model("taef2", device="cpu")
    latent = model.encode(image[None], dtype=np.float32)  # (1, 32, 16, 16)
    # A latent whose channels differ enough that one pcodec chunk per channel wins (header mode 2).
    # Version 2 tries that layout only for planes of >= 4096 values, so its case is a 512 px latent.
    hubble_px = 256 if version == 1 else 512
    hubble = sample_images(hubble_px, names=["hubble_deep_field"])["hubble_deep_field"]
    planes = model.encode(hubble[None], dtype=np.float16)  # (1, 32, 32, 32) in v1, (1, 32, 64, 64) in v2
    return {
        "float32": (np.ascontiguousarray(latent), None),
        "float16": (np.ascontiguousarray(latent.astype(np.float16)), None),
        "bfloat16": (np.ascontiguousarray(latent.astype(ml_dtypes.bfloat16)).view(np.uint16), "bfloat16"),
        "float16_planes": (np.ascontiguousarray(planes), None),
        "float32_specials": (
            _special(np.uint32, [0x80000000, 0x7F800000, 0xFF800000, 0x7FC00001, 0x00000001], (2, 3, 16, 16), 1).view(
                np.float32
            ),
            None,
        ),
        "float16_specials": (
            _special(np.uint16, [0x8000, 0x7C00, 0xFC00, 0x7E01, 0x0001], (2, 3, 16, 16), 2).view(np.float16),
            None,
        ),
        "bfloat16_specials": (
            _special(np.uint16, [0x8000, 0x7F80, 0xFF80, 0x7FC1, 0x0001], (2, 3, 16, 16), 3),
            "bfloat16",
        ),
        "uint32": (np.arange(0, 3000, 7, dtype=np.uint32).reshape(1, 3, 143), None),
        "uint16": (np.arange(0, 60000, 97, dtype=np.uint16), None),
        "empty": (np.empty((0,), dtype=np.float16), None),
        "tiny": (np.array([-0.0], dtype=np.float32).reshape(1, 1, 1, 1), None),
    }


def main(argv: list[str]) -> int:
    version = int(argv[0]) if argv else FORMAT_VERSION
    out = ROOT / f"v{version}"
    made = cases(version)
    targets = [out / "config.json"] + [out / f"{name}.{ext}" for name in made for ext in ("npy", "dat")]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        print(f"Refusing to overwrite golden files: {existing}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    config = {}
    for name, (array, dtype) in made.items():
        zarr_codec = LatentCodec(dtype=dtype, version=version, **({"level": 9} if version == 1 else {}))
        numcodecs_codec = LatentPCodec(**zarr_codec.to_dict()["configuration"])
        np.save(out / f"{name}.npy", array, allow_pickle=False)
        (out / f"{name}.dat").write_bytes(numcodecs_codec.encode(array))
        config[name] = zarr_codec.to_dict()
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    print(f"Wrote {len(made)} golden cases to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
