"""taef2 through the common autoencoder interface, with the real trained weights."""

from __future__ import annotations

import shutil

import ml_dtypes
import numpy as np
import pytest
import torch

from latentzarr.errors import InvalidLatentError, ModelNotFoundError
from latentzarr.models import LatentAutoencoder, TinyAutoencoder, load_model, psnr
from latentzarr.models.tae import build_decoder, build_encoder

TAEF2_DECODER_SHA256 = "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5"


@pytest.fixture(scope="module")
def small_latents(taef2_latents) -> np.ndarray:
    """Two real latents cropped to 8x8 (64x64 pixels): cheap decodes."""
    return np.ascontiguousarray(taef2_latents[:2, :, 8:16, 8:16])


def test_modules_have_exactly_the_published_keys(models_dir):
    for part, build in (("decoder", build_decoder), ("encoder", build_encoder)):
        state = torch.load(models_dir / "taef2" / f"taef2_{part}.pth", map_location="cpu", weights_only=True)
        module = build(32, group_norm=True)
        assert sorted(module.state_dict()) == sorted(state)
        assert all(module.state_dict()[k].shape == v.shape for k, v in state.items())


def test_taef2_attributes(taef2):
    assert isinstance(taef2, LatentAutoencoder)
    assert (taef2.name, taef2.latent_channels, taef2.downscale) == ("taef2", 32, 8)
    assert (taef2.scaling_factor, taef2.shift_factor) == (1.0, 0.0)
    assert taef2.device == torch.device("cpu") and taef2.dtype == torch.float32


def test_reconstruction_of_real_photos(taef2, taef2_latents, sample_images_256):
    """A wrong architecture (a missing skip, a swapped layer) cannot reconstruct photos at > 25 dB."""
    assert taef2_latents.shape == (8, 32, 32, 32) and taef2_latents.dtype == np.float32
    names = list(sample_images_256)
    chosen = [names.index(n) for n in ("astronaut", "chelsea", "immunohistochemistry", "colorwheel")]
    decoded = taef2.decode(taef2_latents[chosen], batch_size=4)
    assert decoded.shape == (4, 256, 256, 3) and decoded.dtype == np.uint8
    for i, image in zip(chosen, decoded, strict=True):
        assert psnr(sample_images_256[names[i]], image) > 25, names[i]
    # and a decode is not just "any picture": the wrong original scores far lower
    assert psnr(sample_images_256["chelsea"], decoded[0]) < 15


def test_decode_is_deterministic_for_a_fixed_batch_size(taef2, small_latents):
    for batch_size in (1, 2):
        first = taef2.decode(small_latents, batch_size=batch_size)
        again = taef2.decode(small_latents.copy(), batch_size=batch_size)
        assert first.tobytes() == again.tobytes()


def test_read_only_and_strided_inputs(taef2, small_latents, sample_images_256):
    """Arrays straight from a store are often read-only views; they must work without warnings."""
    frozen = small_latents.copy()
    frozen.flags.writeable = False
    expected = taef2.decode(small_latents)
    np.testing.assert_array_equal(taef2.decode(frozen), expected)
    strided = np.concatenate([small_latents, small_latents], axis=3)[..., ::2]
    np.testing.assert_array_equal(taef2.decode(strided), taef2.decode(np.ascontiguousarray(strided)))
    image = sample_images_256["rocket"][:64, :64].copy()
    image.flags.writeable = False
    assert taef2.encode(image).shape == (32, 8, 8)


def test_single_latent_and_batch_agree(taef2, small_latents):
    one = taef2.decode(small_latents[0])
    assert one.shape == (64, 64, 3)
    np.testing.assert_array_equal(one, taef2.decode(small_latents[:1])[0])


def test_latent_dtypes(taef2, small_latents):
    bf16 = small_latents.astype(ml_dtypes.bfloat16)
    # bfloat16 -> float32 is exact, so a bfloat16 latent decodes exactly like its float32 value
    np.testing.assert_array_equal(taef2.decode(bf16), taef2.decode(bf16.astype(np.float32)))
    f16 = small_latents.astype(np.float16)
    assert psnr(taef2.decode(f16), taef2.decode(small_latents)) > 40


