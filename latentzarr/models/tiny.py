"""A TAESD-family tiny autoencoder (taef2 and relatives) loaded from ``<name>_{encoder,decoder}.pth``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from latentzarr.errors import ModelNotFoundError
from latentzarr.models.autoencoder import LatentAutoencoder
from latentzarr.models.tae import build_decoder, build_encoder, infer_decoder_config, infer_encoder_config
from latentzarr.models.tiling import Tiling, tiled_apply
from latentzarr.models.weights import sha256_file

__all__ = ["TinyAutoencoder"]


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError for bad files
        raise ModelNotFoundError(
            f"Expected a torch state dict in {str(path)!r}. Got a file torch cannot load instead ({exc}); "
            "replace it with the published weights."
        ) from exc
    if not isinstance(state, dict):
        raise ModelNotFoundError(f"Expected a state dict in {str(path)!r}. Got {type(state).__name__} instead.")
    return state


def _build(kind: str, path: Path) -> tuple[nn.Sequential, dict[str, Any]]:
    state = _load_state_dict(path)
    infer, build = (infer_decoder_config, build_decoder) if kind == "decoder" else (infer_encoder_config, build_encoder)
    try:
        config = infer(state)
        module = build(**config)
        module.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise ModelNotFoundError(
            f"Expected TAESD-family {kind} weights in {str(path)!r}. Got a state dict that does not fit "
            f"({exc!s:.300}) instead."
        ) from exc
    return module.eval().requires_grad_(False), config


class TinyAutoencoder(LatentAutoencoder):
    """A TAESD-family tiny autoencoder: our :mod:`latentzarr.models.tae` modules with published weights.

    Its latent space is the encoder's output (``scaling_factor`` 1, ``shift_factor`` 0).

    Parameters
    ----------
    name
        Model name stored with latents (``"taef2"``).
    decoder_path
        ``<name>_decoder.pth``.
    encoder_path
        ``<name>_encoder.pth``, or a zero-argument callable returning it (called, and the encoder loaded, on
        the first :meth:`encode`, so decode-only users never fetch it), or ``None`` (decode-only).
    device, dtype, batch_size
        See :class:`~latentzarr.models.autoencoder.LatentAutoencoder`.
    """

    def __init__(
        self,
        name: str,
        decoder_path: str | os.PathLike[str],
        encoder_path: str | os.PathLike[str] | Callable[[], Path] | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: Any = None,
        batch_size: int = 1,
    ) -> None:
        super().__init__(device=device, dtype=dtype, batch_size=batch_size)
        self.name = name
        self.decoder_path = Path(decoder_path)
        self._encoder_source = encoder_path if callable(encoder_path) or encoder_path is None else Path(encoder_path)
        self.decoder = self._place(*_build("decoder", self.decoder_path))
        self.encoder: nn.Sequential | None = None
        self._weights_sha256: str | None = None

    def _place(self, module: nn.Sequential, config: dict[str, Any]) -> nn.Sequential:
        channels = int(config["latent_channels"])
        if getattr(self, "latent_channels", channels) != channels:
            raise ModelNotFoundError(
                f"Expected encoder and decoder of {self.name!r} to share one latent size. Got "
                f"{channels} and {self.latent_channels} channels instead."
            )
        self.latent_channels = channels
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return module.to(device=self.device, dtype=self.dtype, memory_format=memory_format)

    @property
    def can_encode(self) -> bool:
        """Whether encoder weights are loaded or known (they may still need a download)."""
        return self.encoder is not None or self._encoder_source is not None

    def load_encoder(self) -> nn.Sequential:
        """Load the encoder now (it is otherwise loaded on the first encode)."""
        if self.encoder is None:
            source = self._encoder_source
            if source is None:
                raise ModelNotFoundError(
                    f"Expected encoder weights for {self.name!r} next to {str(self.decoder_path)!r}. Got none "
                    f"instead: this model can only decode. Add {self.name}_encoder.pth to that folder."
                )
            path = source() if callable(source) else source
            self.encoder = self._place(*_build("encoder", Path(path)))
        return self.encoder

    def _encode_pixels(self, x: torch.Tensor) -> torch.Tensor:
        return self.load_encoder()(x)

    def _decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    # The GroupNorm blocks (normalising over the whole picture) sit at latent resolution: decoder layers 0-5 and
    # encoder layers 11-14. Those run whole (small); only the convolution-only full-resolution part is tiled.
    _DECODER_SPLIT = 6
    _ENCODER_SPLIT = 11

    def _decode_tiles(self, z: torch.Tensor, tiling: Tiling) -> torch.Tensor:
        head = self.decoder[: self._DECODER_SPLIT](z)
        return tiled_apply(head, self.decoder[self._DECODER_SPLIT :], in_unit=1, out_unit=self.downscale,
                           tile=tiling.tile, overlap=tiling.overlap)

    def _encode_tiles(self, x: torch.Tensor, tiling: Tiling) -> torch.Tensor:
        encoder = self.load_encoder()
        feats = tiled_apply(x, encoder[: self._ENCODER_SPLIT], in_unit=self.downscale, out_unit=1,
                            tile=tiling.tile, overlap=tiling.overlap)
        if self.channels_last:
            feats = feats.contiguous(memory_format=torch.channels_last)
        return encoder[self._ENCODER_SPLIT :](feats)

    def weights_sha256(self) -> str:
        """sha256 of the decoder weights file (computed once)."""
        if self._weights_sha256 is None:
            self._weights_sha256 = sha256_file(self.decoder_path)
        return self._weights_sha256
