"""The xarray view of a latent array: committed rows only, lazily read through dask."""

from __future__ import annotations

import json
from collections.abc import Sequence

import dask.array as da
import ml_dtypes
import numpy as np
import xarray as xr
import zarr

from latentzarr.store.arrays import ArrayMeta

__all__ = ["array_dataset"]


def _bits_to_float32(block: np.ndarray) -> np.ndarray:
    return block.view(ml_dtypes.bfloat16).astype(np.float32)


def array_dataset(array: zarr.Array, meta: ArrayMeta, rows: np.ndarray, ids: Sequence[str]) -> xr.Dataset:
    """Dataset with variable ``latent`` (image, channel, y, x) holding ``rows`` of ``array``, and ``image_id``.

    One dask chunk per shard before selection; bfloat16 bits become float32 values (exact). Attrs say the
    precision mode (``precision``, ``lossy`` as 0/1, since netCDF has no booleans).
    """
    data = da.from_zarr(array, chunks=(meta.shard_images, *meta.shape))
    data = data[np.asarray(rows, dtype=np.int64)]
    if meta.dtype == "bfloat16":
        data = data.map_blocks(_bits_to_float32, dtype=np.float32)
    attrs = {"model": meta.model, "model_attrs": json.dumps(meta.model_attrs, sort_keys=True),
             "dtype": meta.dtype, "array": meta.name, "precision": meta.precision_name, "lossy": int(meta.lossy)}
    latent = xr.Variable(("image", "channel", "y", "x"), data, attrs=attrs)
    return xr.Dataset({"latent": latent}, coords={"image_id": ("image", np.asarray(list(ids), dtype=object))},
                      attrs=attrs)
