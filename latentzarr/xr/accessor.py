"""The ``latent`` accessor: ``ds.latent.decode()`` turns latents into a lazy picture array; ``.show()`` draws them.

``decode`` is a ``dask.array.map_blocks`` over the image axis: each block decodes its images with a model that
is loaded once per process (per model name and device) and reused by every later block in that process. With a
``distributed.Client`` active, ``.compute()`` runs those blocks as tasks on the cluster's workers, like any dask
array. A block holding images of several models decodes each model's images with that model.

On a Dataset, ``ds.latent`` is this accessor, not the variable (use ``ds["latent"]``); attributes the accessor
lacks (``ds.latent.values``, ``.shape``, ``.sel``...) are those of the variable, so both read as expected.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from latentzarr.xr.grid import ImageGrid

if TYPE_CHECKING:
    from latentzarr.models import LatentAutoencoder

__all__ = ["DEFAULT_IMAGES_PER_TASK", "LatentAccessor", "LatentDatasetAccessor", "process_model"]

DEFAULT_IMAGES_PER_TASK = 16
"""Images per decode task when the latents are not dask-backed yet (dask-backed ones keep their chunks)."""

DOWNSCALE = 8
"""Pixels per latent cell along each axis, for model names (every supported autoencoder; pass a model to change)."""

_DIMS = ("image", "channel", "y", "x")
_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def process_model(name: str, device: str = "cpu") -> LatentAutoencoder:
    """The decoder ``name`` on ``device``, loaded once per process (thread-safe) and then reused."""
    key = (name, str(device))
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            from latentzarr.models import load_model

            model = _MODELS[key] = load_model(name, device=device)
        return model


def _decode_block(block: np.ndarray, codes: np.ndarray, *, names: tuple[str, ...], model: Any, device: str,
                  batch_size: int | None, out_hw: tuple[int, int]) -> np.ndarray:
    """Decode one block of latents (n, C, h, w); ``codes`` (n, 1, 1, 1) picks each image's model in ``names``."""
    codes = codes.reshape(len(block))
    out = np.empty((len(block), *out_hw, 3), dtype=np.uint8)
    for code in np.unique(codes):
        sel = np.flatnonzero(codes == code)
        decoder = model if model is not None else process_model(names[code], device)
        pixels = decoder.decode(block[sel], batch_size=batch_size)
        if pixels.shape[1:3] != out_hw:
            raise ValueError(
                f"Expected pictures of {out_hw[1]}x{out_hw[0]} px. Got {pixels.shape[2]}x{pixels.shape[1]} from "
                f"model {names[code]!r} instead; pass the loaded model (decode(model=load_model(...))) so its "
                "downscale factor is known."
            )
        out[sel] = pixels
    return out


def decode_latents(latent: xr.DataArray, model: str | LatentAutoencoder | None = None, *,
                   batch_size: int | None = None, device: str = "cpu",
                   images_per_task: int | None = None) -> xr.DataArray:
    """Lazy uint8 pictures (image, y, x, rgb) of latents (image, channel, y, x); see :meth:`LatentAccessor.decode`."""
    import dask.array as da
    from dask.base import tokenize

    from latentzarr.models import LatentAutoencoder

    if tuple(latent.dims) != _DIMS:
        raise ValueError(f"Expected latents with dims {_DIMS}. Got {tuple(latent.dims)} instead; transpose them.")
    n, _, h, w = latent.shape
    obj: LatentAutoencoder | None = None
    if isinstance(model, LatentAutoencoder):
        obj, names = model, (model.name,)
        codes = np.zeros(n, dtype=np.int64)
    elif isinstance(model, str):
        names, codes = (model,), np.zeros(n, dtype=np.int64)
    elif model is None:
        per_image = latent.coords["model"].values if "model" in latent.coords else None
        if per_image is None and "model" in latent.attrs:
            per_image = np.full(n, latent.attrs["model"], dtype=object)
        if per_image is None:
            raise ValueError("Expected latents with a 'model' coordinate or attribute. Got neither instead; pass "
                             "decode(model='<name>').")
        uniq, codes = np.unique(np.asarray(per_image, dtype=str), return_inverse=True)
        names = tuple(str(u) for u in uniq)
    else:
        raise TypeError(f"Expected model as None, a name or a LatentAutoencoder. Got {type(model).__name__} instead.")
    down = obj.downscale if obj is not None else DOWNSCALE
    out_hw = (h * down, w * down)

    data = latent.data
    if not isinstance(data, da.Array):
        data = latent.chunk({"image": images_per_task or DEFAULT_IMAGES_PER_TASK}).data
    elif images_per_task is not None:
        data = data.rechunk({0: images_per_task})
    data = data.rechunk({1: -1, 2: -1, 3: -1})
    code_arr = da.from_array(codes.reshape(n, 1, 1, 1), chunks=(data.chunks[0], 1, 1, 1))
    # the key names everything that changes the output (a model object by its determinism fingerprint)
    token = tokenize(data.name, code_arr.name, names, obj.fingerprint(batch_size) if obj is not None else None,
                     device, batch_size, out_hw)
    pixels = da.map_blocks(
        _decode_block, data, code_arr, names=names, model=obj, device=device, batch_size=batch_size,
        out_hw=out_hw, dtype=np.uint8, chunks=(data.chunks[0], (out_hw[0],), (out_hw[1],), (3,)),
        meta=np.empty((0, 0, 0, 0), dtype=np.uint8), name=f"latentzarr-decode-{token}",
    )
    other = [k for k, v in latent.coords.items() if set(v.dims) - {"image"}]  # latent y/x are not pixel y/x
    coords = latent.drop_vars(other).coords  # keeps the indexes (image_id, model...)
    out = xr.DataArray(pixels, dims=("image", "y", "x", "rgb"), coords=coords, name="pixels",
                       attrs={"long_name": "decoded picture", "units": "uint8 RGB",
                              "models": ",".join(names), "device": str(device)})
    return out.assign_coords(rgb=["R", "G", "B"])


