"""How much each latent channel moves the decoded pixels: the weights of the ``wstep`` precision mode.

For channel c, uniform noise of amplitude ``a`` (variance ``a**2 / 3``) is added to that channel only, the
latents are decoded in float (before the uint8 rounding) and the pixel mean squared error (in 8-bit levels
squared) is divided by the noise variance. At high rate, quantisation steps proportional to
``1 / sqrt(sensitivity)`` minimise the pixel error for a given number of bits (equal error contribution per
channel). Deterministic for a fixed ``seed`` and setup.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cached_channel_sensitivity", "channel_sensitivity", "sensitivity_cache_dir"]

_MEMO: dict[str, np.ndarray] = {}


def channel_sensitivity(
    model: Any, latents: np.ndarray | None = None, *, amplitude: float = 0.05, seed: int = 0, max_side: int = 32,
    progress: bool = False,
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
    progress
        Show a progress bar (one step per decode).
    """
    import torch
    from tqdm.auto import tqdm

    if latents is None:
        from latentzarr.samples import sample_images

        pics = sample_images(128, names=["astronaut", "coffee"])
        latents = model.encode(np.stack(list(pics.values())), dtype=np.float32)
    arr = np.asarray(latents).astype(np.float32)
    _, channels, h, w = arr.shape
    top, left = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    arr = np.ascontiguousarray(arr[:, :, top : top + max_side, left : left + max_side])
    rng = np.random.default_rng(seed)
    bar = tqdm(total=channels + 1, unit="decode", desc="channel sensitivity", disable=not progress)
    base = model.decode_tensor(torch.from_numpy(arr)).float() * 255
    bar.update()
    variance = amplitude**2 / 3
    out = np.empty(channels)
    for c in range(channels):
        bar.update()
        noisy = arr.copy()
        noisy[:, c] += rng.uniform(-amplitude, amplitude, noisy[:, c].shape).astype(np.float32)
        moved = model.decode_tensor(torch.from_numpy(noisy)).float() * 255
        out[c] = float(((moved - base) ** 2).mean()) / variance
    bar.close()
    return np.maximum(out, 1e-12)


def sensitivity_cache_dir() -> Path:
    """Where :func:`cached_channel_sensitivity` keeps its results: ``$LATENTZARR_CACHE_DIR/sensitivity``, else
    the user cache folder (``~/.cache/latentzarr/sensitivity`` on Linux)."""
    root = os.environ.get("LATENTZARR_CACHE_DIR")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("latentzarr")
    return Path(root) / "sensitivity"


def cached_channel_sensitivity(model: Any, *, progress: bool = False, cache_dir: str | Path | None = None,
                               **kwargs: Any) -> np.ndarray:
    """:func:`channel_sensitivity` on its default sample latents, computed once per model setup and cached.

    The key is the model's :meth:`~latentzarr.models.LatentAutoencoder.fingerprint` (weights digest, device,
    torch version, threads...) and ``kwargs``, so a cached value equals what a new computation would give. The
    result is kept in this process and in a small JSON file under ``cache_dir`` (default
    :func:`sensitivity_cache_dir`); a folder that cannot be written only costs the recomputation next time.
    """
    key_doc = {"fingerprint": model.fingerprint(), "kwargs": kwargs, "version": 1}
    key = hashlib.sha256(json.dumps(key_doc, sort_keys=True, default=str).encode()).hexdigest()[:32]
    if key in _MEMO:
        return _MEMO[key].copy()
    path = Path(cache_dir if cache_dir is not None else sensitivity_cache_dir()) / f"{key}.json"
    try:
        value = np.asarray(json.loads(path.read_text())["sensitivity"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError):
        value = channel_sensitivity(model, progress=progress, **kwargs)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({**key_doc, "sensitivity": value.tolist()}, default=str))
            os.replace(tmp, path)
        except OSError:
            pass
    _MEMO[key] = value
    return value.copy()
