"""``load_model``: one entry point for every supported autoencoder."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch

from latentzarr.errors import ModelNotFoundError
from latentzarr.models.autoencoder import LatentAutoencoder
from latentzarr.models.tiny import TinyAutoencoder
from latentzarr.models.weights import ENV_VAR, KNOWN_WEIGHTS, ensure_weights, models_dir

__all__ = ["DIFFUSERS_PREFIX", "load_model"]

DIFFUSERS_PREFIX = "diffusers:"
"""Prefix of a ``load_model`` argument naming a diffusers VAE (local folder or Hugging Face hub id)."""

_SUFFIX = "_decoder.pth"


def load_model(
    name_or_path: str | os.PathLike[str],
    device: torch.device | str | None = None,
    dtype: Any = None,
    *,
    batch_size: int = 1,
    subfolder: str | None = None,
) -> LatentAutoencoder:
    """Load a latent autoencoder.

    Parameters
    ----------
    name_or_path
        - a model name (``"taef2"``): ``<models>/<name>/<name>_{decoder,encoder}.pth`` under
          ``$LATENTZARR_MODELS`` (default: the user cache folder); taef2 is downloaded there on first use;
        - a path to a folder holding ``<name>_decoder.pth`` (and optionally ``<name>_encoder.pth``), or to
          the ``<name>_decoder.pth`` file itself (a TAESD-family model named ``<name>``);
        - ``"diffusers:<local folder or hub id>"``: a diffusers ``AutoencoderKL`` / ``AutoencoderTiny``
          (see :class:`~latentzarr.models.diffusers_vae.DiffusersAutoencoder`).
    device
        ``"cuda"``, ``"cpu"``, ...; default CUDA when available, else CPU.
    dtype
        Compute dtype; default float16 on CUDA, float32 on CPU.
    batch_size
        Default images per forward pass (part of the determinism fingerprint).
    subfolder
        diffusers only: the subfolder of the repository holding the VAE (e.g. ``"vae"``).

    Raises
    ------
    ModelNotFoundError
        The weights are not found and cannot be fetched.
    """
    if isinstance(name_or_path, str) and name_or_path.startswith(DIFFUSERS_PREFIX):
        from latentzarr.models.diffusers_vae import DiffusersAutoencoder

        source = name_or_path[len(DIFFUSERS_PREFIX) :]
        return DiffusersAutoencoder.from_pretrained(
            source, subfolder=subfolder, device=device, dtype=dtype, batch_size=batch_size
        )
    if subfolder is not None:
        raise ValueError(f"Expected subfolder=None for a non-diffusers model. Got {subfolder!r} instead.")
    kwargs = {"device": device, "dtype": dtype, "batch_size": batch_size}
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if text and os.sep not in text and "/" not in text and not text.endswith(".pth"):
        # a model name
        root = models_dir()
        if text not in KNOWN_WEIGHTS and not (root / text / f"{text}{_SUFFIX}").is_file():
            raise ModelNotFoundError(
                f"Expected a model name whose weights are in {str(root / text)!r} (set by {ENV_VAR}) or one of "
                f"{sorted(KNOWN_WEIGHTS)}, a folder path, or 'diffusers:<folder or hub id>'. Got {text!r} instead."
            )
        decoder = ensure_weights(text, "decoder", root)
        return TinyAutoencoder(text, decoder, functools.partial(ensure_weights, text, "encoder", root), **kwargs)
    return _load_tiny_from_path(path, kwargs)


def _load_tiny_from_path(path: Path, kwargs: dict[str, Any]) -> TinyAutoencoder:
    if path.is_file() and path.name.endswith(_SUFFIX):
        decoder = path
    elif path.is_dir():
        own = path / f"{path.name}{_SUFFIX}"
        found = [own] if own.is_file() else sorted(path.glob(f"*{_SUFFIX}"))
        if len(found) != 1:
            raise ModelNotFoundError(
                f"Expected one '<name>{_SUFFIX}' in the model folder {str(path)!r}. Got "
                f"{[p.name for p in found]} instead; pass the decoder file's path to choose."
            )
        decoder = found[0]
    else:
        raise ModelNotFoundError(
            f"Expected a model name, a folder holding '<name>{_SUFFIX}', or such a file. Got {str(path)!r}, "
            f"which does not exist, instead. Set {ENV_VAR} or pass 'diffusers:<folder or hub id>'."
        )
    name = decoder.name[: -len(_SUFFIX)]
    encoder = decoder.with_name(f"{name}_encoder.pth")
    return TinyAutoencoder(name, decoder, encoder if encoder.is_file() else None, **kwargs)