def show_latents(latent: xr.DataArray, n: int = 16, *, cols: int | None = None, size: float = 2.0,
                 model: str | LatentAutoencoder | None = None, batch_size: int | None = None,
                 device: str = "cpu") -> ImageGrid:
    """Decode the first ``n`` images and lay them out; see :meth:`LatentAccessor.show`."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"Expected n as a positive int (pictures to show). Got {n!r} instead.")
    first = latent.isel(image=slice(0, n))
    if first.sizes["image"] == 0:
        raise ValueError("Expected at least one image to show. Got an empty selection instead.")
    pixels = decode_latents(first, model, batch_size=batch_size, device=device).values
    titles = [str(v) for v in first.coords["image_id"].values] if "image_id" in first.coords else None
    return ImageGrid(pixels, titles, cols=cols, size=size)


@xr.register_dataarray_accessor("latent")
class LatentAccessor:
    """``da.latent``: decode and show a latent DataArray (image, channel, y, x), e.g. ``ds["latent"]``."""

    def __init__(self, obj: xr.DataArray) -> None:
        self._obj = obj

    def decode(self, model: str | LatentAutoencoder | None = None, *, batch_size: int | None = None,
               device: str = "cpu", images_per_task: int | None = None) -> xr.DataArray:
        """Lazy uint8 pictures, dims (image, y, x, rgb), decoded block-wise over the image axis.

        Parameters
        ----------
        model
            None: each image's ``model`` coordinate (or the ``model`` attribute); a name: that model for every
            image; a loaded :class:`~latentzarr.models.LatentAutoencoder`: that object (shipped to workers).
            Names are loaded once per process with :func:`~latentzarr.models.load_model` on ``device``.
        batch_size
            Latents per forward pass; None: the model's default. Results are bit-exact for a fixed setup
            (weights, device, thread count, batch size), see ``LatentAutoencoder.fingerprint``.
        device
            Torch device of models loaded by name (``"cpu"``, ``"cuda"``).
        images_per_task
            Images per dask task; None keeps dask-backed chunks (one per shard) or uses
            :data:`DEFAULT_IMAGES_PER_TASK`.

        Returns
        -------
        xr.DataArray
            Named ``pixels``, dask-backed, with the image coordinates (``image_id``, ``model``, ...) and
            ``rgb`` = R, G, B; pixel size (8h, 8w) for latents (h, w).
        """
        return decode_latents(self._obj, model, batch_size=batch_size, device=device,
                              images_per_task=images_per_task)

    def show(self, n: int = 16, *, cols: int | None = None, size: float = 2.0,
             model: str | LatentAutoencoder | None = None, batch_size: int | None = None,
             device: str = "cpu") -> ImageGrid:
        """Decode the first ``n`` images (now) and return an :class:`ImageGrid` titled by image id.

        In Jupyter the grid shows inline as a PNG; elsewhere use ``.figure``, ``.to_png()`` or ``.save(path)``.
        ``cols`` pictures per row (default about sqrt(n)); ``size`` inches per picture.
        """
        return show_latents(self._obj, n, cols=cols, size=size, model=model, batch_size=batch_size, device=device)


@xr.register_dataset_accessor("latent")
class LatentDatasetAccessor(LatentAccessor):
    """``ds.latent``: :meth:`decode` / :meth:`show` of the Dataset's ``latent`` variable.

    Other attributes are those of the variable ``ds["latent"]`` (which this accessor hides from ``ds.latent``).
    """

    def __init__(self, obj: xr.Dataset) -> None:  # never raises: a Dataset without latents fails on use
        self._ds = obj
        self._obj = obj["latent"] if "latent" in obj.data_vars else None  # type: ignore[assignment]

    def _variable(self) -> xr.DataArray:
        if self._obj is None:
            raise ValueError(f"Expected a Dataset with a 'latent' variable. Got variables "
                             f"{sorted(map(str, self._ds.data_vars))} instead; open a store with "
                             "xr.open_dataset(url, engine='latentzarr').")
        return self._obj

    def decode(self, model: str | LatentAutoencoder | None = None, *, batch_size: int | None = None,
               device: str = "cpu", images_per_task: int | None = None) -> xr.DataArray:
        return decode_latents(self._variable(), model, batch_size=batch_size, device=device,
                              images_per_task=images_per_task)

    decode.__doc__ = LatentAccessor.decode.__doc__

    def show(self, n: int = 16, *, cols: int | None = None, size: float = 2.0,
             model: str | LatentAutoencoder | None = None, batch_size: int | None = None,
             device: str = "cpu") -> ImageGrid:
        return show_latents(self._variable(), n, cols=cols, size=size, model=model, batch_size=batch_size,
                            device=device)

    show.__doc__ = LatentAccessor.show.__doc__

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or self._obj is None:
            raise AttributeError(name)
        return getattr(self._obj, name)

    def __getitem__(self, key: Any) -> xr.DataArray:
        return self._variable()[key]

    def __repr__(self) -> str:
        return repr(self._obj) if self._obj is not None else "<latent accessor: no 'latent' variable>"

    def _repr_html_(self) -> str | None:
        return self._obj._repr_html_() if self._obj is not None else None
