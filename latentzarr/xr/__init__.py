"""xarray integration: a backend (``xr.open_dataset(url, engine="latentzarr")``) and the ``latent`` accessor.

Importing this package registers the accessors ``ds.latent`` / ``da.latent`` (``decode``, ``show``); the backend
module imports it too, so every ``engine="latentzarr"`` user has them.

>>> import xarray as xr                                                               # doctest: +SKIP
>>> ds = xr.open_dataset("latents.zarr", engine="latentzarr", chunks={})              # doctest: +SKIP
>>> ds.sel(model="taef2").latent.decode()          # lazy uint8 (image, y, x, rgb)    # doctest: +SKIP
>>> ds.latent.show(16)                             # a grid, inline in Jupyter        # doctest: +SKIP
"""

from __future__ import annotations

from latentzarr.xr.accessor import LatentAccessor, LatentDatasetAccessor, process_model
from latentzarr.xr.backend import LatentBackendArray, LatentBackendEntrypoint, latent_dataset, open_dataset
from latentzarr.xr.grid import ImageGrid

__all__ = [
    "ImageGrid",
    "LatentAccessor",
    "LatentBackendArray",
    "LatentBackendEntrypoint",
    "LatentDatasetAccessor",
    "latent_dataset",
    "open_dataset",
    "process_model",
]
