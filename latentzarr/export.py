"""Decode stored latents back to pictures, check them against the pixel digest recorded at ingest, write files.

A digest match proves the decode is bit-exact with the one made at ingest. Decodes are deterministic only for a
fixed setup (model weights, device, thread count, batch size; see ``LatentAutoencoder.fingerprint``), so a
mismatch on a *different* setup is reported as "setup differs", not as corruption.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from latentzarr.models import LatentAutoencoder
    from latentzarr.store import LatentStore

__all__ = ["DigestCheck", "ExportReport", "ModelCache", "decode_ids", "export_images"]


@dataclass
class ExportReport:
    """Files written and the digest verdict per id: ``"match"``, ``"mismatch"``, ``"setup differs"``, ``"none"``."""

    paths: dict[str, Path] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    @property
    def mismatches(self) -> list[str]:
        """Ids whose decode differs from the ingest decode although the setup is the same."""
        return [i for i, v in self.digests.items() if v == "mismatch"]


class DigestCheck:
    """Compare a fresh decode with the digest stored at ingest, given the decoder setup of both."""

    def __init__(self, model: LatentAutoencoder) -> None:
        self._setup = model.fingerprint()

    def __call__(self, record: dict, pixels: np.ndarray) -> str:
        from latentzarr.models import pixel_digest

        stored = record.get("pixel_sha256")
        if not stored:
            return "none"
        if pixel_digest(pixels) == stored:
            return "match"
        ingest_setup = record.get("decoder_setup")
        if isinstance(ingest_setup, str):
            ingest_setup = json.loads(ingest_setup)
        return "mismatch" if ingest_setup == self._setup else "setup differs"


class ModelCache(dict):
    """Decoders by model name, each loaded once; ``fixed`` (if given) is used for every name."""

    def __init__(self, fixed: LatentAutoencoder | None = None) -> None:
        super().__init__()
        self.fixed = fixed

    def __missing__(self, name: str) -> LatentAutoencoder:
        from latentzarr.models import load_model

        self[name] = model = self.fixed or load_model(name)
        return model


def decode_ids(
    store: LatentStore,
    ids: Iterable[str],
    *,
    model: LatentAutoencoder | None = None,
    read_batch: int = 8,
    models: ModelCache | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(id, uint8 (H, W, 3))`` for ``ids``, reading ``read_batch`` latents of one array at a time.

    Decodes use the model's own batch size (part of its :meth:`fingerprint`), so a decode is comparable with
    the digest recorded at ingest. ``model`` defaults to the model recorded in each id's array.
    """
    models = models if models is not None else ModelCache(model)
    by_array: dict[str, list[str]] = {}
    for image_id in ids:
        by_array.setdefault(store.record(image_id)["array"], []).append(image_id)
    for group in by_array.values():
        dec = models[store.record(group[0])["model"]]
        for start in range(0, len(group), read_batch):
            batch = group[start : start + read_batch]
            yield from zip(batch, dec.decode(np.stack(store.get_many(batch))), strict=True)


def export_images(
    store: LatentStore,
    ids: Iterable[str],
    out_dir: str | Path,
    *,
    format: str = "png",
    size: int | None = None,
    quality: int | None = None,
    model: LatentAutoencoder | None = None,
    progress: bool = False,
) -> ExportReport:
    """Decode ``ids`` and write ``<out_dir>/<n>.<format>`` files; check each against its ingest digest.

    File names are a running number plus a sanitised id (ids are opaque strings, never paths); the mapping is
    returned in the report and written to ``<out_dir>/index.json``. Exporting into a folder that holds an earlier
    export adds to it: its index keeps the earlier entries, new files continue its numbering, and an id exported
    again replaces its own earlier file. Every id and the rendition are checked before anything is decoded or
    written.

    Raises
    ------
    UnknownIdError
        An id is not in the store (the message names how many and the first few); nothing is written.
    InvalidRenditionError
        ``format``, ``size`` or ``quality`` cannot be produced; nothing is written.
    FileExistsError
        ``out_dir`` holds an ``index.json`` that is not an export index; nothing is written.
    """
    from tqdm.auto import tqdm

    from latentzarr.errors import UnknownIdError
    from latentzarr.models import encode_image
    from latentzarr.models.images import Rendition

    ids = list(dict.fromkeys(ids))  # each id once, in order
    missing = [i for i in ids if i not in store]
    if missing:
        more = ""
        if len(missing) > 1:
            shown = ", ".join(map(repr, missing[1:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            more = f" (nor is {shown})"
        raise UnknownIdError(missing[0], f"the store {store.url!r}{more}; nothing was exported")
    Rendition.parse(format, size, quality)
    out = Path(out_dir)
    index = read_export_index(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    models = ModelCache(model)
    checks: dict[str, DigestCheck] = {}
    numbers = [int(e["file"].split("-", 1)[0]) for e in index.values() if e["file"].split("-", 1)[0].isdigit()]
    next_n = max(numbers, default=-1) + 1
    suffix = "jpg" if format.lower() in ("jpeg", "jpg") else format.lower()
    for image_id, pixels in tqdm(decode_ids(store, ids, models=models), total=len(ids), disable=not progress,
                                 unit="img", desc="decode"):
        record = store.record(image_id)
        if record["model"] not in checks:
            checks[record["model"]] = DigestCheck(models[record["model"]])
        check = checks[record["model"]]
        report.digests[image_id] = check(record, pixels)
        earlier = index.get(image_id, {}).get("file")
        number = earlier.split("-", 1)[0] if earlier else f"{next_n:05d}"
        next_n += earlier is None
        path = out / f"{number}-{_safe_name(image_id)}.{suffix}"
        path.write_bytes(encode_image(pixels, format=format, size=size, quality=quality))
        if earlier and earlier != path.name:
            (out / earlier).unlink(missing_ok=True)  # this id's earlier file from this index, in another format
        report.paths[image_id] = path
        index[image_id] = {"file": path.name, "digest": report.digests[image_id]}
    tmp = out / f".index.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / "index.json")
    return report


def read_export_index(out_dir: str | Path) -> dict[str, dict[str, str]]:
    """The ``index.json`` an earlier :func:`export_images` wrote to ``out_dir`` (``{}`` when there is none).

    Raises
    ------
    FileExistsError
        ``out_dir/index.json`` exists but is not an export index (so it is not overwritten).
    """
    path = Path(out_dir) / "index.json"
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or not all(isinstance(v, dict) and isinstance(v.get("file"), str)
                                                for v in doc.values()):
            raise ValueError("not a mapping of id -> {file, digest}")
    except ValueError as exc:
        raise FileExistsError(f"Expected {out_dir} to be empty or to hold an earlier export. Got an index.json that "
                              f"is not an export index instead ({exc}); choose another folder.") from None
    return doc


def _safe_name(image_id: str, limit: int = 60) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in image_id)
    return keep.strip(".")[:limit] or "image"
