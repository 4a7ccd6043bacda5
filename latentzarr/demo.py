"""The README's main job: real photos -> latent store -> storage table -> decode, verify, write pictures.

Runs on the embedded defaults: a local Zarr folder, the trained taef2 model found through ``LATENTZARR_MODELS``,
and scikit-image's bundled photos. About 30 s on 2 CPU cores at 512x512.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from latentzarr.errors import NotALatentStoreError

__all__ = ["DemoResult", "run_demo"]


@dataclass
class DemoResult:
    """Where the demo wrote things, and its headline figures."""

    store_path: Path
    source_dir: Path
    decoded_dir: Path
    png_bytes: int
    stored_bytes: int
    digest_matches: int
    images: int
    seconds: float

    @property
    def data_reduction(self) -> float:
        """1 - stored latent bytes / optimised PNG bytes."""
        return 1 - self.stored_bytes / self.png_bytes


def run_demo(
    out: str | Path = "latentzarr-demo",
    *,
    size: int = 512,
    images: int = 8,
    dtype: str = "float16",
    model: str = "taef2",
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> DemoResult:
    """Build ``<out>/store.zarr`` from sample photos, report storage, decode to ``<out>/decoded``, verify.

    Re-running replaces the demo store of an earlier run (and only a latentzarr store).
    """
    from PIL import Image

    from latentzarr.export import export_images
    from latentzarr.ingest import ingest_images
    from latentzarr.models import load_model
    from latentzarr.samples import SAMPLE_NAMES, sample_images
    from latentzarr.store import LatentStore

    t0 = time.perf_counter()
    out = Path(out)
    source, decoded, store_path = out / "source", out / "decoded", out / "store.zarr"
    _clear_previous_run(out, store_path, source, decoded)
    names = SAMPLE_NAMES[: max(1, min(images, len(SAMPLE_NAMES)))]
    echo(f"1/4 writing {len(names)} sample photo{'s' if len(names) != 1 else ''} ({size}x{size}) to {source}")
    files = []
    for name, px in sample_images(size, names).items():
        files.append(source / f"{name}.png")
        Image.fromarray(px).save(files[-1])

    echo(f"2/4 encoding them with {model} into {store_path}")
    ae = load_model(model)
    store = LatentStore.create(store_path)
    report = ingest_images(store, files, ae, dtype=dtype, progress=progress)

    echo("3/4 storage (latent bytes: the compressed chunk of each image, as stored)")
    rows = [(i, report.png_bytes[i], store.encoded_size(i)) for i in report.ids]
    echo(storage_table(rows))
    info = store.info()
    echo(f"    the store's arrays on disk, with shard indexes: {info['stored_bytes']:,} bytes "
         f"({compared(info['compression_ratio'], f'the raw {dtype} latents')})")

    echo(f"4/4 decoding every latent back to {decoded} and checking the ingest pixel digests")
    exported = export_images(store, report.ids, decoded, model=ae, progress=progress)
    matches = sum(v == "match" for v in exported.digests.values())
    echo(f"    {matches}/{len(exported.digests)} decodes are bit-identical to the ingest decode")
    result = DemoResult(
        store_path=store_path,
        source_dir=source,
        decoded_dir=decoded,
        png_bytes=sum(r[1] for r in rows),
        stored_bytes=sum(r[2] for r in rows),
        digest_matches=matches,
        images=len(rows),
        seconds=time.perf_counter() - t0,
    )
    echo(f"done in {result.seconds:.1f} s: open {decoded} to see the pictures")
    return result


def compared(ratio: float, what: str) -> str:
    """``ratio`` = raw / stored in words that stay true both ways: "2.10x smaller than X" or "1.02x larger than X
    (...)" (small pictures: the shard index and codec headers outweigh what compression saves)."""
    if ratio >= 1:
        return f"{ratio:.2f}x smaller than {what}"
    return (f"{1 / ratio:.2f}x larger than {what}: at this size the shard index and codec headers outweigh what "
            "compression saves")


_MARKER = ".latentzarr-demo"


def _clear_previous_run(out: Path, store_path: Path, *folders: Path) -> None:
    """Remove what an earlier demo wrote to ``out`` (recognised by its marker file); refuse anything else."""
    if store_path.exists() or any(f.exists() for f in folders):
        if not (out / _MARKER).exists():
            raise NotALatentStoreError(
                f"Expected {out} to be empty or an earlier demo's folder. Got other files there instead; "
                "choose another --out folder."
            )
        for path in (store_path, *folders):
            shutil.rmtree(path, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("written by `latentzarr demo`; the demo may replace this folder's contents\n")
    for folder in folders:
        folder.mkdir(exist_ok=True)


def storage_table(rows: list[tuple[str, int, int]]) -> str:
    """Table of (id, PNG bytes, stored latent bytes) with per-row and total data reduction."""
    lines = [f"    {'image':<22} {'PNG bytes':>10} {'latent bytes':>13} {'reduction':>10}"]
    for name, png, lat in [*rows, ("TOTAL", sum(r[1] for r in rows), sum(r[2] for r in rows))]:
        lines.append(f"    {name:<22} {png:>10,} {lat:>13,} {1 - lat / png:>10.1%}")
    return "\n".join(lines)
