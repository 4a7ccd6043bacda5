"""Tiled encode/decode of large pictures: tile placement, exact blending, and real taef2 tiled vs whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentzarr.models import DEFAULT_TILING, Tiling, psnr
from latentzarr.models.tiling import tile_starts, tiled_apply


def test_tile_starts_partition_the_axis():
    assert tile_starts(10, 16) == [0]
    assert tile_starts(33, 16) == [0, 16, 32]
    assert tile_starts(32, 16) == [0, 16]


def test_tiled_apply_with_context_equals_the_whole_result_of_a_local_function():
    """A 3x3 box filter (receptive field 1 cell) then 8x upsampling: with >= 1 cell of context, tiled == whole."""
    x = torch.randn(2, 4, 37, 50, generator=torch.Generator().manual_seed(0))

    def fn(z):
        smooth = torch.nn.functional.avg_pool2d(z[:, :3], 3, stride=1, padding=1, count_include_pad=True)
        return torch.nn.functional.interpolate(smooth, scale_factor=8, mode="nearest")

    whole = fn(x)
    tiled = tiled_apply(x, fn, in_unit=1, out_unit=8, tile=16, overlap=1)
    assert tiled.shape == whole.shape == (2, 3, 296, 400)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-6)
    no_context = tiled_apply(x, fn, in_unit=1, out_unit=8, tile=16, overlap=0)
    assert not torch.allclose(no_context, whole)  # the seams show without context
    down = tiled_apply(whole, lambda p: p[:, :, ::8, ::8], in_unit=8, out_unit=1, tile=12, overlap=4)
    torch.testing.assert_close(down, whole[:, :, ::8, ::8], rtol=0, atol=0)
    with pytest.raises(ValueError, match="multiples of 8"):
        tiled_apply(whole[:, :, :-3], fn, in_unit=8, out_unit=1, tile=12, overlap=4)


def test_tiling_settings_are_validated():
    assert DEFAULT_TILING.applies(1536, 1537) and not DEFAULT_TILING.applies(1536, 1536)
    for bad in ({"tile": 0}, {"overlap": -1}, {"max_pixels": 1.5}, {"tile": True}, {"overlap": 2.0}):
        with pytest.raises(ValueError, match="Expected Tiling"):
            Tiling(**bad)


@pytest.fixture(scope="module")
def photos_256(sample_images_256):
    return np.stack([sample_images_256[k] for k in list(sample_images_256)[:3]])


def test_taef2_tiled_decode_and_encode_stay_close_to_whole(models_dir, photos_256):
    """Tiling kicks in via a lowered threshold: 256 px pictures in 96 px tiles with 64 px of context."""
    from latentzarr.models import load_model

    model = load_model("taef2", device="cpu")
    model.tiling = None
    latents = model.encode(photos_256, dtype=np.float32, batch_size=3)
    whole = model.decode(latents, batch_size=3)
    model.tiling = Tiling(max_pixels=200 * 200, tile=12, overlap=8)
    assert model.fingerprint()["tiling"] == {"max_pixels": 40000, "tile": 12, "overlap": 8}
    tiled = model.decode(latents, batch_size=3)
    assert tiled.shape == whole.shape and tiled.dtype == np.uint8
    diff = np.abs(tiled.astype(int) - whole.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # float rounding only: within 1 level
    # the tiles really are computed apart: without context the seams show
    model.tiling = Tiling(max_pixels=200 * 200, tile=12, overlap=0)
    assert psnr(model.decode(latents[:1]), whole[0]) < 45
    model.tiling = Tiling(max_pixels=200 * 200, tile=12, overlap=8)
    tiled_latents = model.encode(photos_256, dtype=np.float32, batch_size=3)
    assert tiled_latents.shape == latents.shape
    np.testing.assert_allclose(tiled_latents, latents, rtol=0, atol=1e-3)
    model.tiling = None
    redecoded = model.decode(tiled_latents, batch_size=3)
    assert np.abs(redecoded.astype(int) - whole.astype(int)).max() <= 1
    # below the threshold nothing changes: bit-identical to no tiling
    model.tiling = Tiling(max_pixels=256 * 256, tile=16, overlap=8)
    np.testing.assert_array_equal(model.decode(latents, batch_size=3), whole)
    model.tiling = DEFAULT_TILING
    assert "tiling" not in model.fingerprint()
