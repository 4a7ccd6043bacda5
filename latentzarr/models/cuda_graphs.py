"""CUDA graphs for decoding: one captured graph per static latent shape, replayed without per-kernel launches.

A decode launches hundreds of small kernels; at batch 1 on a fast GPU their launch overhead is a visible share of
the latency. :class:`GraphDecoder` captures ``model``'s decoder once for a fixed (N, C, h, w) and replays it. The
input is copied into a static buffer and the output is a static buffer, overwritten by the next call (copy it if
you keep it). CUDA only.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["GraphDecoder"]


class GraphDecoder:
    """A CUDA graph of ``model.decode_tensor`` for latents of exactly ``shape`` (N, C, h, w).

    Parameters
    ----------
    model
        A :class:`~latentzarr.models.autoencoder.LatentAutoencoder` on a CUDA device.
    shape
        The static latent shape (N, C, h, w).
    warmup
        Eager runs on a side stream before the capture (cuDNN picks its algorithms then).
    """

    def __init__(self, model: Any, shape: tuple[int, int, int, int], *, warmup: int = 3) -> None:
        if model.device.type != "cuda":
            raise ValueError(f"Expected a model on a CUDA device for CUDA graphs. Got {model.device} instead.")
        model._check_latent_shape(tuple(shape))
        self.model = model
        self.shape = tuple(int(x) for x in shape)
        fmt = torch.channels_last if model.channels_last else torch.contiguous_format
        decode = model._decode_fn or model._decode_latents
        with torch.inference_mode():
            self._in = torch.zeros(self.shape, device=model.device, dtype=model.dtype).contiguous(memory_format=fmt)
            side = torch.cuda.Stream(model.device)
            side.wait_stream(torch.cuda.current_stream(model.device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    decode(self._in)
            torch.cuda.current_stream(model.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._out = decode(self._in).clamp(0, 1)

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode ``latents`` of :attr:`shape`: RGB (N, 3, 8h, 8w) in [0, 1] (a static buffer; see module doc)."""
        if tuple(latents.shape) != self.shape:
            raise ValueError(f"Expected latents of the captured shape {self.shape}. Got {tuple(latents.shape)} "
                             "instead; capture one GraphDecoder per shape.")
        with torch.inference_mode():
            self._in.copy_(latents)
            self.graph.replay()
        return self._out
