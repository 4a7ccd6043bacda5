"""diffusers VAEs through load_model("diffusers:..."): plumbing tests with tiny random-weight models, offline."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported, where this module is first

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from latentzarr.errors import InvalidLatentError, ModelNotFoundError  # noqa: E402
from latentzarr.models import load_model  # noqa: E402
from latentzarr.models.diffusers_vae import DiffusersAutoencoder, resolve_source  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _tiny_kl(scaling: float = 0.5, shift: float | None = 0.25) -> torch.nn.Module:
    torch.manual_seed(0)
    return diffusers.AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=4,
        scaling_factor=scaling,
        shift_factor=shift,
        force_upcast=False,
    ).eval()


def _tiny_tae() -> torch.nn.Module:
    torch.manual_seed(0)
    return diffusers.AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
        scaling_factor=2.0,
    ).eval()


@pytest.fixture(scope="module")
def kl_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("kl")
    _tiny_kl().save_pretrained(path)
    return path


def _images(n: int = 2, size: int = 16) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def test_kl_scaling_and_shift_match_diffusers(kl_folder):
    model = load_model(f"diffusers:{kl_folder}", device="cpu")
    assert isinstance(model, DiffusersAutoencoder)
    assert (model.latent_channels, model.downscale) == (4, 2)
    assert (model.scaling_factor, model.shift_factor) == (0.5, 0.25)
    assert model.name == f"diffusers:{kl_folder}"
    reference = diffusers.AutoencoderKL.from_pretrained(kl_folder).eval()
    images = _images()
    latents = model.encode(images, dtype=np.float32, batch_size=2)
    assert latents.shape == (2, 4, 8, 8)
    with torch.inference_mode():
        mean = reference.encode(_to_tensor(images) * 2 - 1).latent_dist.mean
        np.testing.assert_allclose(latents, ((mean - 0.25) * 0.5).numpy(), rtol=1e-5, atol=1e-5)
        pixels = reference.decode(torch.from_numpy(latents) / 0.5 + 0.25).sample
    expected = ((pixels + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    decoded = model.decode(latents, batch_size=2)
    assert decoded.shape == (2, 16, 16, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1
    assert model.decode(latents, batch_size=2).tobytes() == decoded.tobytes()


def test_scaling_is_applied_not_ignored(tmp_path):
    """The same weights with another scaling factor give stored latents scaled by exactly that ratio."""
    _tiny_kl(scaling=0.5, shift=None).save_pretrained(tmp_path / "a")
    _tiny_kl(scaling=2.0, shift=None).save_pretrained(tmp_path / "b")
    a = load_model(f"diffusers:{tmp_path / 'a'}", device="cpu")
    b = load_model(f"diffusers:{tmp_path / 'b'}", device="cpu")
    assert a.shift_factor == 0.0
    images = _images(1)
    za, zb = a.encode(images, dtype=np.float32), b.encode(images, dtype=np.float32)
    np.testing.assert_allclose(zb, za * 4, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.decode(za), b.decode(za * 4))


def test_autoencoder_tiny_and_pipeline_folder(tmp_path):
    _tiny_tae().save_pretrained(tmp_path / "pipe" / "vae")
    model = load_model(f"diffusers:{tmp_path / 'pipe'}", device="cpu")  # finds vae/ by itself
    assert (model.latent_channels, model.downscale, model.scaling_factor) == (4, 2, 2.0)
    reference = diffusers.AutoencoderTiny.from_pretrained(tmp_path / "pipe", subfolder="vae").eval()
    images = _images(1)
    with torch.inference_mode():
        raw = reference.encode(_to_tensor(images) * 2 - 1).latents
    np.testing.assert_allclose(model.encode(images, dtype=np.float32), (raw * 2.0).numpy(), rtol=1e-5, atol=1e-5)
    assert model.decode(np.zeros((1, 4, 3, 5), np.float32)).shape == (1, 6, 10, 3)


def test_fingerprint_and_validation(kl_folder):
    model = load_model(f"diffusers:{kl_folder}", device="cpu")
    fp = model.fingerprint()
    assert fp["model"] == f"diffusers:{kl_folder}" and len(fp["weights_sha256"]) == 64
    assert load_model(f"diffusers:{kl_folder}", device="cpu").weights_sha256() == fp["weights_sha256"]
    with pytest.raises(InvalidLatentError):
        model.decode(np.zeros((1, 32, 4, 4), np.float32))


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        load_model("diffusers:latentzarr-tests/no-such-model", device="cpu")
    with pytest.raises(ModelNotFoundError):
        load_model("diffusers:", device="cpu")
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(ModelNotFoundError, match="UNet2DModel"):
        load_model(f"diffusers:{tmp_path}", device="cpu")


def test_resolve_source(tmp_path):
    assert resolve_source("org/name") == ("org/name", None)
    assert resolve_source("org/name/vae") == ("org/name", "vae")
    assert resolve_source(str(tmp_path), "vae") == (str(tmp_path), "vae")
