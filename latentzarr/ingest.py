"""Turn image files (or pixel arrays) into committed latents in a :class:`~latentzarr.store.LatentStore`.

Pipeline per batch: load RGB pixels -> crop (or pad) to a multiple of the model's downscale (or resize to ``size``) ->
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

__all__ = [
    "IMAGE_SUFFIXES",
    "SKIP_KINDS",
    "IngestReport",
    "find_images",
    "ingest_arrays",
    "ingest_images",
    "load_images",
    "load_rgb",
    "png_size",
    "read_rgb",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""File name suffixes picked up when ingesting a folder (case-insensitive)."""


SKIP_KINDS = ("already in the store", "unreadable", "too small", "duplicate id")
"""Why a file or picture was not ingested (:attr:`IngestReport.skip_kinds`); all but the first are failures."""


@dataclass
class IngestReport:
    """What an ingest committed, what it skipped and why, and what it changed in the pictures it kept.

    ``png_bytes`` are the optimised-PNG bytes of each committed source picture. Changes to pixels are listed per
    id: ``flattened`` (transparent pixels composited on white), ``cropped`` and ``padded`` (to a multiple of the
    model's downscale; ``"WxH -> WxH"``). ``subfolders`` are folders a non-recursive scan did not enter.
    """

    ids: list[str] = field(default_factory=list)
    png_bytes: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    """id -> reason, for files that could not be ingested (unreadable, too small, already in the store)."""
    skip_kinds: dict[str, str] = field(default_factory=dict)
    """id -> one of :data:`SKIP_KINDS`, for every id in ``skipped``."""
    flattened: list[str] = field(default_factory=list)
    cropped: dict[str, str] = field(default_factory=dict)
    padded: dict[str, str] = field(default_factory=dict)
    subfolders: list[str] = field(default_factory=list)

    def skip(self, image_id: str, kind: str, reason: str) -> None:
        """Record that ``image_id`` was skipped, of ``kind`` (one of :data:`SKIP_KINDS`), saying ``reason``."""
        self.skipped[image_id] = reason
        self.skip_kinds[image_id] = kind

    @property
    def failed(self) -> dict[str, str]:
        """The skipped ids that failed (every kind but "already in the store"), with their reasons."""
        return {i: r for i, r in self.skipped.items() if self.skip_kinds.get(i) != SKIP_KINDS[0]}

    def skip_counts(self) -> dict[str, int]:
        """Skipped ids per kind, most frequent first."""
        counts: dict[str, int] = {}
        for image_id in self.skipped:
            kind = self.skip_kinds.get(image_id, "other")
            counts[kind] = counts.get(kind, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def merge(self, loaded: IngestReport) -> IngestReport:
        """Add the skips and subfolders of ``loaded`` (the report of reading the files, which came first), and
        its changes to the pictures this report committed."""
        for image_id, reason in loaded.skipped.items():
            self.skip(image_id, loaded.skip_kinds.get(image_id, "other"), reason)
        done = set(self.ids)
        self.flattened[:0] = [i for i in loaded.flattened if i in done]
        self.cropped = {**{i: c for i, c in loaded.cropped.items() if i in done}, **self.cropped}
        self.padded = {**{i: c for i, c in loaded.padded.items() if i in done}, **self.padded}
        self.subfolders[:0] = loaded.subfolders
        return self


def read_rgb(path: str | Path) -> tuple[np.ndarray, bool]:
    """Read an image file as uint8 RGB (H, W, 3), and whether transparent pixels were composited on white.

    Grey is expanded to RGB; a picture with an alpha channel (or transparency in its palette) is composited on
    white, and the flag is True only when some pixel was not fully opaque (so the stored picture differs).
    """
    from PIL import Image

    with Image.open(path) as im:
        flattened = False
        if im.mode in ("RGBA", "LA", "P", "PA") or "transparency" in im.info:
            im = im.convert("RGBA")
            flattened = im.getchannel("A").getextrema()[0] < 255
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        return np.asarray(im.convert("RGB"), dtype=np.uint8), flattened


def load_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB (H, W, 3); alpha is composited on white, grey is expanded."""
    return read_rgb(path)[0]


def fit_to_model(pixels: np.ndarray, downscale: int, size: int | None = None, *, pad: bool = False) -> np.ndarray:
    """Fit ``pixels`` to multiples of ``downscale``: centre-crop, or with ``pad`` extend the edges (no pixel lost).

    With ``size``, first resize so that the longest side is ``size`` pixels. Padding repeats the edge pixels on
    both sides (centred), so the stored picture is the padded one.
    """
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
    if pad:
        ph, pw = -h % downscale, -w % downscale
        if not (ph or pw):
            return np.ascontiguousarray(pixels)
        return np.pad(pixels, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="edge")
    nh, nw = h - h % downscale, w - w % downscale
    if nh == 0 or nw == 0:
        raise ValueError(f"Expected an image of at least {downscale}x{downscale} pixels. Got {w}x{h} instead; "
                         "pass --pad (pad=True) to pad it.")
    top, left = (h - nh) // 2, (w - nw) // 2
    return np.ascontiguousarray(pixels[top : top + nh, left : left + nw])


def png_size(pixels: np.ndarray) -> int:
    """Bytes of ``pixels`` as an optimised PNG (Pillow ``optimize=True``): the image-store baseline."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=True)
    return buf.tell()


def _check_picture(image_id: str, px: object) -> np.ndarray:
    from latentzarr.errors import InvalidImageError
    from latentzarr.models.autoencoder import rgb_hint

    arr = np.asarray(px)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InvalidImageError(f"Expected uint8 RGB pictures of shape (H, W, 3). Got {arr.dtype} of shape "
                                f"{arr.shape} for {image_id!r} instead{rgb_hint(arr.shape)}.")
    return arr


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
    The progress bar moves per image (per ``model.batch_size`` images, the forward-pass size) and names the step
    it is in (encode, the digest decode, the PNG baseline), so that a large picture shows where it is.

    Raises
    ------
    InvalidImageError
        A picture is not uint8 (H, W, 3); the message names its id and the shape given.
    """
    from tqdm.auto import tqdm

    from latentzarr.models import pixel_digest

    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1. Got {batch_size!r} instead.")
    validate_ids(images)
    report = IngestReport()
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for image_id, px in images.items():
        shape = _check_picture(image_id, px).shape
        if image_id in store:
            report.skip(image_id, SKIP_KINDS[0], "already in the store")
            continue
        by_shape.setdefault(shape, []).append(image_id)
    setup = model.fingerprint()
    step = max(1, int(getattr(model, "batch_size", 1)))
    bar = tqdm(total=sum(map(len, by_shape.values())), unit="img", disable=not progress, desc="ingest")
    for shape, ids in by_shape.items():
        what = f"{shape[1]}x{shape[0]}"
        for start in range(0, len(ids), batch_size):
            batch_ids = ids[start : start + batch_size]
            latents, digests, pngs = [], [], []
            for sub in range(0, len(batch_ids), step):
                pixels = np.stack([np.asarray(images[i]) for i in batch_ids[sub : sub + step]])
                bar.set_postfix_str(f"encoding {what}")
                latents.append(model.encode(pixels, dtype=_np_dtype(dtype)))
                if digest:
                    bar.set_postfix_str(f"decoding {what} for its pixel digest")
                    digests += [pixel_digest(d) for d in model.decode(latents[-1])]
                bar.set_postfix_str(f"PNG size of {what}")
                pngs += [png_size(p) for p in pixels]
                bar.update(len(pixels))
            store.put(
                batch_ids,
                np.concatenate(latents),
                model=model.name,
                model_attrs={"scaling_factor": model.scaling_factor, "shift_factor": model.shift_factor},
                pixel_digests=digests if digest else None,
                decoder_setup=setup if digest else None,
                source_bytes=pngs,
            )
            report.ids.extend(batch_ids)
            report.png_bytes.update(zip(batch_ids, pngs, strict=True))
    bar.set_postfix_str("")
    bar.close()
    return report


def find_images(folder: str | Path, *, recursive: bool = False) -> tuple[list[Path], list[str], list[str]]:
    """Image files of ``folder`` (:data:`IMAGE_SUFFIXES`), their ids, and the subfolders not entered.

    Ids are file names without suffix; with ``recursive``, paths relative to ``folder`` without suffix
    (``"cats/tom"``). Hidden files and folders (a leading dot) are ignored.

    Raises
    ------
    FileNotFoundError
        No image file was found; the message says when subfolders were not entered.
    """
    root = Path(folder)
    entries = root.rglob("*") if recursive else root.iterdir()
    files, subfolders = [], []
    for p in entries:
        parts = p.relative_to(root).parts
        if any(part.startswith(".") for part in parts):
            continue
        if p.is_dir():
            if not recursive:
                subfolders.append(p.name)
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            files.append(p)
    files.sort()
    if not files:
        more = (f"; it has {len(subfolders)} subfolder(s), which --recursive (recursive=True) scans"
                if subfolders else "")
        raise FileNotFoundError(f"Expected image files ({', '.join(IMAGE_SUFFIXES)}) in {root}. Found none{more}.")
    ids = [p.relative_to(root).with_suffix("").as_posix() for p in files]
    return files, ids, sorted(subfolders)


def load_images(
    paths: str | Path | Iterable[str | Path],
    downscale: int,
    *,
    size: int | None = None,
    ids: Sequence[str] | None = None,
    pad: bool = False,
    recursive: bool = False,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], IngestReport]:
    """Read image files as pictures ready to encode, and a report of what was skipped or changed.

    ``paths`` is a folder (see :func:`find_images`), one file, or a list of files. Unreadable and too small
    files are skipped (reported, not fatal); so is a second file with the same id (``a.png`` and ``a.jpg``).
    """
    from tqdm.auto import tqdm

    report = IngestReport()
    if isinstance(paths, str | Path) and Path(paths).is_dir():
        files, names, report.subfolders = find_images(paths, recursive=recursive)
    else:
        files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        names = [f.stem for f in files]
    if ids is not None:
        names = list(ids)
    if len(names) != len(files):
        raise ValueError(f"Expected one id per file. Got {len(names)} ids for {len(files)} files instead.")
    pictures: dict[str, np.ndarray] = {}
    for name, f in tqdm(list(zip(names, files, strict=True)), unit="img", desc="read", disable=not progress):
        if name in pictures:
            report.skip(name, "duplicate id", f"{f}: another file already gave the id {name!r}")
            continue
        try:
            rgb, flattened = read_rgb(f)
        except (OSError, ValueError) as exc:
            report.skip(name, "unreadable", f"{f}: {exc}")
            continue
        try:
            px = fit_to_model(rgb, downscale, size, pad=pad)
        except ValueError as exc:
            report.skip(name, "too small", f"{f}: {exc}")
            continue
        pictures[name] = px
        if flattened:
            report.flattened.append(name)
        fitted = rgb.shape if size is None else _resized_shape(rgb.shape, size, downscale)
        if px.shape != fitted:
            change = f"{fitted[1]}x{fitted[0]} -> {px.shape[1]}x{px.shape[0]}"
            (report.padded if pad else report.cropped)[name] = change
    return pictures, report


def _resized_shape(shape: tuple[int, ...], size: int, downscale: int) -> tuple[int, ...]:
    h, w = shape[:2]
    scale = size / max(h, w)
    if scale == 1:
        return shape
    return (max(downscale, round(h * scale)), max(downscale, round(w * scale)), 3)


def ingest_images(
    store: LatentStore,
    paths: str | Path | Iterable[str | Path],
    model: LatentAutoencoder,
    *,
    size: int | None = None,
    ids: Sequence[str] | None = None,
    pad: bool = False,
    recursive: bool = False,
    **kwargs,
) -> IngestReport:
    """Ingest image files (a folder, scanned for :data:`IMAGE_SUFFIXES`, or explicit paths).

    Ids default to the file stem (with ``recursive``, the path below the folder). Unreadable files are skipped
    and reported, not fatal; what was changed to fit the model (alpha flattened, cropped or, with ``pad``,
    padded) is listed in the report. Other keyword arguments go to :func:`ingest_arrays`.
    """
    pictures, loaded = load_images(paths, model.downscale, size=size, ids=ids, pad=pad, recursive=recursive,
                                   progress=kwargs.get("progress", False))
    return ingest_arrays(store, pictures, model, **kwargs).merge(loaded)


def _np_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if name in ("float16", "float32"):
        return np.dtype(name)
    raise ValueError(f"Expected dtype 'float16', 'bfloat16' or 'float32'. Got {name!r} instead.")
