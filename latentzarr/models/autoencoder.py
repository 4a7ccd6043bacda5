"""The common interface of every latent autoencoder: numpy in, numpy out, validated, batched, deterministic.

A :class:`LatentAutoencoder` works in the model's *scaled* latent space, i.e. the latent that is stored:
``encode`` returns ``(mean - shift_factor) * scaling_factor`` and ``decode`` inverts that before running the
decoder. Subclasses implement two tensor methods, :meth:`~LatentAutoencoder._encode_pixels` and
:meth:`~LatentAutoencoder._decode_latents`; this class does validation, dtype/device moves, batching and the
uint8 conversion.

Determinism: on a fixed setup (same weights, device, torch version, compute dtype, thread count and *batch
size*) a decode is bit-exact; :meth:`LatentAutoencoder.fingerprint` describes that setup. Changing the batch
size or thread count changes a few float ulps and, rarely, a uint8 value by 1 (see design.md).
"""

from __future__ import annotations

import abc
import math
import warnings
from typing import Any

import numpy as np
import torch

from latentzarr.errors import InvalidLatentError
from latentzarr.models.tiling import DEFAULT_TILING, Tiling, tiled_apply

__all__ = ["LatentAutoencoder", "default_device", "default_dtype", "psnr"]

_LATENT_DTYPES = ("float16", "float32", "float64", "bfloat16")


def default_device() -> torch.device:
    """``cuda`` when a CUDA device is usable, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """Compute dtype for ``device``: float16 on CUDA, float32 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


def _parse_torch_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    value = getattr(torch, str(name), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"Expected a floating compute dtype (float32, float16, bfloat16). Got {dtype!r} instead.")
    return value