def test_encode_output_dtypes_and_shapes(taef2, sample_images_256):
    image = sample_images_256["coffee"][:64, :128]
    z32 = taef2.encode(image, dtype=np.float32)
    assert z32.shape == (32, 8, 16) and z32.dtype == np.float32
    z16 = taef2.encode(image[None])
    assert z16.shape == (1, 32, 8, 16) and z16.dtype == np.float16
    np.testing.assert_array_equal(z16[0], z32.astype(np.float16))
    zb = taef2.encode(image[None], dtype=ml_dtypes.bfloat16)
    assert zb.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(zb[0], z32.astype(ml_dtypes.bfloat16))
    assert taef2.encode(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 32, 8, 8)


@pytest.mark.parametrize(
    ("latents", "match"),
    [
        (np.zeros((1, 16, 4, 4), np.float32), "shape"),
        (np.zeros((32, 4), np.float32), "shape"),
        (np.zeros((1, 1, 32, 4, 4), np.float32), "shape"),
        (np.zeros((1, 32, 0, 4), np.float32), "shape"),
        (np.zeros((1, 32, 4, 4), np.int16), "dtype"),
        (np.full((1, 32, 4, 4), np.nan, np.float32), "Got 512 NaN/Inf"),
        (np.where(np.arange(32 * 16).reshape(1, 32, 4, 4) == 7, np.inf, 0).astype(np.float16), "Got 1 NaN/Inf"),
    ],
)
def test_invalid_latents_raise(taef2, latents, match):
    with pytest.raises(InvalidLatentError, match=match):
        taef2.decode(latents)


def test_decode_tensor_checks_shape_and_clamps(taef2, small_latents):
    with pytest.raises(InvalidLatentError):
        taef2.decode_tensor(torch.zeros(1, 4, 8, 8))
    y = taef2.decode_tensor(torch.from_numpy(small_latents) * 10)  # far out of range on purpose
    assert y.shape == (2, 3, 64, 64) and float(y.min()) >= 0 and float(y.max()) <= 1


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((1, 64, 64, 3), np.float32),
        np.zeros((1, 64, 64, 4), np.uint8),
        np.zeros((64, 64), np.uint8),
        np.zeros((1, 60, 64, 3), np.uint8),
    ],
)
def test_invalid_images_raise(taef2, images):
    with pytest.raises(ValueError, match="Expected"):
        taef2.encode(images)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_invalid_batch_size(taef2, small_latents, batch_size):
    with pytest.raises(ValueError, match="batch size"):
        taef2.decode(small_latents, batch_size=batch_size)


def test_fingerprint_describes_the_setup(taef2):
    fp = taef2.fingerprint()
    assert fp["model"] == "taef2"
    assert fp["weights_sha256"] == TAEF2_DECODER_SHA256
    assert fp["device"] == "cpu" and fp["dtype"] == "float32"
    assert fp["threads"] == torch.get_num_threads() and fp["torch"] == torch.__version__
    assert fp["batch_size"] == 1
    assert taef2.fingerprint(batch_size=4) == {**fp, "batch_size": 4}


def test_load_from_folder_and_file(models_dir, small_latents, taef2):
    expected = taef2.decode(small_latents)
    folder = models_dir / "taef2"
    for source in (folder, str(folder), folder / "taef2_decoder.pth"):
        model = load_model(source, device="cpu")
        assert isinstance(model, TinyAutoencoder) and model.name == "taef2" and model.can_encode
        np.testing.assert_array_equal(model.decode(small_latents), expected)


def test_decode_only_folder(models_dir, tmp_path, small_latents):
    shutil.copy(models_dir / "taef2" / "taef2_decoder.pth", tmp_path / "mytae_decoder.pth")
    model = load_model(tmp_path, device="cpu")
    assert model.name == "mytae" and not model.can_encode
    assert model.decode(small_latents).shape == (2, 64, 64, 3)
    with pytest.raises(ModelNotFoundError, match="can only decode"):
        model.encode(np.zeros((1, 8, 8, 3), np.uint8))


def test_bad_model_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTZARR_MODELS", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="nosuchmodel"):
        load_model("nosuchmodel", device="cpu")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="Expected one"):
        load_model(tmp_path / "empty", device="cpu")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "junk_decoder.pth").write_bytes(b"not a state dict")
    with pytest.raises(ModelNotFoundError, match="state dict"):
        load_model(tmp_path / "junk", device="cpu")
    torch.save({"1.weight": torch.zeros(64, 4, 3, 3)}, tmp_path / "junk" / "junk_decoder.pth")
    with pytest.raises(ModelNotFoundError, match="does not fit"):
        load_model(tmp_path / "junk", device="cpu")
