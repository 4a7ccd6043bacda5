"""Tiled encode and decode of large pictures: bounded memory, overlapping tiles blended linearly.

A decoder's activations grow with the picture: taef2 keeps several 64-channel float maps of the full output size
alive, so a 2048x2048 ingest (encode, then decode for the pixel digest) peaked at 4.6 GB RSS. Above
:attr:`Tiling.max_pixels` the picture is cut into tiles of ``tile`` latent cells (``8 * tile`` pixels) that
overlap by at least ``overlap`` cells, each tile runs through the model alone, and the outputs are blended with
weights that ramp linearly across each overlap (the two ramps of an overlap sum to 1), as diffusers'
``enable_tiling`` does for its VAEs. Peak memory then depends on the tile size, not on the picture size.

Tiles are placed on the latent grid (so pixel tiles start at multiples of 8), spread evenly so that the first
starts at 0 and the last ends at the edge. Tiling changes the output slightly, since each tile sees less context
(and taef2's GroupNorm blocks see statistics of the tile only): BENCHMARKS.md gives the difference on the sample
photos. A decode is still deterministic for a fixed setup including the tiling, which the model's fingerprint
records when it differs from :data:`DEFAULT_TILING`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["DEFAULT_TILING", "Tiling", "tile_starts", "tiled_apply"]


@dataclass(frozen=True)
class Tiling:
    """When and how to tile.

    Attributes
    ----------
    max_pixels
        Pictures with more pixels (H * W) than this are tiled; smaller ones run whole (bit-identical to no tiling).
    tile
        Tile side in latent cells (pixels / 8).
    overlap
        Least overlap of neighbouring tiles, in latent cells; it must be smaller than ``tile``.
    """

    max_pixels: int = 1536 * 1536
    tile: int = 64
    overlap: int = 16

    def __post_init__(self) -> None:
        for name in ("max_pixels", "tile"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Expected Tiling.{name} as a positive int. Got {value!r} instead.")
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile:
            raise ValueError(f"Expected Tiling.overlap as an int in [0, tile={self.tile}). Got {self.overlap!r} "
                             "instead.")

    def applies(self, height_px: int, width_px: int) -> bool:
        """Whether a picture of ``height_px`` x ``width_px`` is tiled."""
        return height_px * width_px > self.max_pixels

    def as_dict(self) -> dict[str, int]:
        """``{"max_pixels", "tile", "overlap"}`` (for fingerprints and reports)."""
        return {"max_pixels": self.max_pixels, "tile": self.tile, "overlap": self.overlap}


DEFAULT_TILING = Tiling()
"""Tile pictures above 1536 x 1536 pixels (2.4 MP) in 512-pixel tiles overlapping by at least 128 pixels."""


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of the tiles covering ``[0, length)``: ``[0]`` when one tile covers it, else evenly spread tiles of
    ``tile`` with neighbours overlapping by at least ``overlap``, the last ending at ``length``."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _ramp(starts: list[int], i: int, size: int, unit: int, device: torch.device) -> torch.Tensor:
    """Blend weights (``size * unit`` values) of tile ``i`` along one axis: linear ramps over its overlaps."""
    n = size * unit
    w = torch.ones(n, dtype=torch.float32, device=device)
    if i > 0:
        left = (starts[i - 1] + size - starts[i]) * unit
        if left > 0:
            w[:left] = (torch.arange(left, device=device, dtype=torch.float32) + 0.5) / left
    if i < len(starts) - 1:
        right = (starts[i] + size - starts[i + 1]) * unit
        if right > 0:
            down = (torch.arange(right, 0, -1, device=device, dtype=torch.float32) - 0.5) / right
            w[n - right :] = torch.minimum(w[n - right :], down)
    return w


def tiled_apply(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], *, in_unit: int, out_unit: int,
                tile: int, overlap: int) -> torch.Tensor:
    """Apply ``fn`` to overlapping tiles of ``x`` (N, C, H, W) and blend the outputs into one float32 tensor.

    The grid is ``H / in_unit`` by ``W / in_unit`` cells (latent cells): decode uses ``in_unit=1, out_unit=8``
    (``fn`` maps h x w latents to 8h x 8w pixels), encode ``in_unit=8, out_unit=1``. ``tile`` and ``overlap`` are
    in cells. The result is on ``x``'s device: (N, C', H / in_unit * out_unit, W / in_unit * out_unit).
    """
    n, _, height, width = x.shape
    gh, gw = height // in_unit, width // in_unit
    if gh * in_unit != height or gw * in_unit != width:
        raise ValueError(f"Expected a height and width that are multiples of {in_unit}. Got {height}x{width} instead.")
    th, tw = min(tile, gh), min(tile, gw)
    ys, xs = tile_starts(gh, tile, overlap), tile_starts(gw, tile, overlap)
    out: torch.Tensor | None = None
    total = torch.zeros(gh * out_unit, gw * out_unit, dtype=torch.float32, device=x.device)
    for i, y0 in enumerate(ys):
        wy = _ramp(ys, i, th, out_unit, x.device)
        for j, x0 in enumerate(xs):
            part = fn(x[:, :, y0 * in_unit : (y0 + th) * in_unit, x0 * in_unit : (x0 + tw) * in_unit])
            if out is None:
                out = torch.zeros(n, part.shape[1], gh * out_unit, gw * out_unit, dtype=torch.float32,
                                  device=x.device)
            w = wy[:, None] * _ramp(xs, j, tw, out_unit, x.device)[None, :]
            rows = slice(y0 * out_unit, (y0 + th) * out_unit)
            cols = slice(x0 * out_unit, (x0 + tw) * out_unit)
            out[:, :, rows, cols] += part.float() * w
            total[rows, cols] += w
            del part
    assert out is not None
    return out.div_(total)
