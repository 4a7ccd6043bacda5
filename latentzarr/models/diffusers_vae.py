"""diffusers ``AutoencoderKL`` / ``AutoencoderTiny`` behind the :class:`LatentAutoencoder` interface.

Stored latents are in the pipeline's scaled space: ``encode`` returns ``(latent_dist.mean - shift_factor) *
scaling_factor`` (``AutoencoderTiny``: its ``latents`` instead of the mean) and ``decode`` runs the VAE on
``z / scaling_factor + shift_factor``. ``shift_factor`` is 0 when the config has none. Other per-channel
normalisations (``latents_mean`` / ``latents_std``) are not applied. Pixels cross the diffusers boundary in
[-1, 1].
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from latentzarr.errors import ModelNotFoundError
from latentzarr.models.autoencoder import LatentAutoencoder, default_device, default_dtype

__all__ = ["SUPPORTED_CLASSES", "DiffusersAutoencoder", "resolve_source"]

SUPPORTED_CLASSES = ("AutoencoderKL", "AutoencoderTiny")
"""diffusers model classes this wrapper knows the latent conventions of."""


def resolve_source(source: str, subfolder: str | None = None) -> tuple[str, str | None]:
    """Split a ``load_model("diffusers:...")`` source into (folder or hub id, subfolder).

    - a local folder holding ``config.json`` is used as is; one holding ``vae/config.json`` gets
      ``subfolder="vae"`` (a whole pipeline folder);
    - a hub id ``org/name`` is used as is; ``org/name/sub`` means ``subfolder="sub"``.
    """
    if not source:
        raise ModelNotFoundError("Expected 'diffusers:<local folder or hub id>'. Got an empty source instead.")
    path = Path(source).expanduser()
    if path.is_dir():
        if subfolder is None and not (path / "config.json").is_file() and (path / "vae" / "config.json").is_file():
            subfolder = "vae"
        return str(path), subfolder
    parts = source.split("/")
    if len(parts) == 3 and all(parts) and not source.startswith((".", "~")):
        if subfolder is not None and subfolder != parts[2]:
            raise ValueError(f"Expected one subfolder. Got {parts[2]!r} in the id and {subfolder!r} instead.")
        return "/".join(parts[:2]), parts[2]
    return source, subfolder


class DiffusersAutoencoder(LatentAutoencoder):
    """A diffusers VAE (``AutoencoderKL`` or ``AutoencoderTiny``) with the common numpy interface.

    Build it with :meth:`from_pretrained` (or :func:`latentzarr.models.load_model` with ``"diffusers:..."``).

    Parameters
    ----------
    vae
        The loaded diffusers model.
    name
        Model name stored with latents (``"diffusers:<source>"``).
    device, dtype, batch_size
        See :class:`~latentzarr.models.autoencoder.LatentAutoencoder`; ``dtype=None`` is float32 when the
        config sets ``force_upcast`` (as diffusers pipelines do), else float16 on CUDA and float32 on CPU.
    """

    def __init__(
        self,
        vae: torch.nn.Module,
        name: str,
        *,
        device: torch.device | str | None = None,
        dtype: Any = None,
        batch_size: int = 1,
    ) -> None:
        class_name = type(vae).__name__
        if class_name not in SUPPORTED_CLASSES:
            raise ModelNotFoundError(
                f"Expected a diffusers model of class {SUPPORTED_CLASSES}. Got {class_name} instead."
            )
        config = vae.config
        if dtype is None:
            resolved = torch.device(device) if device is not None else default_device()
            dtype = torch.float32 if getattr(config, "force_upcast", False) else default_dtype(resolved)
        super().__init__(device=device, dtype=dtype, batch_size=batch_size)
        self.name = name
        self.vae = vae
        self.latent_channels = int(config.latent_channels)
        self.scaling_factor = float(config.scaling_factor)
        self.shift_factor = float(getattr(config, "shift_factor", None) or 0.0)
        if class_name == "AutoencoderTiny":
            self.downscale = int(config.upsampling_scaling_factor) ** (len(config.decoder_block_out_channels) - 1)
        else:
            self.downscale = 2 ** (len(config.block_out_channels) - 1)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        self.vae.to(device=self.device, dtype=self.dtype, memory_format=memory_format)
        self.vae.eval().requires_grad_(False)
        self._weights_sha256: str | None = None

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        subfolder: str | None = None,
        device: torch.device | str | None = None,
        dtype: Any = None,
        batch_size: int = 1,
    ) -> DiffusersAutoencoder:
        """Load from a local folder or a Hugging Face hub id (honours ``HF_HUB_OFFLINE``)."""
        import diffusers

        location, subfolder = resolve_source(os.fspath(source), subfolder)
        try:
            with warnings.catch_warnings():
                # diffusers 0.42 passes an argument that huggingface_hub deprecated; not ours to fix
                warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*", category=UserWarning)
                config = diffusers.AutoencoderKL.load_config(location, subfolder=subfolder)
                class_name = config.get("_class_name", "AutoencoderKL")
                if class_name not in SUPPORTED_CLASSES:
                    raise ModelNotFoundError(
                        f"Expected a diffusers VAE of class {SUPPORTED_CLASSES} at {location!r}. Got "
                        f"{class_name!r} instead."
                    )
                vae = getattr(diffusers, class_name).from_pretrained(location, subfolder=subfolder)
        except ModelNotFoundError:
            raise
        except (OSError, ValueError, json.JSONDecodeError) as exc:  # EnvironmentError from the hub client
            raise ModelNotFoundError(
                f"Expected a diffusers VAE at {location!r}"
                f"{f' (subfolder {subfolder!r})' if subfolder else ''}. Got {exc!s:.300} instead. Pass a local "
                "folder, or a hub id that is cached or reachable (HF_HUB_OFFLINE=1 forbids downloads)."
            ) from exc
        name = f"diffusers:{os.fspath(source)}"
        return cls(vae, name, device=device, dtype=dtype, batch_size=batch_size)

    def _encode_pixels(self, x: torch.Tensor) -> torch.Tensor:
        out = self.vae.encode(x * 2 - 1)
        raw = out.latent_dist.mean if hasattr(out, "latent_dist") else out.latents
        return (raw - self.shift_factor) * self.scaling_factor

    def _decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        y = self.vae.decode(z / self.scaling_factor + self.shift_factor).sample
        return (y + 1) / 2

    def weights_sha256(self) -> str:
        """sha256 over the state dict: each tensor's name, dtype, shape and bytes, in key order (cached)."""
        if self._weights_sha256 is None:
            h = hashlib.sha256()
            for key, tensor in sorted(self.vae.state_dict().items()):
                t = tensor.detach().cpu().contiguous().reshape(-1)
                h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
                h.update(t.view(torch.uint8).numpy().tobytes())
            self._weights_sha256 = h.hexdigest()
        return self._weights_sha256
