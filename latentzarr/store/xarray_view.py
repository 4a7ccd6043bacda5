"""The xarray view of a latent array: committed rows only, lazily read through dask."""

from __future__ import annotations

import json
from collections.abc import Sequence

import dask.array as da
import ml_dtypes
import numpy as np
import xarray as xr
import zarr

from latentzarr.errors import CorruptDataError
from latentzarr.store.arrays import ArrayMeta
from latentzarr.store.layout import nan_rows

__all__ = ["array_dataset"]


def _bits_to_float32(block: np.ndarray) -> np.ndarray:
    return block.view(ml_dtypes.bfloat16).astype(np.float32)


def _require_data(block: np.ndarray, logical: str, name: str) -> np.ndarray:
    """A block of captured rows, unless some came back as fill values: their shard was reclaimed by a vacuum after
    the view was made (or is missing), and NaN must not pass for a latent."""
    if len(block) and nan_rows(block, logical).any():
        raise CorruptDataError(f"Expected stored latents in every row of this view of array {name!r}. Got "
                               f"{int(nan_rows(block, logical).sum())} rows without data instead: their ids moved and "
                               "a vacuum reclaimed the old rows (or the shard is missing). Open the view again.")
    return block


def array_dataset(array: zarr.Array, meta: ArrayMeta, rows: np.ndarray, ids: Sequence[str]) -> xr.Dataset:
    """Dataset with variable ``latent`` (image, channel, y, x) holding ``rows`` of ``array``, and ``image_id``.

    One dask chunk per shard before selection; bfloat16 bits become float32 values (exact). Attrs say the
    precision mode (``precision``, ``lossy`` as 0/1, since netCDF has no booleans).
    """
    data = da.from_zarr(array, chunks=(meta.shard_images, *meta.shape))
    data = data[np.asarray(rows, dtype=np.int64)].map_blocks(_require_data, meta.dtype, meta.name,
                                                             dtype=data.dtype)
    if meta.dtype == "bfloat16":
        data = data.map_blocks(_bits_to_float32, dtype=np.float32)
    attrs = {"model": meta.model, "model_attrs": json.dumps(meta.model_attrs, sort_keys=True),
             "dtype": meta.dtype, "array": meta.name, "precision": meta.precision_name, "lossy": int(meta.lossy)}
    latent = xr.Variable(("image", "channel", "y", "x"), data, attrs=attrs)
    return xr.Dataset({"latent": latent}, coords={"image_id": ("image", np.asarray(list(ids), dtype=object))},
                      attrs=attrs)
