"""The whole replay pipeline behind ``latentzarr replay``: build the stores if missing, put them in the object
store, replay (:func:`~latentzarr.replay.replay_trace`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from latentzarr.errors import LatentZarrError

__all__ = ["run_replay"]


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_replay(store: str | os.PathLike[str], trace: Any, *, image_store: str | None = None,
               objects: int | None = None, sizes: Sequence[int] = (48,), dtype: str = "bfloat16",
               object_store: str = "moto", build_threads: int | None = 1, log: Callable[[str], None] | None = None,
               **replay_options: Any) -> dict[str, Any]:
    """Replay ``trace`` against ``store``, building what is missing first.

    Parameters
    ----------
    store
        A latent store (local folder or URL). A local folder that does not exist is built from ``objects``
        distinct crops of the sample photos at ``sizes`` px (cycled) with latents of ``dtype``.
    image_store
        Folder of the PNG objects (default ``STORE.png``); built from the store when missing or empty.
    object_store
        ``"moto"``: copy both into a moto S3 stand-in started for the run (:mod:`latentzarr.replay.objectstore`)
        and serve from there; ``"local"``: serve from the folders.
    build_threads
        ``torch.set_num_threads`` while building (restored after; None leaves it): on a shared machine one
        thread per process is several times faster than threads that wait on each other.
    replay_options
        Passed to :func:`~latentzarr.replay.replay_trace`.
    """
    from latentzarr.replay.driver import replay_trace
    from latentzarr.replay.stores import build_image_store, build_replay_store, image_store_path

    say = log or (lambda _line: None)
    if object_store not in ("moto", "local"):
        raise ValueError(f"Expected object_store 'moto' or 'local'. Got {object_store!r} instead.")
    url = str(store)
    local = "://" not in url
    if local and not Path(url).exists():
        if not objects:
            raise LatentZarrError(f"Expected a latentzarr store at {url!r}. Got no Zarr v3 group there instead. "
                                  f"Create one with `latentzarr ingest-images DIR {url}`, or pass --objects N (or "
                                  "--quick) to build one from crops of the sample photos.")
        say(f"building {url}: {objects} pictures at {'/'.join(map(str, sizes))} px, {dtype} latents")
        with _torch_threads(build_threads):
            build_replay_store(url, n_images=objects, size=list(sizes), dtype=dtype)
    images = str(image_store) if image_store else image_store_path(url)
    if "://" not in images and (not Path(images).is_dir() or not any(Path(images).iterdir())):
        say(f"building the image store {images} from {url}")
        with _torch_threads(build_threads):
            build_image_store(url, images)
    if object_store == "local":
        return replay_trace(url, trace, image_store=images, log=say, **replay_options)
    if not local or "://" in images:
        raise LatentZarrError(f"Expected local folders to copy into the moto object store. Got {url!r} and "
                              f"{images!r}; use --object-store local for stores already in an object store.")
    from latentzarr.replay.objectstore import moto_object_store, upload

    with moto_object_store() as options:
        name = Path(url).name
        say(f"copying {name} and its PNG objects into the moto S3 stand-in at {options['endpoint_url']}")
        s3_store = upload(url, f"s3://latentzarr-replay/{name}", options)
        s3_images = upload(images, f"s3://latentzarr-replay/{name}.png", options)
        result = replay_trace(s3_store, trace, image_store=s3_images, storage_options=options, log=say,
                              **replay_options)
        result["object_store"] = "moto"
        return result
