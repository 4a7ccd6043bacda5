"""Renditions of the preview endpoint as a CDN and imgproxy users expect them: width/height/fit/gravity/dpr,
``format=auto`` with ``Vary: Accept``, AVIF, imgproxy-style signed URLs, presets and presets-only, weak ETags,
``Last-Modified`` / ``If-Modified-Since``, ``HEAD``, and renditions served from a cached picture without a decode.

Real uvicorn servers on 127.0.0.1 over one real local Dask cluster (two worker processes), the store of
``test_http.py`` (256x256 photo latents and 64x64 small ones, real taef2 weights). Expected signatures are computed
here with :mod:`hmac` exactly as imgproxy's documentation specifies, never with the code under test.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import json
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from PIL import Image
from test_http import PHOTOS, SMALL, ServerThread, img_path, make_store, metrics, pixels, total

from latentzarr.http import create_app
from latentzarr.http.imgproxy import Signer
from latentzarr.models.images import Rendition, render_image

KEYS = ["943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881", "0123456789abcdef" * 4]
SALTS = ["520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5", "fedcba9876543210" * 2]
PRESETS = {"thumb": {"w": 64, "h": 48, "fit": "fill", "format": "webp", "q": 70},
           "wide": {"w": 120, "dpr": 2}}
CLUSTER_OPTIONS = {"torch_threads": 1, "cache_options": {"promote_after": 1}}


@pytest.fixture(scope="module")
def store_url(tmp_path_factory, taef2_latents) -> str:
    return make_store(tmp_path_factory.mktemp("renditions") / "store.zarr", taef2_latents)


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def signed(store_url, scheduler):
    app = create_app(store_url, address=scheduler, rate_limit=None, cache_bytes=32 * 2**20,
                     cluster_options=CLUSTER_OPTIONS, signing_keys=KEYS, signing_salts=SALTS, presets=PRESETS)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def locked(store_url, scheduler, tmp_path_factory):
    path = tmp_path_factory.mktemp("presets") / "presets.toml"
    path.write_text('[thumb]\nw = 64\nh = 48\nfit = "fill"\nformat = "webp"\nq = 70\n')
    app = create_app(store_url, address=scheduler, rate_limit=None, cache_bytes=32 * 2**20,
                     cluster_options=CLUSTER_OPTIONS, presets=str(path), presets_only=True)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        yield client


def imgproxy_signature(key_hex: str, salt_hex: str, path: str) -> str:
    """imgproxy's spec: URL-safe base64 (no padding) of HMAC-SHA256(key, salt + path), key and salt hex-decoded."""
    digest = hmac.new(bytes.fromhex(key_hex), bytes.fromhex(salt_hex) + path.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def problem(r: httpx.Response, status: int, parameter: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["parameter"] == parameter and body["detail"] and "Traceback" not in r.text


# ---------------------------------------------------------------------------------------------- signatures (no server)
def test_signer_matches_imgproxys_published_example():
    # imgproxy's own example (examples/signature.* in imgproxy's repository): this key, salt and path sign as below
    path = "/fill/300/300/no/1/aHR0cDovL2ltZy5leGFtcGxlLmNvbS9wcmV0dHkvaW1hZ2UuanBn.png"
    want = "_PQ4ytCQMMp-1w1m_vP6g8Qb-Q7yF9mwghf6PddqxLw"
    assert imgproxy_signature(KEYS[0], SALTS[0], path) == want
    signer = Signer(KEYS, SALTS)
    assert signer.sign(path) == want and signer.verify(want, path)
    assert signer.verify(imgproxy_signature(KEYS[1], SALTS[1], path), path)  # the second pair verifies too
    assert not signer.verify(want, path + "x") and not signer.verify("insecure", path)
    assert Signer(KEYS[:1], SALTS[:1], signature_size=8).sign(path) == base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(want + "=")[:8]).rstrip(b"=").decode()  # IMGPROXY_SIGNATURE_SIZE truncation
    assert "943b" not in repr(signer)


@pytest.mark.parametrize(("keys", "salts", "match"), [
    (["abcd"], [], "as many signing salts"),
    (["xyz"], ["abcd"], "signing key as a non-empty hex"),
    (["abcd"], [""], "signing salt as a non-empty hex"),
])
def test_signer_refuses_bad_keys(keys, salts, match):
    with pytest.raises(ValueError, match=match):
        Signer(keys, salts)


# ---------------------------------------------------------------------------------------------- native options
@pytest.mark.parametrize(("query", "size"), [
    ({"w": 100, "h": 50}, (50, 50)),  # fit inside
    ({"w": 100, "h": 50, "fit": "fill"}, (100, 50)),  # cover and crop
    ({"w": 100, "h": 50, "fit": "fill", "dpr": 2}, (200, 100)),
    ({"w": 100, "h": 50, "fit": "force"}, (100, 50)),
    ({"w": 1000}, (256, 256)),  # no enlargement by default
    ({"w": 300, "enlarge": 1}, (300, 300)),
    ({"width": 64, "format": "avif"}, (64, 64)),
    ({"preset": "thumb"}, (64, 48)),
    ({"preset": "wide"}, (240, 240)),
    ({"preset": "thumb", "w": 32}, (32, 48)),  # explicit options override the preset's
])
def test_native_width_height_fit_dpr_and_presets(signed, query, size):
    r = signed.get(img_path(PHOTOS[1]), params=query)
    assert r.status_code == 200, r.text
    assert size_of(r.content) == size


def test_fill_crops_by_gravity_from_the_decoded_picture(signed):
    full = pixels(signed.get(img_path(PHOTOS[2])).content)
    for gravity in ("no", "so", "ce", "soea"):
        r = signed.get(img_path(PHOTOS[2]), params={"w": 80, "h": 40, "fit": "fill", "gravity": gravity})
        want = pixels(render_image(full, Rendition.parse("png", width=80, height=40, fit="fill", gravity=gravity)))
        # equivalent pictures: decodes are bit-exact only per decoder setup (see the weak ETag test)
        assert np.abs(pixels(r.content).astype(int) - want).max() <= 3


@pytest.mark.parametrize(("accept", "fmt"), [
    ("image/avif,image/webp,image/apng,*/*;q=0.8", "avif"),  # Chromium
    ("image/webp,*/*", "webp"),
    ("image/avif;q=0,image/webp", "webp"),
    ("image/jpeg", "jpeg"),
    ("text/html", "png"),  # no image type: the default format
    ("*/*", "png"),
])
def test_format_auto_negotiates_from_accept_and_varies(signed, accept, fmt):
    r = signed.get(img_path(PHOTOS[3]), params={"format": "auto", "w": 64, "q": 60}, headers={"Accept": accept})
    assert r.status_code == 200 and r.headers["content-type"] == f"image/{fmt}"
    assert Image.open(io.BytesIO(r.content)).format == fmt.upper()
    assert "Accept" in [v.strip() for v in r.headers["vary"].split(",")]
    plain = signed.get(img_path(PHOTOS[3]), params={"format": "webp", "w": 64})
    assert "Accept" not in [v.strip() for v in plain.headers["vary"].split(",")]


# ---------------------------------------------------------------------------------------------- caching
def test_etags_are_weak_and_pictures_behind_one_are_equivalent_across_batch_sizes(signed, store_url, taef2):
    """The design choice: no strong ETag on any picture, since a decode is bit-exact only per decoder setup."""
    from latentzarr.store import LatentStore

    latent = LatentStore.open(store_url).get([PHOTOS[4]])
    routes = [img_path(PHOTOS[4]), img_path(PHOTOS[4]) + "?w=100&format=webp",
              f"/{imgproxy_signature(KEYS[0], SALTS[0], '/w:100/plain/photo%2F4@png')}/w:100/plain/photo%2F4@png"]
    for route in routes:
        for method in ("GET", "HEAD"):
            r = signed.request(method, route)
            assert r.status_code == 200 and r.headers["etag"].startswith('W/"'), (route, r.headers)
            assert "immutable" not in r.headers["cache-control"]
    served = pixels(signed.get(routes[0]).content)
    batch = np.concatenate([latent, LatentStore.open(store_url).get(PHOTOS[:3])])
    for pictures in (taef2.decode(latent, batch_size=1), taef2.decode(batch, batch_size=4)[:1]):
        assert np.abs(served.astype(int) - pictures[0]).max() <= 3


def test_last_modified_if_modified_since_and_if_none_match(signed, store_url):
    from latentzarr.store import LatentStore

    created = LatentStore.open(store_url).record(SMALL[5])["created"]
    path = img_path(SMALL[5])
    r = signed.get(path, params={"format": "webp"})
    last = parsedate_to_datetime(r.headers["last-modified"])
    assert abs((last - created.astimezone(dt.UTC)).total_seconds()) < 1
    assert "immutable" not in r.headers["cache-control"] and "max-age" in r.headers["cache-control"]
    later = format_datetime(last + dt.timedelta(hours=1), usegmt=True)
    earlier = format_datetime(last - dt.timedelta(hours=1), usegmt=True)
    for ims, status in ((r.headers["last-modified"], 304), (later, 304), (earlier, 200), ("not a date", 200)):
        got = signed.get(path, params={"format": "webp"}, headers={"If-Modified-Since": ims})
        assert got.status_code == status, ims
    # If-None-Match decides when present (RFC 9110 13.2.2), even against a current If-Modified-Since
    assert signed.get(path, params={"format": "webp"},
                      headers={"If-None-Match": '"other"', "If-Modified-Since": later}).status_code == 200
    r304 = signed.get(path, params={"format": "webp"}, headers={"If-None-Match": r.headers["etag"]})
    assert r304.status_code == 304 and r304.headers["last-modified"] == r.headers["last-modified"]


def test_head_on_every_image_route(signed):
    sig = imgproxy_signature(KEYS[0], SALTS[0], "/rs:fill:40:40/plain/img-006@webp")
    for route in (img_path(SMALL[6]), img_path(SMALL[6]) + "?w=40&h=40&fit=fill&format=webp",
                  f"/{sig}/rs:fill:40:40/plain/img-006@webp", img_path(SMALL[6], "/latent"),
                  img_path(SMALL[6], "/meta")):
        got, head = signed.get(route), signed.head(route)
        assert head.status_code == got.status_code == 200 and head.content == b""
        for header in ("content-type", "etag", "last-modified", "content-length"):
            assert head.headers.get(header) == got.headers.get(header), (route, header)


# ---------------------------------------------------------------------------------------------- imgproxy-style URLs
@pytest.mark.parametrize(("options", "ext", "size", "fmt"), [
    ("rs:fill:100:50", "png", (100, 50), "PNG"),
    ("resize:fit:100:50", "jpg", (50, 50), "JPEG"),
    ("w:100/h:50/rt:fill/g:so/q:60", "webp", (100, 50), "WEBP"),
    ("s:100:50/dpr:2", "avif", (100, 100), "AVIF"),
    ("rs:force:100:50/el:1", "png", (100, 50), "PNG"),
    ("pr:thumb", "webp", (64, 48), "WEBP"),
    ("pr:thumb/w:32", "png", (32, 48), "PNG"),  # later options override the preset; the extension sets the format
    ("q:50", "png", (256, 256), "PNG"),  # imgproxy ignores a quality for png
    ("", "png", (256, 256), "PNG"),
])
def test_imgproxy_urls_signed_with_either_pair(signed, options, ext, size, fmt):
    path = f"/{options}/plain/{quote(PHOTOS[5], safe='')}@{ext}".replace("//", "/")
    for key, salt in zip(KEYS, SALTS, strict=True):
        r = signed.get(f"/{imgproxy_signature(key, salt, path)}{path}")
        assert r.status_code == 200, r.text
        image = Image.open(io.BytesIO(r.content))
        assert image.size == size and image.format == fmt


def test_imgproxy_url_gives_the_native_routes_picture(signed):
    path = "/rs:fill:60:30/g:no/plain/img-007@png"
    via_imgproxy = signed.get(f"/{imgproxy_signature(KEYS[1], SALTS[1], path)}{path}")
    native = signed.get(img_path(SMALL[7]), params={"w": 60, "h": 30, "fit": "fill", "gravity": "no"})
    assert via_imgproxy.headers["etag"] == native.headers["etag"]  # one rendition, one cache entry
    assert np.abs(pixels(via_imgproxy.content).astype(int) - pixels(native.content)).max() <= 3


@pytest.mark.parametrize("signature", ["insecure", "unsafe", "_", "AAAA",
                                       imgproxy_signature(KEYS[0], SALTS[0], "/rs:fill:100:51/plain/img-008@png")])
def test_unsigned_or_wrongly_signed_urls_are_403_when_signing_is_on(signed, signature):
    problem(signed.get(f"/{signature}/rs:fill:100:50/plain/img-008@png"), 403, "signature")


@pytest.mark.parametrize(("options", "ext", "parameter"), [
    ("rs:squash:10:10", "png", "rs"),
    ("w:abc", "png", "w"),
    ("w:", "png", "w"),
    ("dpr:9", "png", "dpr"),
    ("dpr:0.5", "png", "dpr"),
    ("g:sm", "png", "g"),
    ("g:ce:10:0", "png", "g"),
    ("rs:fit:10:10:0:1", "png", "rs"),
    ("bl:5", "png", "bl"),
    ("pr:nope", "png", "pr"),
    ("w:4000/dpr:2", "png", "dpr"),
    ("w:10", "gif", "extension"),
])
def test_malformed_imgproxy_options_are_4xx_naming_them(signed, options, ext, parameter):
    path = f"/{options}/plain/img-009@{ext}"
    problem(signed.get(f"/{imgproxy_signature(KEYS[0], SALTS[0], path)}{path}"), 422, parameter)


def test_imgproxy_paths_that_are_no_image_are_404(signed):
    for path in ("/abc/def", "/x/rs:fit:10:10/img-009.png"):
        r = signed.get(path)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    path = "/plain/no%20such@png"
    assert signed.get(f"/{imgproxy_signature(KEYS[0], SALTS[0], path)}{path}").status_code == 404


# ---------------------------------------------------------------------------------------------- bad native input
@pytest.mark.parametrize(("params", "parameter"), [
    ({"w": "-1"}, "w"), ({"h": "5000"}, "h"), ({"w": "1.5"}, "w"), ({"fit": "squash"}, "fit"),
    ({"gravity": "sm"}, "gravity"), ({"dpr": "0"}, "dpr"), ({"dpr": "5"}, "dpr"), ({"dpr": "x"}, "dpr"),
    ({"q": "101"}, "q"), ({"q": "50", "quality": "60", "format": "webp"}, "q"), ({"format": "gif"}, "format"),
    ({"enlarge": "maybe"}, "enlarge"), ({"preset": "nope"}, "preset"), ({"size": "64", "w": "32"}, "size"),
    ({"w": "3000", "dpr": "2"}, "dpr"),
])
def test_malformed_native_options_are_422_naming_them(signed, params, parameter):
    problem(signed.get(img_path(SMALL[1]), params=params), 422, parameter)


# ---------------------------------------------------------------------------------------------- presets-only
def test_presets_only_serves_presets_and_refuses_anything_else(locked):
    r = locked.get(img_path(PHOTOS[0]), params={"preset": "thumb"})
    assert r.status_code == 200 and size_of(r.content) == (64, 48)
    assert locked.get(img_path(PHOTOS[0]), params={"preset": "thumb", "format": "png"}).status_code == 200
    problem(locked.get(img_path(PHOTOS[0])), 403, "preset")
    problem(locked.get(img_path(PHOTOS[0]), params={"preset": "thumb", "w": 10}), 403, "w")
    problem(locked.get(img_path(PHOTOS[0]), params={"size": 64}), 403, "preset")
    problem(locked.get(img_path(PHOTOS[0]), params={"preset": "nope"}), 422, "preset")
    # imgproxy style: signing is off here, so any signature segment is accepted (imgproxy's convention)
    for path in ("/insecure/pr:thumb/plain/photo%2F0@webp", "/insecure/thumb/plain/photo%2F0@webp"):
        r = locked.get(path)
        assert r.status_code == 200 and size_of(r.content) == (64, 48)
    problem(locked.get("/insecure/rs:fill:10:10/plain/photo%2F0@png"), 403, "rs")
    problem(locked.get("/insecure/pr:thumb/w:10/plain/photo%2F0@png"), 403, "w")


# ---------------------------------------------------------------------------------------------- one decode per picture
def test_a_second_rendition_of_a_cached_picture_is_a_resize_not_a_decode(signed):
    """promote_after=1: the second read of a rendition promotes the id, and its full-size PNG is kept beside."""
    image_id = SMALL[10]
    for _ in range(3):
        assert signed.get(img_path(image_id), params={"format": "webp", "w": 48}).status_code == 200
    before = metrics(signed)
    for query in ({"format": "jpeg", "w": 32}, {"format": "avif", "w": 40, "h": 20, "fit": "fill"},
                  {"w": 16, "h": 16, "fit": "force"}):
        r = signed.get(img_path(image_id), params=query)
        assert r.status_code == 200
    after = metrics(signed)
    assert total(after, "latentzarr_worker_decodes") == total(before, "latentzarr_worker_decodes")
    assert total(after, "latentzarr_worker_resized") - total(before, "latentzarr_worker_resized") == 3


# ---------------------------------------------------------------------------------------------- configuration
def test_presets_files_json_and_toml_and_their_errors(tmp_path):
    from latentzarr.http.presets import load_presets

    (tmp_path / "p.json").write_text(json.dumps(PRESETS))
    (tmp_path / "p.toml").write_text('[thumb]\nw = 64\nh = 48\nfit = "fill"\nformat = "webp"\nq = 70\n')
    assert load_presets(tmp_path / "p.json")["thumb"] == load_presets(tmp_path / "p.toml")["thumb"] == {
        "width": 64, "height": 48, "fit": "fill", "format": "webp", "quality": 70}
    for text, match in (('{"a b": {}}', "preset names"), ('{"t": {"blur": 3}}', "options of preset 't'"),
                        ('{"t": {"w": -3}}', "Preset 't': Expected w"), ("[", "parse error"),
                        ('{"t": {"q": 50}}', "Preset 't': Expected no quality")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(ValueError, match=match):
            load_presets(tmp_path / "bad.json")


def test_cli_serve_refuses_bad_signing_and_presets_before_starting(store_url, tmp_path):
    from click.testing import CliRunner

    from latentzarr.cli import cli

    (tmp_path / "bad.json").write_text('{"t": {"fit": "squash"}}')
    for args, match in ((["--presets-only"], "--presets"), (["--signing-key", "abcd"], "as many signing salts"),
                        (["--signing-key", "zz", "--signing-salt", "abcd"], "signing key as a non-empty hex"),
                        (["--presets", str(tmp_path / "bad.json")], "fit to be one of")):
        result = CliRunner().invoke(cli, ["serve", store_url, "--port", "0", *args])
        assert result.exit_code == 2 and match in result.output, result.output