class LatentAutoencoder(abc.ABC):
    """A latent autoencoder behind one numpy interface (abstract; see :func:`latentzarr.models.load_model`).

    Attributes
    ----------
    name : str
        Model identifier stored with the latents (e.g. ``"taef2"``, ``"diffusers:org/model"``).
    latent_channels : int
        Channels C of a latent (N, C, h, w).
    downscale : int
        Pixels per latent cell along each axis (8): an (h, w) latent decodes to (8h, 8w) pixels.
    scaling_factor, shift_factor : float
        Stored latent = (raw latent - shift_factor) * scaling_factor.
    device : torch.device
        Where the model runs.
    dtype : torch.dtype
        Compute dtype of the weights and activations.
    batch_size : int
        Images per forward pass when ``decode``/``encode`` get ``batch_size=None``; part of the fingerprint.
    tiling : Tiling or None
        Pictures above ``tiling.max_pixels`` are encoded and decoded in overlapping tiles, so memory stays bounded
        (:mod:`latentzarr.models.tiling`; default :data:`~latentzarr.models.tiling.DEFAULT_TILING`; None: never).
    compiled : str or None
        The ``torch.compile`` mode after :meth:`compile`, else None (eager).
    """

    name: str
    latent_channels: int
    downscale: int = 8
    scaling_factor: float = 1.0
    shift_factor: float = 0.0

    def __init__(self, *, device: torch.device | str | None = None, dtype: Any = None, batch_size: int = 1) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        self.dtype = _parse_torch_dtype(dtype) if dtype is not None else default_dtype(self.device)
        self.batch_size = _check_batch_size(batch_size)
        self.channels_last = self.device.type == "cuda"
        self.tiling: Tiling | None = DEFAULT_TILING
        """When :meth:`encode` / :meth:`decode` cut large pictures into tiles (None: never; see
        :mod:`latentzarr.models.tiling`)."""
        self.compiled: str | None = None
        """``torch.compile`` mode of the decoder (``"default"``, ...) or None (eager); see :meth:`compile`."""
        self._decode_fn: Any = None

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def _encode_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) RGB in [0, 1] (compute dtype, on device) -> scaled latents (n, C, H/8, W/8)."""

    @abc.abstractmethod
    def _decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (n, C, h, w) (compute dtype, on device) -> RGB (n, 3, 8h, 8w), about [0, 1]."""

    @abc.abstractmethod
    def weights_sha256(self) -> str:
        """sha256 hex digest identifying the decoder weights."""

    @property
    def can_encode(self) -> bool:
        """Whether this model has an encoder (decode-only models raise on :meth:`encode`)."""
        return True

    # ------------------------------------------------------------------ torch-level API
    def encode_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """Float RGB (N, 3, H, W) in [0, 1] -> scaled latents (N, C, H/8, W/8) in the compute dtype."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"Expected images of shape (N, 3, H, W). Got shape {tuple(images.shape)} instead.")
        x = images.to(self.device, self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._encode_pixels(x)

    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, C, h, w) -> float RGB (N, 3, 8h, 8w) clamped to [0, 1], compute dtype, on device."""
        self._check_latent_shape(tuple(latents.shape))
        z = latents.to(self.device, self.dtype)
        if self.channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return (self._decode_fn or self._decode_latents)(z).clamp(0, 1)

    def compile(self, mode: str | None = None) -> LatentAutoencoder:
        """Run later decodes through ``torch.compile`` (inductor, static shapes); returns ``self``.

        The first decode of each new latent shape compiles (seconds to minutes; see BENCHMARKS.md for where it
        pays back on CPU and GPU). Compiled kernels change float rounding, so ``compiled`` is part of the
        :meth:`fingerprint`. ``mode`` is passed to ``torch.compile`` (``None``: its default;
        ``"max-autotune-no-cudagraphs"`` tunes harder on GPU).
        """
        with warnings.catch_warnings():
            # inductor imports torch.utils.mkldnn, which warns that torch.jit.script_method is deprecated (torch
            # 2.13; not ours): import it once here, quietly, so the first compiled decode does not warn
            warnings.filterwarnings("ignore", message=".*torch.jit.script_method.*", category=DeprecationWarning)
            import torch.utils.mkldnn
        self._decode_fn = torch.compile(self._decode_latents, mode=mode, dynamic=False)
        self.compiled = mode or "default"
        return self

    # ------------------------------------------------------------------ numpy API
    def encode(self, images: np.ndarray, dtype: Any = np.float16, batch_size: int | None = None) -> np.ndarray:
        """Encode uint8 RGB images to stored (scaled) latents.

        Parameters
        ----------
        images
            uint8 array (N, H, W, 3), or one image (H, W, 3); H and W multiples of :attr:`downscale`.
        dtype
            numpy dtype of the result: float16, float32 or ``ml_dtypes.bfloat16`` (rounded to nearest).
        batch_size
            Images per forward pass; ``None`` uses :attr:`batch_size`.

        Returns
        -------
        np.ndarray
            (N, C, H/8, W/8) latents of ``dtype`` ((C, H/8, W/8) for a single image).
        """
        images = np.asarray(images)
        given = images.shape
        single = images.ndim == 3
        if single:
            images = images[None]
        self._check_images(images, given)
        out_dtype = np.dtype(dtype)
        if out_dtype.name not in _LATENT_DTYPES:
            raise ValueError(f"Expected a latent dtype in {_LATENT_DTYPES}. Got {out_dtype!r} instead.")
        step = _check_batch_size(batch_size) if batch_size is not None else self.batch_size
        parts = []
        tiled = self._tiled(images.shape[1], images.shape[2])
        for start in range(0, len(images), step):
            x = _tensor(images[start : start + step]).to(self.device)
            x = x.permute(0, 3, 1, 2).to(self.dtype) / 255
            z = self._tiled_call(self._encode_tiles, x, tiled) if tiled is not None else self.encode_tensor(x)
            parts.append(z.float().cpu().numpy())
            del x, z
        out = np.concatenate(parts).astype(out_dtype) if parts else self._empty_latents(images, out_dtype)
        return out[0] if single else out

    def decode(self, latents: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Decode stored (scaled) latents to uint8 RGB images.

        Parameters
        ----------
        latents
            (N, C, h, w) or one latent (C, h, w) of float16, float32, float64 or ``ml_dtypes.bfloat16``.
        batch_size
            Latents per forward pass; ``None`` uses :attr:`batch_size`. The result is bit-exact on a fixed
            setup *including* this batch size.

        Returns
        -------
        np.ndarray
            uint8 (N, 8h, 8w, 3) ((8h, 8w, 3) for a single latent): ``round(255 * clamp(x, 0, 1))``.

        Raises
        ------
        InvalidLatentError
            Wrong number of dimensions or channels, an empty spatial size, a non-float dtype, or NaN/Inf.
        """
        arr = self._as_float_latents(latents)
        single = arr.ndim == 3
        if single:
            arr = arr[None]
        self._check_latent_shape(arr.shape)
        step = _check_batch_size(batch_size) if batch_size is not None else self.batch_size
        n, _, h, w = arr.shape
        out = np.empty((n, h * self.downscale, w * self.downscale, 3), dtype=np.uint8)
        tiled = self._tiled(h * self.downscale, w * self.downscale)
        for start in range(0, n, step):
            z = _tensor(arr[start : start + step])
            if tiled is not None:
                y = self._tiled_call(self._decode_tiles, z, tiled).clamp(0, 1)
            else:
                y = self.decode_tensor(z)
            out[start : start + step] = _to_uint8(y).cpu().numpy()
            del y
        return out[0] if single else out

    def _encode_tiles(self, x: torch.Tensor, tiling: Tiling) -> torch.Tensor:
        """Tiled :meth:`_encode_pixels` (same contract); subclasses may tile only part of their network."""
        return tiled_apply(x, self._encode_pixels, in_unit=self.downscale, out_unit=1, tile=tiling.tile,
                           overlap=tiling.overlap)

    def _decode_tiles(self, z: torch.Tensor, tiling: Tiling) -> torch.Tensor:
        """Tiled :meth:`_decode_latents` (same contract); subclasses may tile only part of their network."""
        return tiled_apply(z, self._decode_latents, in_unit=1, out_unit=self.downscale, tile=tiling.tile,
                           overlap=tiling.overlap)

    def _tiled_call(self, fn: Any, t: torch.Tensor, tiling: Tiling) -> torch.Tensor:
        t = t.to(self.device, self.dtype)
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return fn(t, tiling)

    def _tiled(self, height_px: int, width_px: int) -> Tiling | None:
        """The tiling to use for pictures of this size (None: whole)."""
        return self.tiling if self.tiling is not None and self.tiling.applies(height_px, width_px) else None

    # ------------------------------------------------------------------ description
    def fingerprint(self, batch_size: int | None = None) -> dict[str, Any]:
        """The setup on which a decode is bit-exact: equal fingerprints give equal bytes for equal latents.

        Keys: ``model``, ``weights_sha256``, ``device`` (type and, on CUDA, the device name and capability),
        ``torch``, ``dtype`` (compute dtype), ``threads`` (``torch.get_num_threads()`` for CPU decodes; 0 on
        CUDA), ``batch_size`` and ``channels_last``, plus ``compiled`` (the ``torch.compile`` mode) when the
        decoder is compiled and ``tiling`` when :attr:`tiling` is not the default (it changes large pictures).
        Pass the ``batch_size`` given to :meth:`decode`
        (``None``: the default :attr:`batch_size`), since the batch size changes results too.
        """
        device = self.device.type
        if self.device.type == "cuda":
            props = torch.cuda.get_device_properties(self.device)
            device = f"cuda:{props.name}:sm_{props.major}{props.minor}"
        out = {
            "model": self.name,
            "weights_sha256": self.weights_sha256(),
            "device": device,
            "torch": torch.__version__,
            "dtype": str(self.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads() if self.device.type == "cpu" else 0,
            "batch_size": self.batch_size if batch_size is None else _check_batch_size(batch_size),
            "channels_last": self.channels_last,
        }
        if self.compiled:
            out["compiled"] = self.compiled
        if self.tiling != DEFAULT_TILING:
            out["tiling"] = self.tiling.as_dict() if self.tiling is not None else None
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, latent_channels={self.latent_channels}, "
            f"device={str(self.device)!r}, dtype={str(self.dtype).removeprefix('torch.')!r}, "
            f"batch_size={self.batch_size})"
        )

    # ------------------------------------------------------------------ validation helpers
    def _check_images(self, images: np.ndarray, given: tuple[int, ...]) -> None:
        """Check (N, H, W, 3) uint8 ``images``; messages name ``given``, the shape the caller passed."""
        if images.dtype != np.uint8:
            raise ValueError(f"Expected uint8 images. Got dtype {images.dtype} instead; convert with np.uint8.")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"Expected RGB images of shape (N, H, W, 3) or (H, W, 3). Got shape {given} instead"
                f"{rgb_hint(given)}."
            )
        _, h, w, _ = images.shape
        d = self.downscale
        if h == 0 or w == 0 or h % d or w % d:
            raise ValueError(
                f"Expected image height and width that are positive multiples of {d}. Got {h}x{w} instead; "
                "crop or resize the images first."
            )

    def _empty_latents(self, images: np.ndarray, dtype: np.dtype) -> np.ndarray:
        _, h, w, _ = images.shape
        return np.empty((0, self.latent_channels, h // self.downscale, w // self.downscale), dtype=dtype)

    def _as_float_latents(self, latents: Any) -> np.ndarray:
        if isinstance(latents, torch.Tensor):
            raise TypeError("Expected a numpy array. Got a torch.Tensor instead; use decode_tensor().")
        arr = np.asarray(latents)
        if arr.dtype.name not in _LATENT_DTYPES:
            raise InvalidLatentError(
                f"Expected latents of dtype float16, float32 or bfloat16. Got {arr.dtype} instead."
            )
        if arr.ndim not in (3, 4):
            raise InvalidLatentError(
                f"Expected latents of shape (N, {self.latent_channels}, h, w) or ({self.latent_channels}, h, w). "
                f"Got shape {arr.shape} instead."
            )
        if arr.dtype.name == "bfloat16":  # torch cannot take ml_dtypes arrays; float32 holds bfloat16 exactly
            arr = arr.astype(np.float32)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            bad = int(arr.size - np.isfinite(arr).sum())
            raise InvalidLatentError(f"Expected finite latent values. Got {bad} NaN/Inf values instead.")
        return arr

    def _check_latent_shape(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 4 or shape[1] != self.latent_channels or shape[2] == 0 or shape[3] == 0:
            raise InvalidLatentError(
                f"Expected latents of shape (N, {self.latent_channels}, h, w) with h, w > 0 for model "
                f"{self.name!r}. Got shape {tuple(shape)} instead."
            )


def rgb_hint(shape: tuple[int, ...]) -> str:
    """What to do with a picture of ``shape`` that is not (..., H, W, 3): a clause to end a message with."""
    if shape and shape[-1] == 4:
        return " (RGBA: flatten or drop the alpha channel first)"
    if shape and shape[-1] == 1:
        return " (one channel: repeat it three times with np.repeat(x, 3, axis=-1))"
    if len(shape) in (2, 3):
        return " (grayscale? make it RGB with np.stack([x] * 3, axis=-1))"
    return ""


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"Expected a batch size that is a positive int. Got {batch_size!r} instead.")
    return int(batch_size)


def _tensor(arr: np.ndarray) -> torch.Tensor:
    """A CPU tensor over ``arr`` (copied when read-only or not C-contiguous; torch needs writable memory)."""
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, order="C", copy=True)
    return torch.from_numpy(arr)


def _to_uint8(y: torch.Tensor) -> torch.Tensor:
    """(n, 3, H, W) float in [0, 1] -> uint8 (n, H, W, 3); the rounding runs in float32 on the device."""
    return y.float().mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 arrays of one shape (``inf`` when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
