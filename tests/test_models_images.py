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
    assert MEDIA_TYPES == {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg", "avif": "image/avif"}


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


# ---------------------------------------------------------------------------------------------- width/height/fit
@pytest.mark.parametrize(("options", "source", "resized", "crop"), [
    ({"width": 300, "height": 300}, (512, 768), (200, 300), None),  # fit inside, aspect kept
    ({"width": 300}, (512, 768), (200, 300), None),  # one side: the other follows the aspect ratio
    ({"height": 1000}, (512, 768), (512, 768), None),  # never enlarged by default
    ({"width": 1536, "enlarge": True}, (512, 768), (1024, 1536), None),
    ({"width": 300, "height": 300, "fit": "fill"}, (512, 768), (300, 450), (0, 75, 300, 300)),
    ({"width": 300, "height": 300, "fit": "fill", "gravity": "we"}, (512, 768), (300, 450), (0, 0, 300, 300)),
    ({"width": 300, "height": 300, "fit": "fill", "gravity": "soea"}, (512, 768), (300, 450), (0, 150, 300, 300)),
    ({"width": 300, "height": 100, "fit": "fill", "gravity": "no"}, (768, 512), (450, 300), (0, 0, 100, 300)),
    ({"width": 300, "height": 100, "fit": "fill", "gravity": "so"}, (768, 512), (450, 300), (350, 0, 100, 300)),
    ({"width": 1000, "height": 1000, "fit": "fill"}, (512, 768), (512, 768), None),  # no enlarge, no crop
    ({"width": 1000, "height": 1000, "fit": "fill-down"}, (512, 768), (512, 768), (0, 128, 512, 512)),
    ({"width": 1000, "height": 300, "fit": "fill-down"}, (512, 768), (512, 768), (141, 0, 230, 768)),
    ({"width": 100, "height": 1000, "fit": "force"}, (512, 768), (512, 100), None),
    ({"width": 100, "fit": "force"}, (512, 768), (512, 100), None),
    ({"width": 300, "height": 100, "fit": "auto"}, (512, 768), (200, 300), (50, 0, 100, 300)),  # same: fill
    ({"width": 200, "height": 300, "fit": "auto"}, (512, 768), (133, 200), None),  # other orientation: fit
])
def test_plan_follows_imgproxy_resizing_types(options, source, resized, crop):
    rendition = Rendition.parse("png", **options)
    assert rendition.plan(*source) == (resized, crop)
    pixels = np.zeros((*source, 3), np.uint8)
    out = _open(encode_image(pixels, rendition))
    assert out.size[::-1] == (resized if crop is None else crop[2:])


def test_fill_crops_where_gravity_says(photo):
    # a picture that is white on its top half only: a north crop is white, a south crop is black
    pixels = np.zeros((256, 128, 3), np.uint8)
    pixels[:128] = 255
    north = np.asarray(_open(encode_image(pixels, Rendition.parse("png", width=64, height=32, fit="fill",
                                                                   gravity="no"))))
    south = np.asarray(_open(encode_image(pixels, Rendition.parse("png", width=64, height=32, fit="fill",
                                                                   gravity="so"))))
    assert north.min() == 255 and south.max() == 0


def test_avif_is_written_and_deterministic(photo):
    data = encode_image(photo, "avif", quality=50)
    image = _open(data)
    assert image.format == "AVIF" and image.size == (192, 256)
    assert encode_image(photo.copy(), "avif", quality=50) == data


def test_rendition_tokens_keep_old_renditions_and_normalise_new_ones():
    assert Rendition.parse("webp", 512, 80).token == "webp-s512-q80"  # cache and task keys of old renditions
    r = Rendition.parse("avif", width=300, height=200, fit="fill-down", gravity="nowe", enlarge=True)
    assert r.token == "avif-w300-h200-rfilldown-gnowe-el-q65"
    # options that cannot change the picture are dropped, so equal pictures share a key
    assert Rendition.parse("png", width=300, fit="fill", gravity="no") == Rendition.parse("png", width=300)
    assert Rendition.parse("png", width=0, height=0, fit="fill", enlarge=True) == Rendition.parse("png")
    assert Rendition.parse("png", width=300, height=300, fit="fit", gravity="so").gravity == "ce"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"fit": "squash", "width": 3}, "fit to be one of"),
    ({"gravity": "sm", "width": 3}, "gravity to be one of"),
    ({"width": -1}, "width to be None or an int from 0"),
    ({"height": 10**6}, "height to be None or an int"),
    ({"size": 64, "width": 32}, "either size or width/height"),
    ({"width": 3, "enlarge": "yes"}, "enlarge to be True or False"),
])
def test_bad_geometry_is_refused(kwargs, match):
    size = kwargs.pop("size", None)
    with pytest.raises(InvalidRenditionError, match=match):
        Rendition.parse("png", size, **kwargs)
