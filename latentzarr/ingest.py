"""Turn image files (or pixel arrays) into committed latents in a :class:`~latentzarr.store.LatentStore`.

Pipeline per batch: load RGB pixels -> crop to a multiple of the model's downscale (or resize to ``size``) ->
encode to latents -> decode those latents once to record a pixel digest (proves bit-exact decodes later on the
same setup) -> optimised-PNG size of the source pixels (for the storage report) -> one ``put`` per batch.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from latentzarr.ids import validate_ids

if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.models import LatentAutoencoder
    from latentzarr.store import LatentStore

__all__ = ["IMAGE_SUFFIXES", "IngestReport", "ingest_arrays", "ingest_images", "load_rgb", "png_size"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""File name suffixes picked up when ingesting a folder (case-insensitive)."""


@dataclass
class IngestReport:
    """What an ingest committed: ids in order, and per id the source PNG bytes and the stored latent bytes."""

    ids: list[str] = field(default_factory=list)
    png_bytes: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """id -> reason, for files that could not be ingested (unreadable, too small, already in the store)."""


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); alpha is composited on white, grey is expanded."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def fit_to_model(pixels: np.ndarray, downscale: int, size: int | None = None) -> np.ndarray:
    """Centre-crop ``pixels`` to multiples of ``downscale``; with ``size``, first resize the longest side to it."""
    from PIL import Image

    if size is not None:
        h, w = pixels.shape[:2]
        scale = size / max(h, w)
        if scale != 1:
            im = Image.fromarray(pixels).resize(
                (max(downscale, round(w * scale)), max(downscale, round(h * scale))), Image.Resampling.LANCZOS
            )
            pixels = np.asarray(im)
    h, w = pixels.shape[:2]
    nh, nw = h - h % downscale, w - w % downscale
    if nh == 0 or nw == 0:
        raise ValueError(f"Expected an image of at least {downscale}x{downscale} pixels. Got {w}x{h} instead.")
    top, left = (h - nh) // 2, (w - nw) // 2
    return np.ascontiguousarray(pixels[top : top + nh, left : left + nw])


def png_size(pixels: np.ndarray) -> int:
    """Bytes of ``pixels`` as an optimised PNG (Pillow ``optimize=True``): the image-store baseline."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=True)
    return buf.tell()


def ingest_arrays(
    store: LatentStore,
    images: Mapping[str, np.ndarray],
    model: LatentAutoencoder,
    *,
    dtype: str = "float16",
    batch_size: int = 8,
    digest: bool = True,
    progress: bool = False,
) -> IngestReport:
    """Encode uint8 RGB pictures ``{id: (H, W, 3)}`` with ``model`` and commit them to ``store``.

    Pictures are grouped by shape and committed one ``put`` per batch of ``batch_size``; a failure leaves every
    earlier batch committed. Ids already in the store are skipped (ids are immutable), and listed in the report.
    """
    from tqdm.auto import tqdm

    from latentzarr.models import pixel_digest

    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1. Got {batch_size!r} instead.")
    validate_ids(images)
    report = IngestReport()
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for image_id, px in images.items():
        if image_id in store:
            report.skipped[image_id] = "already in the store"
            continue
        by_shape.setdefault(px.shape, []).append(image_id)
    setup = model.fingerprint()
    bar = tqdm(total=sum(map(len, by_shape.values())), unit="img", disable=not progress, desc="ingest")
    for ids in by_shape.values():
        for start in range(0, len(ids), batch_size):
            batch_ids = ids[start : start + batch_size]
            pixels = np.stack([images[i] for i in batch_ids])
            latents = model.encode(pixels, dtype=_np_dtype(dtype))
            digests = None
            if digest:
                decoded = model.decode(latents)
                digests = [pixel_digest(d) for d in decoded]
            pngs = [png_size(p) for p in pixels]
            store.put(
                batch_ids,
                latents,
                model=model.name,
                model_attrs={"scaling_factor": model.scaling_factor, "shift_factor": model.shift_factor},
                pixel_digests=digests,
                decoder_setup=setup if digest else None,
                source_bytes=pngs,
            )
            report.ids.extend(batch_ids)
            report.png_bytes.update(zip(batch_ids, pngs, strict=True))
            bar.update(len(batch_ids))
    bar.close()
    return report


def ingest_images(
    store: LatentStore,
    paths: str | Path | Iterable[str | Path],
    model: LatentAutoencoder,
    *,
    size: int | None = None,
    ids: Sequence[str] | None = None,
    **kwargs,
) -> IngestReport:
    """Ingest image files (a folder, scanned for :data:`IMAGE_SUFFIXES`, or explicit paths).

    Ids default to the file stem. Unreadable files are skipped and reported, not fatal. Other keyword
    arguments go to :func:`ingest_arrays`.
    """
    if isinstance(paths, str | Path) and Path(paths).is_dir():
        files = sorted(p for p in Path(paths).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"Expected image files ({', '.join(IMAGE_SUFFIXES)}) in {paths}. Found none.")
    elif isinstance(paths, str | Path):
        files = [Path(paths)]
    else:
        files = [Path(p) for p in paths]
    names = list(ids) if ids is not None else [f.stem for f in files]
    if len(names) != len(files):
        raise ValueError(f"Expected one id per file. Got {len(names)} ids for {len(files)} files instead.")
    pictures: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for name, f in zip(names, files, strict=True):
        try:
            pictures[name] = fit_to_model(load_rgb(f), model.downscale, size)
        except (OSError, ValueError) as exc:
            skipped[name] = f"{f}: {exc}"
    report = ingest_arrays(store, pictures, model, **kwargs)
    report.skipped.update(skipped)
    return report


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if name in ("float16", "float32"):
        return np.dtype(name)
    raise ValueError(f"Expected dtype 'float16', 'bfloat16' or 'float32'. Got {name!r} instead.")
