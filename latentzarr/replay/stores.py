"""The two persistent stores a replay compares: the latent store and an image store of PNG objects beside it.

The image store ("ImgStore") is what a platform keeps without latentzarr: one PNG object per id, in the same
backend (a local folder here), read through the same :class:`~latentzarr.replay.latency.LatencyInjector`.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from latentzarr.errors import UnknownIdError
from latentzarr.ids import validate_id

__all__ = ["ImageObjectStore", "build_image_store", "build_replay_store", "disk_bytes", "image_store_path"]


def disk_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of every file under ``path`` (or of the file itself): the persistent size of a store."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def image_store_path(store_url: str | os.PathLike[str]) -> Path:
    """Default folder of the image store beside a latent store: ``<store>.png/``."""
    return Path(str(store_url).rstrip("/") + ".png")


class ImageObjectStore:
    """A folder holding one PNG object per image id (``<quoted id>.png``).

    Parameters
    ----------
    path
        The folder (created by :func:`build_image_store`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"Expected an image store folder at {str(self.path)!r}. Got nothing there; build "
                                    "it with latentzarr.replay.build_image_store.")

    def _file(self, image_id: str) -> Path:
        return self.path / (quote(validate_id(image_id), safe="") + ".png")

    def put(self, image_id: str, data: bytes) -> None:
        """Write the object of ``image_id`` (atomically: a temporary file renamed into place)."""
        f = self._file(image_id)
        tmp = f.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, f)

    def get(self, image_id: str) -> bytes:
        """The PNG bytes of ``image_id``; raises :class:`~latentzarr.errors.UnknownIdError` when absent."""
        try:
            return self._file(image_id).read_bytes()
        except FileNotFoundError as exc:
            raise UnknownIdError(f"Expected {image_id!r} in the image store {str(self.path)!r}. Got no such object; "
                                 "rebuild the image store from the latent store.") from exc

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self._file(image_id).is_file()

    def nbytes(self) -> int:
        """Persistent bytes (sum of the object sizes)."""
        return disk_bytes(self.path)


def build_image_store(store_url: str | os.PathLike[str], path: str | os.PathLike[str] | None = None, *,
                      model: str | None = None, batch_size: int = 16) -> ImageObjectStore:
    """Decode every latent of a latent store and write each picture as one PNG object in ``path``.

    ``path`` defaults to :func:`image_store_path`; ids already present are skipped. ``model`` defaults to the one
    recorded in the store. Returns the :class:`ImageObjectStore`.
    """
    from latentzarr.models import load_model
    from latentzarr.models.images import encode_image
    from latentzarr.store import LatentStore

    store = LatentStore.open(store_url)
    folder = Path(path) if path is not None else image_store_path(store_url)
    folder.mkdir(parents=True, exist_ok=True)
    images = ImageObjectStore(folder)
    todo = [i for i in store.ids() if i not in images]
    models: dict[str, object] = {}
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        name = model or store.record(batch[0])["model"]
        if name not in models:
            models[name] = load_model(name, device="cpu")
        pixels = models[name].decode(store.get(batch), batch_size=len(batch))
        for image_id, pic in zip(batch, pixels, strict=True):
            images.put(image_id, encode_image(pic, "png"))
    return images


def build_replay_store(path: str | os.PathLike[str], *, n_images: int = 64, size: int = 64, seed: int = 0,
                       dtype: str = "float16", model: str = "taef2") -> tuple[str, ImageObjectStore]:
    """A latent store of ``n_images`` real pictures (random crops of the sample photos) and its image store.

    Returns ``(store_url, image_store)``; the image store lies at :func:`image_store_path` of the store.
    """
    from latentzarr.bench._common import build_sample_store

    url = build_sample_store(path, n_images=n_images, size=size, seed=seed, dtype=dtype, model=model)
    return url, build_image_store(url, model=model)
