"""The two persistent stores a replay compares: the latent store and an image store of PNG objects beside it.

The image store ("ImgStore") is what a platform keeps without latentzarr: one PNG object per id, in the same
object store as the latent store (a local folder, or ``s3://bucket/prefix`` on S3 or the moto stand-in), served by
the same workers (the worker plugin's ``imgstore`` mode) with the same GET latency model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from latentzarr.errors import UnknownIdError
from latentzarr.ids import validate_id

__all__ = ["ImageObjectStore", "build_image_store", "build_replay_store", "disk_bytes", "image_store_path"]


def disk_bytes(path: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> int:
    """Bytes of every object under ``path`` (a folder or URL; or of the file itself): a store's persistent size."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(path), **dict(storage_options or {}))
    if fs.isfile(root):
        return int(fs.size(root))
    return int(sum(info.get("size", 0) for info in fs.find(root, detail=True).values()))


def image_store_path(store_url: str | os.PathLike[str]) -> str:
    """Default location of the image store beside a latent store: ``<store>.png`` (a folder or URL)."""
    return str(store_url).rstrip("/") + ".png"


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


class ImageObjectStore:
    """One PNG object per image id (``<quoted id>.png``) under a folder or object-store prefix.

    Parameters
    ----------
    url
        Folder or fsspec URL (``s3://bucket/prefix``) built by :func:`build_image_store`.
    storage_options
        fsspec options (e.g. ``{"endpoint_url": ...}`` for the moto S3 stand-in).
    create
        Create the folder when missing (local only; object stores have no folders).
    """

    def __init__(self, url: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None, *,
                 create: bool = False) -> None:
        import fsspec

        self.url = str(url).rstrip("/")
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        if _is_local(self.url):
            if create:
                Path(self.root).mkdir(parents=True, exist_ok=True)
            if not self.fs.isdir(self.root):
                raise FileNotFoundError(f"Expected an image store folder at {self.url!r}. Got nothing there; build "
                                        "it with latentzarr.replay.build_image_store.")

    @property
    def path(self) -> str:
        """The folder or URL (as given)."""
        return self.url

    def __reduce__(self) -> tuple[Any, ...]:
        return (ImageObjectStore, (self.url, self.storage_options))

    def _key(self, image_id: str) -> str:
        return f"{self.root}/{quote(validate_id(image_id), safe='')}.png"

    def put(self, image_id: str, data: bytes) -> None:
        """Write the object of ``image_id`` (atomically on a local folder: a temporary file renamed into place)."""
        key = self._key(image_id)
        if _is_local(self.url):
            tmp = key[:-4] + ".tmp"
            Path(tmp).write_bytes(data)
            os.replace(tmp, key)
        else:
            self.fs.pipe_file(key, data)

    def get(self, image_id: str) -> bytes:
        """The PNG bytes of ``image_id`` (one GET); raises :class:`~latentzarr.errors.UnknownIdError` when absent."""
        try:
            return self.fs.cat_file(self._key(image_id))
        except FileNotFoundError as exc:
            raise UnknownIdError(f"Expected {image_id!r} in the image store {self.url!r}. Got no such object; "
                                 "rebuild the image store from the latent store.") from exc

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self.fs.exists(self._key(image_id))

    def keys(self) -> set[str]:
        """Object names present (one listing)."""
        try:
            return {p.rsplit("/", 1)[-1] for p in self.fs.find(self.root)}
        except FileNotFoundError:
            return set()

    def nbytes(self) -> int:
        """Persistent bytes (sum of the object sizes)."""
        return disk_bytes(self.url, self.storage_options)


def build_image_store(store_url: str | os.PathLike[str], path: str | os.PathLike[str] | None = None, *,
                      model: str | None = None, batch_size: int = 16,
                      storage_options: Mapping[str, Any] | None = None,
                      image_storage_options: Mapping[str, Any] | None = None) -> ImageObjectStore:
    """Decode every latent of a latent store and write each picture as one PNG object in ``path``.

    ``path`` defaults to :func:`image_store_path`; ids already present are skipped. ``model`` defaults to the one
    recorded in each id's array. Stores holding pictures of several sizes (several arrays) work: ids are decoded
    per array. On failure, a folder this call created is removed again. Returns the :class:`ImageObjectStore`.
    """
    import shutil

    import numpy as np

    from latentzarr.models import load_model
    from latentzarr.models.images import encode_image
    from latentzarr.store import LatentStore

    store = LatentStore.open(store_url, storage_options=storage_options)
    target = str(path) if path is not None else image_store_path(store_url)
    made = _is_local(target) and not Path(target).exists()
    try:
        images = ImageObjectStore(target, image_storage_options, create=True)
        have = images.keys()
        cat = store.catalog()
        todo_mask = np.array([quote(str(i), safe="") + ".png" not in have for i in cat["id"]], dtype=bool)
        models: dict[str, Any] = {}
        for array in np.unique(cat["array"][todo_mask]) if todo_mask.any() else []:
            todo = [str(i) for i in cat["id"][todo_mask & (cat["array"] == array)]]
            name = model or store.record(todo[0])["model"]
            if name not in models:
                models[name] = load_model(name, device="cpu")
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                pixels = models[name].decode(store.get(batch), batch_size=len(batch))
                for image_id, pic in zip(batch, pixels, strict=True):
                    images.put(image_id, encode_image(pic, "png"))
    except BaseException:
        if made:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return images


def build_replay_store(path: str | os.PathLike[str], *, n_images: int = 64, size: int | tuple[int, ...] = 64,
                       seed: int = 0, dtype: str = "float16", model: str = "taef2"
                       ) -> tuple[str, ImageObjectStore]:
    """A latent store of ``n_images`` real pictures (random crops of the sample photos) and its image store.

    ``size`` may list several sizes (px): the pictures then cycle through them, one array per size. Returns
    ``(store_url, image_store)``; the image store lies at :func:`image_store_path` of the store.
    """
    from latentzarr.bench._common import build_sample_store

    url = build_sample_store(path, n_images=n_images, size=size, seed=seed, dtype=dtype, model=model)
    return url, build_image_store(url, model=model)
