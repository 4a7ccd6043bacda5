"""The HTTP preview endpoint: a real uvicorn server on 127.0.0.1 over a real local Dask cluster.

One module-scoped server serves a store of 8 real photo latents (taef2, 256x256 pictures, ids holding '/')
and 40 small random latents (64x64 pictures, cheap decodes).
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from latentzarr.http import create_app
from latentzarr.http.server import bind_socket

N_SMALL = 40
PHOTOS = [f"photo/{i}" for i in range(8)]
SMALL = [f"img-{i:03d}" for i in range(N_SMALL)]
CLUSTER = {"n_workers": 2, "threads_per_worker": 1, "cache_bytes": 32 * 2**20,
           "cluster_options": {"torch_threads": 1}}


def make_store(path: Path, photo_latents: np.ndarray) -> str:
    from latentzarr.store import LatentStore

    store = LatentStore.create(path, shard_images=16)
    store.put(PHOTOS, photo_latents.astype(np.float16), model="taef2")
    rng = np.random.default_rng(5)
    store.put(SMALL, rng.normal(0, 1, (N_SMALL, 32, 8, 8)).astype(np.float16), model="taef2")
    return str(path)


class ServerThread:
    """uvicorn serving ``app`` on a free 127.0.0.1 port in a background thread (its own event loop)."""

    def __init__(self, app) -> None:
        import uvicorn

        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="on",
                                     access_log=False)
        self.sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        self.sock.close()


@pytest.fixture(scope="module")
def store_url(tmp_path_factory, taef2_latents) -> str:
    return make_store(tmp_path_factory.mktemp("http") / "store.zarr", taef2_latents)


@pytest.fixture(scope="module")
def base(store_url):
    # no rate limit: the load test below is 2000 requests from one client (tests/test_http_limits.py covers limits)
    with ServerThread(create_app(store_url, **CLUSTER, rate_limit=None)) as server:
        yield server.url


@pytest.fixture(scope="module")
def http(base):
    with httpx.Client(base_url=base, timeout=120) as client:
        yield client


def img_path(image_id: str, suffix: str = "") -> str:
    return f"/v1/images/{quote(image_id, safe='')}{suffix}"


def metrics(http) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    r = http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items()
               if n == name and all(dict(lab).get(k) == val for k, val in labels.items()))


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ---------------------------------------------------------------------------------------------- images
def test_png_equals_a_direct_decode_of_the_stored_latent(http, store_url, taef2):
    from latentzarr.store import LatentStore

    latent = LatentStore.open(store_url).get([SMALL[0]])
    expected = taef2.decode(latent)[0]
    r = http.get(img_path(SMALL[0]))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert np.array_equal(pixels(r.content), expected)


@pytest.mark.parametrize(("query", "fmt", "side"), [
    ({"format": "webp", "size": 128, "quality": 80}, "WEBP", 128),
    ({"format": "jpeg", "size": 64}, "JPEG", 64),
    ({"format": "jpg", "quality": 30}, "JPEG", 256),
    ({"size": 4096}, "PNG", 256),  # never upscaled
])
def test_renditions(http, query, fmt, side):
    r = http.get(img_path(PHOTOS[1]), params=query)
    assert r.status_code == 200
    im = Image.open(io.BytesIO(r.content))
    assert im.format == fmt and max(im.size) == side
    assert r.headers["content-type"] == f"image/{fmt.lower()}"
    assert "max-age" in r.headers["cache-control"]


def test_etag_and_304(http, store_url):
    from latentzarr.store import LatentStore

    sha = LatentStore.open(store_url).record(SMALL[2])["latent_sha256"]
    r = http.get(img_path(SMALL[2]), params={"format": "webp"})
    etag = r.headers["etag"]
    assert r.status_code == 200 and sha[:40] in etag and etag.startswith('W/"')  # weak: see test_http_renditions
    other = http.get(img_path(SMALL[2]), params={"format": "webp", "size": 32}).headers["etag"]
    assert other != etag and sha[:40] in other
    assert http.get(img_path(SMALL[3]), params={"format": "webp"}).headers["etag"] != etag
    for header in (etag, etag.removeprefix("W/"), f'"nope", {etag}', "*"):
        r304 = http.get(img_path(SMALL[2]), params={"format": "webp"}, headers={"If-None-Match": header})
        assert r304.status_code == 304 and r304.content == b"" and r304.headers["etag"] == etag
        assert "cache-control" in r304.headers
    assert http.get(img_path(SMALL[2]), params={"format": "webp"},
                    headers={"If-None-Match": other}).status_code == 200


def test_latent_route_is_the_stored_latent_bit_exact(http, store_url):
    from latentzarr.store import LatentStore

    store = LatentStore.open(store_url)
    for image_id in (PHOTOS[0], SMALL[4]):
        r = http.get(img_path(image_id, "/latent"))
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        got = np.load(io.BytesIO(r.content), allow_pickle=False)
        want = store.get_one(image_id)
        assert got.dtype == want.dtype and np.array_equal(got.view(np.uint16), want.view(np.uint16))
        assert http.get(img_path(image_id, "/latent"),
                        headers={"If-None-Match": r.headers["etag"]}).status_code == 304


def test_meta(http, store_url):
    from latentzarr_codecs import LatentPCodec

    from latentzarr.store import LatentStore

    r = http.get(img_path(PHOTOS[2], "/meta"))
    assert r.status_code == 200
    meta = r.json()
    assert meta["id"] == PHOTOS[2] and meta["model"] == "taef2"
    assert meta["shape"] == [32, 32, 32] and meta["dtype"] == "float16"
    assert meta["stored_bytes"] == len(LatentPCodec(dtype="float16").encode(LatentStore.open(store_url)[PHOTOS[2]]))


def test_listing_pages_through_every_id(http):
    seen, offset = [], 0
    while offset is not None:
        page = http.get("/v1/images", params={"offset": offset, "limit": 7}).json()
        assert page["total"] == len(PHOTOS) + N_SMALL and len(page["items"]) <= 7
        seen += [item["id"] for item in page["items"]]
        offset = page["next_offset"]
    assert seen == PHOTOS + SMALL  # commit order
    item = http.get("/v1/images", params={"limit": 1}).json()["items"][0]
    assert item["href"] == img_path(PHOTOS[0]) and item["shape"] == [32, 32, 32]
    assert http.get("/v1/images", params={"offset": 1000}).json()["items"] == []


def test_healthz_openapi_and_gallery_html(http):
    h = http.get("/healthz")
    assert h.status_code == 200 and h.json() == {"status": "ok", "workers": 2, "images": len(PHOTOS) + N_SMALL}
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and {"/v1/images", "/v1/images/{id}", "/v1/images/{id}/latent"} <= set(
        doc["paths"])
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/gallery.js", "/static/gallery.css"):
        assert asset in page.text and http.get(asset).status_code == 200


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("path", "params", "parameter"), [
    (img_path(SMALL[0]), {"format": "gif"}, "format"),
    (img_path(SMALL[0]), {"size": "8"}, "size"),
    (img_path(SMALL[0]), {"size": "5000"}, "size"),
    (img_path(SMALL[0]), {"size": "abc"}, "size"),
    (img_path(SMALL[0]), {"size": "1e3"}, "size"),
    (img_path(SMALL[0]), {"size": ""}, "size"),
    (img_path(SMALL[0]), {"format": ""}, "format"),
    ("/v1/images", {"limit": ""}, "limit"),
    (img_path(SMALL[0]), {"format": "jpeg", "quality": "0"}, "quality"),
    (img_path(SMALL[0]), {"quality": "50"}, "quality"),  # png is lossless
    (img_path("x" * 300), {}, "id"),
    ("/v1/images/bad%01id", {}, "id"),
    ("/v1/images/%FF%FE", {}, "id"),
    (img_path("x" * 300, "/latent"), {}, "id"),
    ("/v1/images", {"limit": "0"}, "limit"),
    ("/v1/images", {"offset": "-1"}, "offset"),
])
def test_bad_parameters_are_422_naming_the_parameter(http, path, params, parameter):
    r = http.get(path, params=params)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_parameter" and body["parameter"] == parameter and body["detail"]


@pytest.mark.parametrize("suffix", ["", "/latent", "/meta"])
def test_unknown_id_is_404_json(http, suffix):
    r = http.get(img_path("no/such id", suffix))
    assert r.status_code == 404 and r.headers["content-type"] == "application/json"
    assert r.json()["id"] == "no/such id" and "Traceback" not in r.text


def test_ids_are_opaque_never_paths(http):
    r = http.get("/v1/images/photo/0")  # unencoded '/': not the id "photo/0"
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert http.get("/v1/images/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert http.get(img_path("photo/0")).status_code == 200


# ---------------------------------------------------------------------------------------------- cluster behaviour
def test_concurrent_requests_for_one_id_cause_one_decode(base, http):
    before = metrics(http)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            params = {"format": "jpeg", "size": 200, "quality": 77}
            return await asyncio.gather(*(client.get(img_path(PHOTOS[5]), params=params) for _ in range(30)))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert len({r.content for r in responses}) == 1
    after = metrics(http)
    assert total(after, "latentzarr_worker_decodes") - total(before, "latentzarr_worker_decodes") == 1
    reads = total(after, "latentzarr_http_cluster_reads_total") - total(before, "latentzarr_http_cluster_reads_total")
    coalesced = (total(after, "latentzarr_http_coalesced_reads_total")
                 - total(before, "latentzarr_http_coalesced_reads_total"))
    assert reads + coalesced == 30 and reads >= 1


def test_metrics_reflect_the_requests_made(http):
    route = "/v1/images/{id}"
    before = metrics(http)
    for _ in range(3):
        assert http.get(img_path(SMALL[7]), params={"format": "png", "size": 32}).status_code == 200
    assert http.get(img_path("missing")).status_code == 404
    assert http.get(img_path(SMALL[7]), params={"size": "x"}).status_code == 422
    after = metrics(http)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("latentzarr_http_requests_total", route=route, status="200") == 3
    assert delta("latentzarr_http_requests_total", route=route, status="404") == 1
    assert delta("latentzarr_http_requests_total", route=route, status="422") == 1
    assert delta("latentzarr_http_requests_total", route="/metrics", status="200") == 1  # the first scrape
    assert delta("latentzarr_http_request_duration_seconds_count", route=route) == 5
    assert delta("latentzarr_worker_requests") == 3  # one cache lookup per image request that reached a worker
    assert delta("latentzarr_worker_decodes") >= 1
    alphas = {dict(lab)["worker"]: v for (n, lab), v in after.items() if n == "latentzarr_worker_alpha"}
    assert len(alphas) == 2 and all(0 <= a <= 1 for a in alphas.values())
    for tier in ("image", "latent"):
        assert any(n == f"latentzarr_worker_{tier}_hit_ratio" for (n, _) in after)
    for name in ("spilled", "writebacks", "store_fetches"):
        assert any(n == f"latentzarr_worker_{name}" for (n, _) in after)


def test_bounded_load_2000_requests_50_in_flight(base, http):
    ids = SMALL[:10]
    for i in ids:  # warm: misses decode once, later ones hit
        http.get(img_path(i), params={"format": "webp", "size": 64})

    async def load() -> list[int]:
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
        sem = asyncio.Semaphore(50)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            async def one(n: int) -> int:
                async with sem:
                    r = await client.get(img_path(ids[n % len(ids)]), params={"format": "webp", "size": 64})
                    return r.status_code if r.content else -1
            return await asyncio.gather(*(one(n) for n in range(2000)))

    statuses = asyncio.run(load())
    assert statuses == [200] * 2000


# ---------------------------------------------------------------------------------------------- gallery
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_gallery_renders_thumbnails_in_chromium(base, tmp_path):
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium package (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="needs the playwright package (pip install playwright)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(base + "/", wait_until="load")
            page.wait_for_function(
                "() => { const t = [...document.querySelectorAll('img.thumb')];"
                " return t.length >= 24 && t.every(i => i.complete && i.naturalWidth > 0); }", timeout=120_000)
            shot = pixels(page.screenshot(path=str(tmp_path / "gallery.png")))
            boxes = [page.locator("img.thumb").nth(k).bounding_box() for k in range(len(PHOTOS))]
            for box in boxes:  # each photo thumbnail is a real picture: varied pixels, not the placeholder
                x, y, w, h = (round(v) for v in (box["x"], box["y"], box["width"], box["height"]))
                crop = shot[y + 2:y + h - 2, x + 2:x + w - 2].astype(float)
                assert crop.size and crop.std() > 20, f"flat thumbnail at {box}"
                assert len(np.unique(crop.reshape(-1, 3), axis=0)) > 500
            # click: the full picture and its metadata
            page.locator("figure").first.click()
            page.wait_for_function("() => { const i = document.getElementById('full');"
                                   " return i.complete && i.naturalWidth === 256; }", timeout=60_000)
            page.wait_for_function("() => document.getElementById('meta').textContent.includes('taef2')")
            text = page.locator("#meta").inner_text()
            assert "32 x 32 x 32" in text and "stored latent" in text and "PNG" in text
            full = pixels(page.locator("#full").screenshot())
            assert full.astype(float).std() > 20
            page.close()
            # srcset with DPR and lazy loading: at 1x the 200 px thumbnails, at 2x 400 px ones (photos are 256 px
            # and never enlarged, so 256); the browser picks the density, format=auto gets it AVIF or WebP
            for scale, dpr, side in ((1, "dpr=1", 200), (2, "dpr=2", 256)):
                page = browser.new_page(viewport={"width": 1200, "height": 900}, device_scale_factor=scale)
                page.goto(base + "/", wait_until="load")
                page.wait_for_function(
                    "() => { const t = [...document.querySelectorAll('img.thumb')].slice(0, 8);"
                    " return t.length === 8 && t.every(i => i.complete && i.naturalWidth > 0); }", timeout=120_000)
                thumbs = page.eval_on_selector_all(
                    "img.thumb", "ts => ts.slice(0, 8).map(i => [i.currentSrc, i.naturalWidth, i.loading, i.srcset])")
                for src, width, loading, srcset in thumbs:  # naturalWidth is in css px: pixels / density
                    assert dpr in src and "format=auto" in src and width == side / scale, (scale, src, width)
                    assert loading == "lazy" and " 1x," in srcset and srcset.endswith(" 2x")
                page.close()
        finally:
            browser.close()


# ---------------------------------------------------------------------------------------------- schemathesis
def test_schemathesis_finds_no_5xx_and_no_schema_violation(base, tmp_path):
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.skip("needs schemathesis (pip install schemathesis)")
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,"
              "response_headers_conformance,response_schema_conformance,negative_data_rejection")
    proc = subprocess.run(
        [str(exe), "run", f"{base}/openapi.json", "--checks", checks, "--max-examples", "40", "--seed", "1",
         "--no-color", "--workers", "2", "--request-timeout", "60", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


# ---------------------------------------------------------------------------------------------- unavailability
def test_store_or_cluster_unavailable_is_503_with_retry_after(tmp_path, store_url):
    from distributed import LocalCluster

    path = tmp_path / "store.zarr"
    shutil.copytree(store_url, path)
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0")
    try:
        with ServerThread(create_app(str(path), address=cluster.scheduler_address, read_timeout_s=30)) as server, \
                httpx.Client(base_url=server.url, timeout=120) as client:
            assert client.get(img_path(SMALL[0]), params={"size": 32}).status_code == 200
            etag = client.get(img_path(SMALL[1]), params={"size": 32}).headers["etag"]
            path.rename(tmp_path / "moved.zarr")  # the store goes away
            r = client.get(img_path(SMALL[8]), params={"size": 32})
            assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
            assert r.json()["error"] == "unavailable" and "Traceback" not in r.text
            (tmp_path / "moved.zarr").rename(path)
            assert client.get(img_path(SMALL[8]), params={"size": 32}).status_code == 200
            cluster.close()  # the cluster goes away
            for url in (img_path(SMALL[9]), img_path(SMALL[1], "/latent"), "/healthz"):
                r = client.get(url, params={"size": 32} if "latent" not in url and "health" not in url else None)
                assert r.status_code == 503, (url, r.status_code, r.text)
                assert int(r.headers["retry-after"]) > 0 and r.json()["error"] == "unavailable"
            # what needs no cluster still works: the listing, and revalidation of a copy the client holds
            assert client.get("/v1/images", params={"limit": 2}).status_code == 200
            assert client.get(img_path(SMALL[1]), params={"size": 32},
                              headers={"If-None-Match": etag}).status_code == 304
            assert client.get("/metrics").status_code == 200
    finally:
        cluster.close()


# ---------------------------------------------------------------------------------------------- CLI
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_until_ctrl_c(args: list[str], port: int, check) -> str:
    """Run ``python -m latentzarr *args``, wait for its URL line, ``check(client)``, Ctrl-C; return its output."""
    proc = subprocess.Popen([sys.executable, "-m", "latentzarr", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    try:
        deadline = time.monotonic() + 240
        while not lines or f"http://127.0.0.1:{port}/" not in lines[-1]:
            lines.append(proc.stdout.readline())
            assert lines[-1] or proc.poll() is None, "exited before printing its URL:\n" + "".join(lines)
            assert time.monotonic() < deadline
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            check(client)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        return "".join(lines) + out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serve_prints_url_serves_and_stops_on_ctrl_c(store_url):
    def check(client: httpx.Client) -> None:
        assert client.get("/healthz").json()["workers"] == 1
        r = client.get(img_path(SMALL[0]), params={"format": "webp", "size": 32})
        assert r.status_code == 200 and r.headers["content-type"] == "image/webp"

    port = free_port()
    serve_until_ctrl_c(["serve", store_url, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                        "--threads", "1", "--cache-mib", "16"], port, check)


def test_demo_ends_by_serving_its_store(tmp_path, models_dir):
    def check(client: httpx.Client) -> None:
        items = client.get("/v1/images").json()["items"]
        assert [i["id"] for i in items] == ["astronaut"] and items[0]["source_bytes"] > 0
        assert Image.open(io.BytesIO(client.get(img_path("astronaut")).content)).size == (64, 64)

    port = free_port()
    out = serve_until_ctrl_c(["demo", "--out", str(tmp_path / "demo"), "--size", "64", "--images", "1",
                              "--port", str(port)], port, check)
    assert "4/4 decoding" in out and "stopped" in out
