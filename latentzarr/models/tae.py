"""The TAESD family of tiny autoencoders (taesd, taesdxl, taesd3, taef1, taef2) as plain torch modules.

Our own implementation of the architecture published by madebyollin/taesd (MIT), written so that the
published state dicts load with ``strict=True``: encoder and decoder are ``nn.Sequential`` whose indices are
the state-dict prefixes.

- Images are RGB float in [0, 1], shape (N, 3, H, W), H and W multiples of 8.
- Latents are (N, C, H/8, W/8); C = 32 for taef2 (4 for taesd, 16 for taef1/taesd3).
- taef2 adds a GroupNorm branch to the three blocks at the lowest resolution ("GN-Blocks").

The latent space is the one the model was trained in: for taef2 the encoder output *is* the stored latent
(scaling factor 1, shift 0).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["Block", "SoftClamp", "build_decoder", "build_encoder", "infer_decoder_config", "infer_encoder_config"]

_WIDTH = 64
"""Feature channels of every hidden layer."""


def _conv(n_in: int, n_out: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, stride=stride, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """``tanh(x / limit) * limit``: squashes latents smoothly into (-limit, limit); no weights."""

    def __init__(self, limit: float = 3.0) -> None:
        super().__init__()
        self.limit = float(limit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / self.limit) * self.limit

    def extra_repr(self) -> str:
        return f"limit={self.limit}"


class Block(nn.Module):
    """Residual block of three 3x3 convolutions (64 channels), optionally preceded by a GroupNorm branch.

    ``forward(x) = relu(conv(x') + x')`` with ``x' = x + pool(x)`` when ``group_norm`` else ``x' = x``;
    ``pool`` is 1x1 conv 64->256 (no bias), GroupNorm(4, 256), ReLU, 1x1 conv 256->64 (no bias).
    """

    def __init__(self, channels: int = _WIDTH, *, group_norm: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            _conv(channels, channels),
            nn.ReLU(),
            _conv(channels, channels),
            nn.ReLU(),
            _conv(channels, channels),
        )
        self.pool: nn.Sequential | None = None
        if group_norm:
            wide = 4 * channels
            self.pool = nn.Sequential(
                nn.Conv2d(channels, wide, 1, bias=False),
                nn.GroupNorm(4, wide),
                nn.ReLU(),
                nn.Conv2d(wide, channels, 1, bias=False),
            )
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def build_encoder(latent_channels: int = 32, *, group_norm: bool = True) -> nn.Sequential:
    """Encoder: (N, 3, H, W) in [0, 1] -> (N, ``latent_channels``, H/8, W/8)."""
    w = _WIDTH
    return nn.Sequential(
        _conv(3, w),  # 0
        Block(w),  # 1
        _conv(w, w, stride=2, bias=False),  # 2
        Block(w),  # 3
        Block(w),  # 4
        Block(w),  # 5
        _conv(w, w, stride=2, bias=False),  # 6
        Block(w),  # 7
        Block(w),  # 8
        Block(w),  # 9
        _conv(w, w, stride=2, bias=False),  # 10
        Block(w, group_norm=group_norm),  # 11
        Block(w, group_norm=group_norm),  # 12
        Block(w, group_norm=group_norm),  # 13
        _conv(w, latent_channels),  # 14
    )


def build_decoder(latent_channels: int = 32, *, group_norm: bool = True) -> nn.Sequential:
    """Decoder: (N, ``latent_channels``, h, w) -> (N, 3, 8h, 8w), roughly in [0, 1] (callers clamp)."""
    w = _WIDTH
    return nn.Sequential(
        SoftClamp(3.0),  # 0
        _conv(latent_channels, w),  # 1
        nn.ReLU(),  # 2
        Block(w, group_norm=group_norm),  # 3
        Block(w, group_norm=group_norm),  # 4
        Block(w, group_norm=group_norm),  # 5
        nn.Upsample(scale_factor=2),  # 6
        _conv(w, w, bias=False),  # 7
        Block(w),  # 8
        Block(w),  # 9
        Block(w),  # 10
        nn.Upsample(scale_factor=2),  # 11
        _conv(w, w, bias=False),  # 12
        Block(w),  # 13
        Block(w),  # 14
        Block(w),  # 15
        nn.Upsample(scale_factor=2),  # 16
        _conv(w, w, bias=False),  # 17
        Block(w),  # 18
        _conv(w, 3),  # 19
    )


def infer_decoder_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int | bool]:
    """``{"latent_channels", "group_norm"}`` of a TAE decoder state dict (raises ``KeyError`` if not one)."""
    return {
        "latent_channels": int(state_dict["1.weight"].shape[1]),
        "group_norm": "3.pool.0.weight" in state_dict,
    }


def infer_encoder_config(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int | bool]:
    """``{"latent_channels", "group_norm"}`` of a TAE encoder state dict (raises ``KeyError`` if not one)."""
    return {
        "latent_channels": int(state_dict["14.weight"].shape[0]),
        "group_norm": "11.pool.0.weight" in state_dict,
    }
