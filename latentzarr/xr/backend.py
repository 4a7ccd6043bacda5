"""The xarray backend: ``xr.open_dataset(url, engine="latentzarr")`` opens a latent store as a lazy Dataset.

The Dataset holds variable ``latent`` (image, channel, y, x) with the committed latents only, in ingest order
(``created``, then array name, then row), and per image these indexed coordinates: ``image_id``
(``ds.sel(image_id=[...])``), ``model`` (``ds.sel(model="taef2")``), ``array`` (the store array it lives in) and
``created`` (ingest commit time, UTC, from the id index; ``ds.sel(created=slice("2026-11-24T12:00", None))``).

Which arrays: a store holds one array per (model, latent shape, dtype). ``array=None`` opens every array that
holds images when they all share one latent shape (C, h, w), concatenated along ``image`` in array-name then row
order, with the widest dtype (float16 < float32; bfloat16 is shown as float32, exactly). Arrays of different
shapes cannot share a variable, so then ``array=`` (a name, or a list of names of one shape) is required and the
error lists the choices. ``group=`` is accepted as a synonym of ``array=`` (``"arrays/<name>"`` or ``"<name>"``).

Reads are lazy: nothing is read until values are needed, and then only the selected images (one
``LatentStore.get`` per array touched). ``chunks={}`` gives a dask-backed Dataset with one chunk per shard
(xarray wraps what a backend returns in its own lazy arrays, so a backend cannot make ``chunks=None`` dask-backed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

import latentzarr.xr.accessor  # noqa: F401  (registers the ``latent`` accessors for every opener)
from latentzarr.errors import MixedArraysError, NotALatentStoreError

if TYPE_CHECKING:
    from latentzarr.store import LatentStore

__all__ = ["LatentBackendArray", "LatentBackendEntrypoint", "latent_dataset"]

_ARRAYS_PREFIX = "arrays/"


class LatentBackendArray(BackendArray):
    """Lazily indexed latents of a list of ids, possibly spread over several store arrays of one latent shape.

    Indexing reads only the selected images, by id (:meth:`LatentStore.get_many`: one read per store array touched,
    bit-exact, corruption-checked, following ids a rewrite moved since the open), cast to :attr:`dtype` (exact:
    float16 and bfloat16 values are float32 values).

    Parameters
    ----------
    store
        The open store (pickles as "reopen this URL", so the array can travel to Dask workers).
    ids
        Image ids, in Dataset order.
    arrays
        Store array names (as of the open).
    shape
        (images, C, h, w).
    dtype
        Dtype of the values returned.
    """

    def __init__(self, store: LatentStore, ids: np.ndarray, arrays: Sequence[str], shape: tuple[int, int, int, int],
                 dtype: np.dtype) -> None:
        self.store = store
        self.ids = ids
        self.arrays = tuple(arrays)
        self.shape = shape
        self.dtype = np.dtype(dtype)

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        """Orthogonal (outer) selection ``key``: one int, slice or 1-D int array per dimension."""
        images = np.arange(self.shape[0])[key[0]]
        squeeze = [axis for axis, k in enumerate(key) if isinstance(k, int | np.integer)]
        images = np.atleast_1d(images)
        out = np.empty((len(images), *self.shape[1:]), dtype=self.dtype)
        if len(images):  # by id, not by captured rows: ids a rewrite moved since the open are read where they are now
            for i, latent in enumerate(self.store.get_many(self.ids[images].tolist())):
                out[i] = latent.astype(self.dtype)
        for axis, k in enumerate(key[1:], start=1):
            if isinstance(k, slice) and k == slice(None):
                continue
            k = [k] if isinstance(k, int | np.integer) else k
            out = out[(slice(None),) * axis + (k,)]
        return out.squeeze(axis=tuple(squeeze)) if squeeze else out


def _choose_arrays(listing: list[dict[str, Any]], array: str | Sequence[str] | None, url: str) -> list[dict]:
    """The store arrays to open (see the module docstring for the rules)."""
    by_name = {a["name"]: a for a in listing}
    if array is None:
        chosen = [a for a in listing if a["images"] > 0]
        shapes = sorted({tuple(a["shape"]) for a in chosen})
        if len(shapes) > 1:
            choices = {a["name"]: {"shape": list(a["shape"]), "images": a["images"]} for a in chosen}
            raise MixedArraysError(
                f"Expected the arrays of {url!r} to share one latent shape to open them together. Got shapes "
                f"{shapes} instead; pass array=<name> (or a list of names of one shape), one of {choices}."
            )
        return chosen
    names = [array] if isinstance(array, str) else list(array)
    names = [n.removeprefix(_ARRAYS_PREFIX) if isinstance(n, str) else n for n in names]
    unknown = [n for n in names if n not in by_name]
    if unknown or not names:
        raise ValueError(
            f"Expected array= naming arrays of the store {url!r}, among {sorted(by_name)!r}. Got {array!r} "
            "instead."
        )
    chosen = [by_name[n] for n in dict.fromkeys(names)]
    shapes = sorted({tuple(a["shape"]) for a in chosen})
    if len(shapes) > 1:
        raise MixedArraysError(
            f"Expected arrays of one latent shape. Got {[(a['name'], list(a['shape'])) for a in chosen]} "
            "instead; open them one at a time."
        )
    return chosen


def _value_dtype(dtypes: Iterable[str]) -> np.dtype:
    """The dtype that holds every logical dtype exactly (bfloat16 -> float32)."""
    shown = [np.dtype(np.float32) if d == "bfloat16" else np.dtype(d) for d in dtypes]
    return np.result_type(*shown) if shown else np.dtype(np.float32)


def _shard_chunks(arrays: Sequence[str], codes: np.ndarray, rows: np.ndarray, shard_images: dict[str, int]
                  ) -> tuple[int, ...]:
    """Chunk sizes along ``image``: a new chunk where the array or the shard changes."""
    if len(codes) == 0:
        return (0,)
    shard = np.array([rows[i] // shard_images[arrays[codes[i]]] for i in range(len(rows))], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, (np.diff(codes) != 0) | (np.diff(shard) != 0)])
    return tuple(int(s) for s in np.diff(np.r_[starts, len(codes)]))


def latent_dataset(store: LatentStore, array: str | Sequence[str] | None = None, *,
                   drop_variables: str | Iterable[str] | None = None) -> xr.Dataset:
    """The lazy Dataset of ``store`` that ``xr.open_dataset(..., engine="latentzarr")`` returns.

    The per-image coordinates come from one pass over the store's index (:meth:`LatentStore.catalog`).
    """
    store.refresh()
    chosen = _choose_arrays(store.arrays(), array, store.url)
    names = [a["name"] for a in chosen]
    code_of = {n: i for i, n in enumerate(names)}
    cat = store.catalog()
    all_codes = np.array([code_of.get(a, -1) for a in cat["array"]], dtype=np.int64)
    keep = np.flatnonzero(all_codes >= 0)
    order = keep[np.lexsort((cat["row"][keep], all_codes[keep], cat["created"][keep]))]  # time, array, row
    n = len(order)
    ids = np.asarray(cat["id"][order], dtype=object)
    codes = all_codes[order]
    rows = cat["row"][order]
    created = cat["created"][order].astype("datetime64[ns]")
    shape = (n, *chosen[0]["shape"]) if chosen else (0, 0, 0, 0)
    dtype = _value_dtype(a["dtype"] for a in chosen)
    models = {a["model"]: a["model_attrs"] for a in chosen}
    arrays_attr = {a["name"]: {"model": a["model"], "dtype": a["dtype"], "shape": list(a["shape"]),
                               "precision": a["precision"]} for a in chosen}
    modes = sorted({a["precision"] for a in chosen})
    attrs: dict[str, Any] = {"models": json.dumps(models, sort_keys=True),
                             "arrays": json.dumps(arrays_attr, sort_keys=True),
                             "lossy": int(any(a["lossy"] for a in chosen)),  # 0/1: netCDF has no booleans
                             "precision": modes[0] if len(modes) == 1 else ",".join(modes)}
    if len(models) == 1:
        (model, model_attrs), = models.items()
        attrs.update(model=model, model_attrs=json.dumps(model_attrs, sort_keys=True))

    data = indexing.LazilyIndexedArray(LatentBackendArray(store, ids, names, shape, dtype))
    latent = xr.Variable(("image", "channel", "y", "x"), data,
                         attrs={"long_name": "diffusion latent (scaled, as stored)", **attrs})
    shard_images = {a["name"]: a["shard_images"] for a in chosen}
    latent.encoding["preferred_chunks"] = {"image": _shard_chunks(names, codes, rows, shard_images),
                                           "channel": shape[1], "y": shape[2], "x": shape[3]}
    latent.encoding["dtype"] = dtype
    array_names = np.array(names, dtype=object)
    model_names = np.array([a["model"] for a in chosen], dtype=object)
    coords = {
        "image_id": ("image", ids),
        "model": ("image", model_names[codes] if n else np.array([], dtype=object)),
        "array": ("image", array_names[codes] if n else np.array([], dtype=object)),
        "created": ("image", created, {"long_name": "ingest commit time", "timezone": "UTC"}),
    }
    ds = xr.Dataset({"latent": latent}, coords=coords, attrs={"latentzarr_store": store.url, **attrs})
    for name in coords:  # indexed: selectable with .sel, and kept in memory (not chunked) by chunks={}
        ds = ds.set_xindex(name)
    if drop_variables is not None:
        drop = [drop_variables] if isinstance(drop_variables, str) else list(drop_variables)
        ds = ds.drop_vars(drop, errors="ignore")
    ds.encoding["source"] = store.url
    return ds


def _open_store(filename_or_obj: Any, storage_options: dict[str, Any] | None) -> LatentStore:
    from latentzarr.store import LatentStore

    if isinstance(filename_or_obj, LatentStore):
        return filename_or_obj
    if not isinstance(filename_or_obj, str | os.PathLike):
        raise TypeError(
            f"Expected a path, URL or LatentStore for engine='latentzarr'. Got {type(filename_or_obj).__name__} "
            "instead."
        )
    try:
        return LatentStore.open(filename_or_obj, "r", storage_options=storage_options)
    except NotALatentStoreError as exc:
        raise NotALatentStoreError(
            f"{exc} engine='latentzarr' opens latentzarr stores only; open other Zarr data with engine='zarr'."
        ) from exc


def _is_local_latent_store(path: Path) -> bool:
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("attributes"), dict) and "latentzarr" in meta["attributes"]


class LatentBackendEntrypoint(BackendEntrypoint):
    """Open a latentzarr store with ``xr.open_dataset(url, engine="latentzarr")``.

    Keyword arguments: ``array`` (or ``group``): which store array(s) to open, by name (default: every array,
    when they share one latent shape); ``storage_options``: fsspec options for URLs (credentials,
    ``endpoint_url``...). ``filename_or_obj`` may also be an open :class:`~latentzarr.store.LatentStore`.
    Pass ``chunks={}`` for a dask-backed Dataset (one chunk per shard).

    Examples
    --------
    >>> ds = xr.open_dataset("latents.zarr", engine="latentzarr", chunks={})        # doctest: +SKIP
    >>> ds.sel(image_id=["a", "b"]).latent.decode()                                  # doctest: +SKIP
    """

    description = "Open a latentzarr store (diffusion latents in Zarr v3) as a lazy Dataset of latents"
    url = "https://github.com/latentzarr/latentzarr"
    open_dataset_parameters: ClassVar[tuple[str, ...]] = (
        "filename_or_obj", "drop_variables", "array", "group", "storage_options",
    )

    def open_dataset(  # type: ignore[override]
        self,
        filename_or_obj: str | os.PathLike[str] | LatentStore,
        *,
        drop_variables: str | Iterable[str] | None = None,
        array: str | Sequence[str] | None = None,
        group: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> xr.Dataset:
        """Open a store; see the class docstring for the arguments."""
        if array is not None and group is not None and group.removeprefix(_ARRAYS_PREFIX) != array:
            raise ValueError(f"Expected array= or group=, not both. Got array={array!r}, group={group!r} instead.")
        store = _open_store(filename_or_obj, storage_options)
        return latent_dataset(store, array if array is not None else group, drop_variables=drop_variables)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """True for an open LatentStore or a local folder whose ``zarr.json`` has ``latentzarr`` attributes."""
        if type(filename_or_obj).__name__ == "LatentStore":
            return True
        if isinstance(filename_or_obj, str | os.PathLike):
            path = Path(filename_or_obj)
            return "://" not in str(filename_or_obj) and _is_local_latent_store(path)
        return False


def open_dataset(url: str | os.PathLike[str] | LatentStore, *, array: str | Sequence[str] | None = None,
                 storage_options: dict[str, Any] | None = None, chunks: Any = None) -> xr.Dataset:
    """A store as a dask-backed Dataset: ``xr.open_dataset(url, engine="latentzarr", chunks={})`` in one call.

    ``chunks`` defaults to ``{}`` (one dask chunk per shard); see :class:`LatentBackendEntrypoint` for the rest.
    """
    return xr.open_dataset(url, engine="latentzarr", array=array, storage_options=storage_options,
                           chunks={} if chunks is None else chunks)
