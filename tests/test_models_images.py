"""Image renditions (PNG/WebP/JPEG bytes) and pixel digests, checked by decoding the bytes back with Pillow."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from latentzarr.models.images import (
    DEFAULT_QUALITY,
    MEDIA_TYPES,
    InvalidImageError,
    InvalidRenditionError,
    Rendition,
    encode_image,
    pixel_digest,
)


@pytest.fixture(scope="module")
def photo(sample_images_256) -> np.ndarray:
    """A real photo, cropped to a non-square 256x192 (H x W) so that aspect handling shows."""
    return np.ascontiguousarray(sample_images_256["astronaut"][:, 32:224])


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_png_is_lossless(photo):
    image = _open(encode_image(photo))
    assert (image.format, image.mode, image.size) == ("PNG", "RGB", (192, 256))
    np.testing.assert_array_equal(np.asarray(image), photo)


@pytest.mark.parametrize(("fmt", "pil"), [("webp", "WEBP"), ("jpeg", "JPEG"), ("JPG", "JPEG")])
def test_lossy_formats_and_quality(photo, fmt, pil):
    low, high = encode_image(photo, fmt, quality=20), encode_image(photo, fmt, quality=95)
    for data in (low, high):
        image = _open(data)
        assert (image.format, image.mode, image.size) == (pil, "RGB", (192, 256))
    assert len(low) < len(high)
    error = np.abs(np.asarray(_open(high), dtype=float) - photo).mean()
    assert error < 4  # a faithful picture, not noise
    assert encode_image(photo, fmt) == encode_image(
        photo, fmt, quality=DEFAULT_QUALITY[fmt.lower().replace("jpg", "jpeg")]
    )


def test_size_bounds_longest_side_keeps_aspect_and_never_upscales(photo):
    assert _open(encode_image(photo, "png", size=128)).size == (96, 128)
    assert _open(encode_image(photo, "webp", size=100)).size == (75, 100)
    assert _open(encode_image(photo, "png", size=1000)).size == (192, 256)
    np.testing.assert_array_equal(np.asarray(_open(encode_image(photo, "png", size=256))), photo)
    assert _open(encode_image(photo[:1, :7], "png", size=2)).size == (2, 1)  # never 0 pixels


def test_encoding_is_deterministic(photo):
    for fmt in MEDIA_TYPES:
        assert encode_image(photo, fmt, size=64) == encode_image(photo.copy(), fmt, size=64)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"format": "gif"}, "format"),
        ({"format": None}, "format"),
        ({"size": 0}, "size"),
        ({"size": -5}, "size"),
        ({"size": 2.5}, "size"),
        ({"size": True}, "size"),
        ({"size": 100_000}, "size"),
        ({"format": "png", "quality": 90}, "lossless"),
        ({"format": "webp", "quality": 0}, "quality"),
        ({"format": "jpeg", "quality": 101}, "quality"),
        ({"format": "jpeg", "quality": "90"}, "quality"),
    ],
)
def test_bad_rendition_parameters(photo, kwargs, match):
    with pytest.raises(InvalidRenditionError, match=match) as info:
        encode_image(photo, **kwargs)
    assert isinstance(info.value, ValueError) and "Expected" in str(info.value)


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((0, 8, 3), np.uint8),
    ],
)
def test_bad_pixels(pixels):
    with pytest.raises(InvalidImageError, match="uint8 RGB"):
        encode_image(pixels)


def test_rendition_normalises_equal_requests():
    assert Rendition.parse("JPG") == Rendition.parse("jpeg", None, DEFAULT_QUALITY["jpeg"])
    r = Rendition.parse("webp", 512, 80)
    assert (r.token, r.media_type) == ("webp-s512-q80", "image/webp")
    assert Rendition.parse().token == "png"
    assert MEDIA_TYPES == {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}


def test_pixel_digest(photo):
    digest = pixel_digest(photo)
    assert digest == hashlib.sha256(b"256x192x3:" + photo.tobytes()).hexdigest()
    assert pixel_digest(np.asfortranarray(photo)) == digest  # memory layout does not matter
    changed = photo.copy()
    changed[10, 10, 1] ^= 1
    assert pixel_digest(changed) != digest
    flat = photo.reshape(192, 256, 3)  # same bytes, other shape
    assert pixel_digest(flat) != digest
    with pytest.raises(InvalidImageError):
        pixel_digest(photo.astype(np.int16))


def test_image_helpers_do_not_import_torch():
    """An HTTP front end validates renditions and encodes pictures without loading torch."""
    import subprocess
    import sys

    code = (
        "import sys; from latentzarr.models import MEDIA_TYPES, Rendition, encode_image, pixel_digest; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
