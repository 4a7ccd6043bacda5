"""Where a batch decode writes: a Zarr v3 group of uint8 image arrays, or image shards (one tar per chunk).

Layout of ``OUT`` (local folder or fsspec URL). The manifest records format, batch size, source store and,
per output array, its ids in selection order. Format ``"zarr"`` is a plain Zarr v3 hierarchy::

    zarr.json                 the group; attribute ``latentzarr_batch`` is the manifest
    <array>/                  uint8 (N, H, W, 3), chunks (batch_size, H, W, 3), attribute ``image_id``
    _done/<array>/            uint8 (n_chunks,), chunks (1,): 1 once image chunk ``i`` is written

Image formats (``png``, ``webp``, ``jpeg``)::

    latentzarr-batch.json     the manifest
    <array>/<index>.tar       chunk ``index``: members ``<row>-<id>.<ext>`` in row order (pax header: the id)
    _done/<array>/<index>     completion marker of one chunk (its ids, as JSON)

A chunk's marker is written *after* its data, so a chunk counts as finished only when its marker exists, and a
run that dies midway leaves at worst a chunk of data without a marker, which the next run rewrites (with
identical bytes: decodes are deterministic on a fixed setup). The manifest is written before any data and
checked on every re-run: a different batch size, format or selection is refused rather than mixed into the old
output.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
from typing import Any

import numpy as np

from latentzarr.batch.plan import Chunk, OutputArray
from latentzarr.errors import BatchOutputError

__all__ = ["FORMATS", "MANIFEST", "BatchOutput", "BatchOutputError"]

MANIFEST = "latentzarr-batch.json"
ATTR = "latentzarr_batch"
MARKERS = "_done"
FORMAT_VERSION = 1
FORMATS = ("zarr", "png", "webp", "jpeg")
"""Output formats: one Zarr uint8 array per source array, or tar shards of encoded images."""


class BatchOutput:
    """One batch-decode output location; picklable (workers reopen it by URL).

    Parameters
    ----------
    url
        Local folder or fsspec URL.
    format
        One of :data:`FORMATS`.
    quality
        Encoder quality (1-100) for ``webp``/``jpeg`` (None: the encoder default).
    storage_options
        fsspec options for ``url``.
    """

    def __init__(self, url: str, *, format: str = "zarr", quality: int | None = None,
                 storage_options: dict[str, Any] | None = None) -> None:
        fmt = "jpeg" if format == "jpg" else format
        if fmt not in FORMATS:
            raise ValueError(f"Expected format in {FORMATS}. Got {format!r} instead.")
        self.url = str(url)
        self.format = fmt
        self.quality = quality
        self.storage_options = dict(storage_options or {})
        self._state: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_state", "_lock")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._state = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ plumbing
    @property
    def _fs(self) -> tuple[Any, str]:
        if "fs" not in self._state:
            from fsspec.core import url_to_fs

            fs, root = url_to_fs(self.url, **self.storage_options)
            self._state["fs"] = (fs, root.rstrip("/"))
        return self._state["fs"]

    def _path(self, *parts: str) -> str:
        _, root = self._fs
        return "/".join((root, *parts))

    def _zarr_array(self, name: str) -> Any:
        import zarr

        with self._lock:
            arrays = self._state.setdefault("arrays", {})
            if name not in arrays:
                arrays[name] = zarr.open_array(self.url, path=name, mode="r+",
                                               storage_options=self.storage_options or None)
            return arrays[name]

    # ------------------------------------------------------------------------------------------ setup
    def prepare(self, arrays: list[OutputArray], *, batch_size: int, source: str) -> set[str]:
        """Create the output (or check that an existing one matches) and return the keys of finished chunks.

        Raises
        ------
        FileExistsError
            ``url`` holds something that is not a batch-decode output.
        BatchOutputError
            ``url`` holds a batch-decode output made with another batch size, format or selection.
        """
        fs, _ = self._fs
        manifest = {"format_version": FORMAT_VERSION, "format": self.format, "quality": self.quality,
                    "batch_size": batch_size, "source": source,
                    "arrays": {a.name: {"model": a.model, "latent_shape": list(a.latent_shape),
                                        "image_shape": list(a.image_shape), "images": len(a.ids),
                                        "ids_sha256": _ids_digest(a.ids)} for a in arrays}}
        old = self._read_manifest()
        if old is not None:
            self._check_manifest(old, manifest)
        elif fs.exists(self._path()) and fs.ls(self._path()):
            raise FileExistsError(
                f"Expected an empty or missing output folder at {self.url!r}. Got a folder holding other data "
                "(not a latentzarr batch-decode output) instead; choose a new path or empty it.")
        if self.format == "zarr":
            self._create_zarr(arrays, batch_size, manifest if old is None else None)
        elif old is None:
            fs.makedirs(self._path(), exist_ok=True)
            listed = {**manifest, "ids": {a.name: list(a.ids) for a in arrays}}  # the shards' id index
            fs.pipe_file(self._path(MANIFEST), json.dumps(listed, indent=1).encode())
        return self.finished(arrays, batch_size)

    def _read_manifest(self) -> dict[str, Any] | None:
        """The manifest of an existing output (Zarr group attribute or JSON file), or None."""
        fs, _ = self._fs
        if fs.exists(self._path(MANIFEST)):
            return json.loads(fs.cat_file(self._path(MANIFEST)))
        if fs.exists(self._path("zarr.json")):
            attrs = json.loads(fs.cat_file(self._path("zarr.json"))).get("attributes", {})
            if isinstance(attrs.get(ATTR), dict):
                return attrs[ATTR]
        return None

    def _check_manifest(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for field, what in (("format", "format"), ("batch_size", "batch size"), ("quality", "quality")):
            if old.get(field) != new[field]:
                raise BatchOutputError(
                    f"Expected {what} {old.get(field)!r} to resume the batch decode in {self.url!r}. Got "
                    f"{new[field]!r} instead; pass {field}={old.get(field)!r} or write to a new path.")
        if old.get("arrays") != new["arrays"]:
            raise BatchOutputError(
                f"Expected the same selection of ids to resume the batch decode in {self.url!r}. Got a "
                "different selection (other ids, order or arrays) instead; write it to a new path.")

    def _create_zarr(self, arrays: list[OutputArray], batch_size: int, manifest: dict[str, Any] | None) -> None:
        """Create the group (with the manifest as attribute ``latentzarr_batch``), image and marker arrays."""
        import zarr

        opts = self.storage_options or None
        if manifest is not None:  # the manifest goes first: a later failure leaves a resumable output
            zarr.create_group(self.url, zarr_format=3, attributes={ATTR: manifest}, storage_options=opts)
        group = zarr.open_group(self.url, mode="r+", zarr_format=3, storage_options=opts)
        markers = group.require_group(MARKERS)
        for a in arrays:
            if not self._fs[0].exists(self._path(a.name, "zarr.json")):
                group.create_array(a.name, shape=(len(a.ids), *a.image_shape),
                                   chunks=(batch_size, *a.image_shape), dtype="uint8", fill_value=0,
                                   dimension_names=("image", "y", "x", "rgb"),
                                   attributes={"image_id": list(a.ids), "model": a.model}, overwrite=True)
            if not self._fs[0].exists(self._path(MARKERS, a.name, "zarr.json")):
                n_chunks = -(-len(a.ids) // batch_size)
                markers.create_array(a.name, shape=(n_chunks,), chunks=(1,), dtype="uint8",
                                   fill_value=0, compressors=None, overwrite=True,
                                   attributes={"description": "1 where the image chunk is finished"})

    def finished(self, arrays: list[OutputArray], batch_size: int) -> set[str]:
        """Keys (``<array>/<index>``) of the chunks whose marker exists."""
        out = set()
        if self.format == "zarr":
            for a in arrays:
                done = self._zarr_array(f"{MARKERS}/{a.name}")[:]
                out.update(f"{a.name}/{int(i):08d}" for i in np.flatnonzero(done))
            return out
        fs, _ = self._fs
        for a in arrays:
            base = self._path(MARKERS, a.name)
            if fs.exists(base):
                out.update(f"{a.name}/{p.rstrip('/').rsplit('/', 1)[-1]}" for p in fs.ls(base, detail=False))
        return out

    # ------------------------------------------------------------------------------------------ writing
    def write(self, chunk: Chunk, pixels: np.ndarray) -> None:
        """Write one decoded chunk (uint8 (n, H, W, 3)), then its completion marker."""
        if pixels.shape[0] != len(chunk.ids):
            raise ValueError(f"Expected {len(chunk.ids)} images for chunk {chunk.key}. Got {pixels.shape[0]}.")
        if self.format == "zarr":
            self._zarr_array(chunk.array)[chunk.start:chunk.start + len(chunk.ids)] = pixels
            self._zarr_array(f"{MARKERS}/{chunk.array}")[chunk.index] = 1  # one chunk object: atomic
            return
        fs, _ = self._fs
        fs.makedirs(self._path(chunk.array), exist_ok=True)
        fs.pipe_file(self.shard_path(chunk), self._tar(chunk, pixels))
        fs.makedirs(self._path(MARKERS, chunk.array), exist_ok=True)
        fs.pipe_file(self._path(MARKERS, chunk.key), json.dumps(list(chunk.ids)).encode())

    def shard_path(self, chunk: Chunk) -> str:
        """Path of chunk's tar shard (image formats)."""
        return self._path(chunk.array, f"{chunk.index:08d}.tar")

    def _tar(self, chunk: Chunk, pixels: np.ndarray) -> bytes:
        from latentzarr.models.images import encode_image

        ext = "jpg" if self.format == "jpeg" else self.format
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for n, (image_id, image) in enumerate(zip(chunk.ids, pixels, strict=True)):
                data = encode_image(image, format=self.format, quality=self.quality)
                info = tarfile.TarInfo(f"{chunk.start + n:08d}-{_safe_name(image_id)}.{ext}")
                info.size = len(data)
                info.pax_headers = {"latentzarr.image_id": image_id}
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def _safe_name(image_id: str, limit: int = 60) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in image_id)
    return keep.strip(".")[:limit] or "image"


def _ids_digest(ids: tuple[str, ...]) -> str:
    """SHA-256 hex of the ids in order (NUL-separated UTF-8), to recognise a selection on resume."""
    import hashlib

    h = hashlib.sha256()
    for image_id in ids:
        h.update(image_id.encode("utf-8") + b"\0")
    return h.hexdigest()
