"""How much each latent channel moves the decoded pixels: the weights of the ``wstep`` precision mode.

For channel c, uniform noise of amplitude ``a`` (variance ``a**2 / 3``) is added to that channel only, the
latents are decoded in float (before the uint8 rounding) and the pixel mean squared error (in 8-bit levels
squared) is divided by the noise variance. At high rate, quantisation steps proportional to
``1 / sqrt(sensitivity)`` minimise the pixel error for a given number of bits (equal error contribution per
channel). Deterministic for a fixed ``seed`` and setup.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["channel_sensitivity"]


def channel_sensitivity(
    model: Any, latents: np.ndarray | None = None, *, amplitude: float = 0.05, seed: int = 0, max_side: int = 32
) -> np.ndarray:
    """Return the decoder's pixel sensitivity per latent channel (float64, shape (C,), positive).

    Parameters
    ----------
    model
        A :class:`latentzarr.models.LatentAutoencoder`.
    latents
        (N, C, h, w) latents to measure on; by default two sample photos at 128x128 encoded with ``model``.
        A centre crop of at most ``max_side`` x ``max_side`` latent pixels is used, to bound the cost (C + 1
        decodes of it).
    amplitude
        Half-width of the uniform noise, in latent units.
    """
    import torch

    if latents is None:
        from latentzarr.samples import sample_images

        pics = sample_images(128, names=["astronaut", "coffee"])
        latents = model.encode(np.stack(list(pics.values())), dtype=np.float32)
    arr = np.asarray(latents).astype(np.float32)
    _, channels, h, w = arr.shape
    top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    arr = np.ascontiguousarray(arr[:, :, top : top + max_side, left : left + max_side])
    rng = np.random.default_rng(seed)
    base = model.decode_tensor(torch.from_numpy(arr)).float() * 255
    variance = amplitude**2 / 3
    out = np.empty(channels)
    for c in range(channels):
        noisy = arr.copy()
        noisy[:, c] += rng.uniform(-amplitude, amplitude, noisy[:, c].shape).astype(np.float32)
        moved = model.decode_tensor(torch.from_numpy(noisy)).float() * 255
        out[c] = float(((moved - base) ** 2).mean()) / variance
    return np.maximum(out, 1e-12)
