"""Request limits and the bearer token of the preview endpoint: real uvicorn servers on 127.0.0.1 over one real
local Dask cluster (one worker process), the store of ``test_http.py``.

Two servers share the cluster: ``guarded`` (a bearer token, a modest rate limit) and ``tight`` (no token, tiny
limits). Tests give themselves their own client address with ``X-Forwarded-For``, which uvicorn trusts from
127.0.0.1 (as it would from a local reverse proxy), so each starts with a full token bucket.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_http import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PHOTOS,
    SMALL,
    ServerThread,
    free_port,
    img_path,
    make_store,
    metrics,
    pixels,
    serve_until_ctrl_c,
    total,
)

from latentzarr.http import AppConfig, create_app
from latentzarr.http.auth import TOKEN_ENV, BearerAuth, load_token, validate_token
from latentzarr.http.limits import RateLimiter, client_key
from latentzarr.http.openapi import openapi_document

TOKEN = "tq0-Vn8_GZkq2e4yW1sXbLr7uPcD5hJm9aKfE3oT6iQ"
GUARDED = {"token": TOKEN, "rate_limit": 5.0, "burst": 40}
TIGHT = {"rate_limit": 2.0, "burst": 3, "max_body": 1024, "max_url": 512}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class ProxiedServer(ServerThread):
    """A :class:`ServerThread` that takes the client address from ``X-Forwarded-For`` sent from 127.0.0.1."""

    def __init__(self, app) -> None:
        super().__init__(app)
        self.config.forwarded_allow_ips = "127.0.0.1"  # uvicorn's default, but not from $FORWARDED_ALLOW_IPS


@pytest.fixture(scope="module")
def store_url(tmp_path_factory, taef2_latents) -> str:
    return make_store(tmp_path_factory.mktemp("limits") / "store.zarr", taef2_latents)


@pytest.fixture(scope="module")
def scheduler():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def guarded(store_url, scheduler):
    with ProxiedServer(create_app(store_url, address=scheduler, **GUARDED)) as server:
        yield server.url


@pytest.fixture(scope="module")
def tight(store_url, scheduler):
    with ProxiedServer(create_app(store_url, address=scheduler, **TIGHT)) as server:
        yield server.url


_addresses = itertools.count(1)


def own_address() -> dict[str, str]:
    """A client address of its own (a full token bucket), as a reverse proxy on 127.0.0.1 would send it."""
    n = next(_addresses)
    return {"X-Forwarded-For": f"203.0.{n // 250}.{n % 250 + 1}"}


@pytest.fixture
def g(guarded):
    """A client of the guarded server with an address of its own (127.0.0.1 is the browser's, in the gallery test)."""
    with httpx.Client(base_url=guarded, timeout=120, headers=own_address()) as client:
        yield client


@pytest.fixture
def t(tight):
    with httpx.Client(base_url=tight, timeout=120, headers=own_address()) as client:
        yield client


def until_429(get, most: int) -> list[httpx.Response]:
    """Responses of ``get()`` up to and including the first 429 (at most ``most`` calls)."""
    out = [get()]
    while out[-1].status_code != 429 and len(out) < most:
        out.append(get())
    return out


def is_error(r: httpx.Response, status: int, error: str) -> bool:
    return (r.status_code == status and r.headers["content-type"] == "application/json"
            and r.json()["error"] == error and bool(r.json()["detail"]) and "Traceback" not in r.text)


# ---------------------------------------------------------------------------------------------- bearer token
@pytest.mark.parametrize("path", ["/v1/images", img_path(SMALL[0]), img_path(SMALL[0], "/meta"),
                                  img_path(SMALL[0], "/latent"), "/metrics", "/v1/images/no-such-id"])
def test_every_data_route_needs_the_token(g, path):
    r = g.get(path)
    assert r.json()["detail"].startswith("Expected an 'Authorization: Bearer <token>' header")
    assert is_error(r, 401, "unauthorized") and r.headers["www-authenticate"] == 'Bearer realm="latentzarr"'
    for wrong in (f"Bearer {TOKEN[:-1]}x", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer " + "A" * 300):
        r = g.get(path, headers={"Authorization": wrong})
        assert is_error(r, 401, "unauthorized") and 'error="invalid_token"' in r.headers["www-authenticate"]
    for not_bearer in (f"Basic {TOKEN}", TOKEN, "Bearer", f"Token {TOKEN}"):
        assert g.get(path, headers={"Authorization": not_bearer}).status_code == 401
    ok = g.get(path, headers=AUTH)
    assert ok.status_code == (404 if "no-such" in path else 200)
    assert g.get(path, headers={"Authorization": f"bearer {TOKEN}"}).status_code == ok.status_code


def test_public_paths_need_no_token(g):
    health = g.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    page = g.get("/")
    assert page.status_code == 200 and 'id="login"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert g.get("/static/gallery.js").status_code == 200 and g.get("/static/gallery.css").status_code == 200
    doc = g.get("/openapi.json").json()
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert doc["security"] == [{"bearerAuth": []}] and doc["paths"]["/healthz"]["get"]["security"] == []
    assert "401" in doc["paths"]["/v1/images/{id}"]["get"]["responses"]
    assert "401" not in doc["paths"]["/healthz"]["get"]["responses"]


def test_without_a_token_the_document_has_no_security(t):
    doc = t.get("/openapi.json").json()
    assert "security" not in doc and "securitySchemes" not in doc["components"]
    assert {"413", "414", "429"} <= set(doc["paths"]["/v1/images/{id}"]["get"]["responses"])
    assert t.get("/v1/images").status_code == 200  # no token needed


def test_unauthorized_requests_are_rate_limited_even_on_exempt_paths(g):
    burst = GUARDED["burst"]
    for _ in range(burst + 10):  # authorized: /metrics is exempt
        assert g.get("/metrics", headers=AUTH).status_code == 200
    guesses = until_429(lambda: g.get("/metrics", headers={"Authorization": "Bearer guess-guess-guess"}),
                       burst + 200)
    assert [r.status_code for r in guesses[:burst]] == [401] * burst and guesses[-1].status_code == 429
    assert is_error(guesses[-1], 429, "rate_limited")
    assert g.get("/healthz").status_code == 200  # public: never limited
    assert g.get("/metrics", headers=AUTH).status_code == 200  # exempt once authorized


def test_unauthorized_requests_are_counted(g):
    before = metrics_with(g, AUTH)
    for _ in range(3):
        assert g.get("/v1/images").status_code == 401
    after = metrics_with(g, AUTH)
    assert rejected(after, "unauthorized") - rejected(before, "unauthorized") == 3
    assert (total(after, "latentzarr_http_requests_total", status="401")
            - total(before, "latentzarr_http_requests_total", status="401")) == 3


def metrics_with(client: httpx.Client, headers: dict[str, str]) -> dict:
    client.headers.update(headers)
    try:
        return metrics(client)
    finally:
        for k in headers:
            del client.headers[k]


def rejected(samples: dict, reason: str) -> float:
    return total(samples, "latentzarr_http_rejected_total", reason=reason)


# ---------------------------------------------------------------------------------------------- rate limit
def test_429_after_the_burst_with_retry_after_then_allowed_again(t):
    burst = TIGHT["burst"]
    responses = until_429(lambda: t.get("/v1/images", params={"limit": 1}), burst + 100)
    assert [r.status_code for r in responses[:burst]] == [200] * burst
    r = responses[-1]
    assert is_error(r, 429, "rate_limited")
    retry = int(r.headers["retry-after"])
    assert retry >= 1 and r.json()["retry_after"] == retry
    assert t.get("/v1/images", headers=own_address()).status_code == 200  # one bucket per client
    assert t.get("/healthz").status_code == 200  # exempt
    deadline = time.monotonic() + 60
    while (r := t.get("/v1/images")).status_code == 429:
        assert time.monotonic() < deadline, "never allowed again"
        time.sleep(int(r.headers["retry-after"]))
    assert r.status_code == 200


def test_ipv6_clients_share_a_bucket_per_64():
    assert client_key("2001:db8:0:1::1") == client_key("2001:db8:0:1:ffff::2") == "2001:db8:0:1::/64"
    assert client_key("2001:db8:0:2::1") != client_key("2001:db8:0:1::1")
    assert client_key("::ffff:192.0.2.1") == client_key("192.0.2.1") == "192.0.2.1"
    assert client_key(None) == "unknown" and client_key("/run/sock") == "/run/sock"


def test_token_bucket_refills_at_the_rate_up_to_the_burst():
    now = [0.0]
    limiter = RateLimiter(4.0, 2, max_clients=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.25]
    now[0] = 0.25
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") == 0.25
    now[0] = 100.0  # refilled, but never beyond the burst
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.25]
    for key in "bcde":
        limiter.acquire(key)
    assert len(limiter) == 3  # least recently used buckets dropped
    for bad in ({"rate": 0, "burst": 1}, {"rate": float("inf"), "burst": 1}, {"rate": 1, "burst": 0}):
        with pytest.raises(ValueError, match="Expected"):
            RateLimiter(**bad)


# ---------------------------------------------------------------------------------------------- sizes
def test_413_for_a_large_body(t):
    r = t.request("GET", "/v1/images", content=b"x" * (TIGHT["max_body"] + 1))
    assert is_error(r, 413, "payload_too_large") and r.json()["limit"] == TIGHT["max_body"]
    assert r.headers["connection"] == "close"

    def chunks(n: int):
        for _ in range(n):
            yield b"y" * 300

    r = t.request("GET", "/v1/images", content=chunks(5))  # chunked, no Content-Length
    assert is_error(r, 413, "payload_too_large")
    assert t.request("GET", "/v1/images", content=b"x" * 100).status_code == 200  # within the burst of 3
    assert t.request("GET", "/v1/images", content=chunks(2)).status_code == 200


def test_414_for_a_huge_query(t):
    r = t.get("/v1/images", params={"q": "x" * TIGHT["max_url"]})
    assert is_error(r, 414, "uri_too_long") and r.json()["limit"] == TIGHT["max_url"]
    assert t.get(img_path("x" * 600)).status_code == 414
    assert t.get("/v1/images", params={"q": "x" * 400}).status_code == 200


def test_rejections_are_counted_in_metrics(t):
    before = metrics(t)
    assert t.get("/v1/images", params={"q": "x" * 600}).status_code == 414
    assert t.request("GET", "/v1/images", content=b"x" * 2000).status_code == 413
    statuses = [r.status_code for r in until_429(lambda: t.get("/v1/images"), TIGHT["burst"] + 100)]
    statuses += [t.get("/v1/images").status_code for _ in range(3)]
    after = metrics(t)
    assert rejected(after, "url_too_long") - rejected(before, "url_too_long") == 1
    assert rejected(after, "body_too_large") - rejected(before, "body_too_large") == 1
    assert rejected(after, "rate_limited") - rejected(before, "rate_limited") == statuses.count(429) >= 1
    assert rejected(after, "unauthorized") == 0
    assert (total(after, "latentzarr_http_requests_total", status="429")
            - total(before, "latentzarr_http_requests_total", status="429")) == statuses.count(429)


# ---------------------------------------------------------------------------------------------- configuration
def test_load_token_from_file_or_environment(tmp_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert load_token(f, environ={}) == TOKEN
    assert load_token(f, environ={TOKEN_ENV: "y" * 20}) == TOKEN  # the file wins
    assert load_token(None, environ={TOKEN_ENV: "y" * 20}) == "y" * 20
    assert load_token(None, environ={TOKEN_ENV: ""}) is None and load_token(None, environ={}) is None
    for bad in ("short", "has space in the middle", "quote\"quote\"quote\"q", "ünïcødé-ünïcødé-ünïcødé"):
        with pytest.raises(ValueError, match="Expected a bearer token") as info:
            validate_token(bad)
        assert bad not in str(info.value)  # a secret is never echoed
    f.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_token(f)
    with pytest.raises(FileNotFoundError):
        load_token(tmp_path / "missing")


def test_app_config_refuses_bad_limits_and_hides_the_token(store_url):
    for bad in ({"rate_limit": 0}, {"burst": 0}, {"max_body": -1}, {"max_url": 1.5}, {"token": "short"}):
        with pytest.raises(ValueError, match="Expected"):
            AppConfig(store_url, **bad)
    assert TOKEN not in repr(AppConfig(store_url, token=TOKEN))
    auth = BearerAuth(TOKEN)
    assert auth.check([(b"authorization", f"Bearer {TOKEN}".encode())]) is True
    assert auth.check([(b"authorization", b"Bearer nope")]) is False
    assert auth.check([(b"accept", b"*/*")]) is None
    assert "securitySchemes" in openapi_document(bearer=True)["components"]


def test_cli_token_file_and_limits(store_url, scheduler, tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")

    def check(client: httpx.Client) -> None:
        assert client.get("/healthz").status_code == 200
        assert client.get(img_path(SMALL[0]), params={"size": 32}).status_code == 401
        assert client.get(img_path(SMALL[0]), params={"size": 32}, headers=AUTH).status_code == 200
        assert client.get("/v1/images", params={"q": "x" * 300}, headers=AUTH).status_code == 414
        responses = until_429(lambda: client.get("/v1/images", headers=AUTH), 100)
        assert responses[-1].status_code == 429 and int(responses[-1].headers["retry-after"]) >= 1

    monkeypatch.delenv(TOKEN_ENV, raising=False)
    port = free_port()
    out = serve_until_ctrl_c(["serve", store_url, "--port", str(port), "--address", scheduler,
                              "--token-file", str(token_file), "--rate-limit", "0.5", "--burst", "3",
                              "--max-url", "256"], port, check)
    assert "bearer token required" in out and TOKEN not in out
    token_file.write_text("too-short")
    proc = subprocess.run([sys.executable, "-m", "latentzarr", "serve", store_url, "--token-file", str(token_file)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "at least 16 characters" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------- gallery
def test_gallery_asks_for_the_token_and_renders_thumbnails_in_chromium(guarded, tmp_path):
    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium package (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="needs the playwright package (pip install playwright)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            urls: list[str] = []
            page.on("request", lambda req: urls.append(req.url))
            console: list[str] = []
            page.on("console", lambda msg: console.append(msg.text) if msg.type == "error" else None)
            page.goto(guarded + "/", wait_until="load")
            page.locator("#login").wait_for(state="visible", timeout=60_000)
            page.fill("#token", "wrong-token-wrong-token")
            page.press("#token", "Enter")
            page.wait_for_function("() => document.getElementById('login-error').textContent.includes('refused')",
                                   timeout=60_000)
            page.fill("#token", TOKEN)
            page.press("#token", "Enter")
            page.wait_for_function(
                "() => { const t = [...document.querySelectorAll('img.thumb')];"
                " return t.length >= 24 && t.every(i => i.complete && i.naturalWidth > 0); }", timeout=120_000)
            assert page.locator("#login").is_hidden()
            shot = pixels(page.screenshot(path=str(tmp_path / "gallery.png")))
            for k in range(len(PHOTOS)):  # each photo thumbnail is a real picture: varied pixels
                box = page.locator("img.thumb").nth(k).bounding_box()
                x, y, w, h = (round(v) for v in (box["x"], box["y"], box["width"], box["height"]))
                crop = shot[y + 2:y + h - 2, x + 2:x + w - 2].astype(float)
                assert crop.size and crop.std() > 20, f"flat thumbnail at {box}"
            page.locator("figure").first.click()
            page.wait_for_function("() => { const i = document.getElementById('full');"
                                   " return i.complete && i.naturalWidth === 256; }", timeout=60_000)
            page.wait_for_function("() => document.getElementById('meta').textContent.includes('taef2')")
            full = pixels(page.locator("#full").screenshot())
            assert full.astype(float).std() > 20
            page.reload(wait_until="load")  # the token is kept for the tab's session
            page.wait_for_function("() => document.querySelectorAll('img.thumb').length >= 24", timeout=60_000)
            assert page.locator("#login").is_hidden()
            assert not [u for u in urls if TOKEN in u or "wrong-token" in u]  # never in a URL
            assert not [m for m in console if "Content Security Policy" in m]  # the page's CSP blocks nothing
            assert any("401" in m for m in console)  # (the console did report errors: the refused requests)
        finally:
            browser.close()



# ---------------------------------------------------------------------------------------------- schemathesis
def test_schemathesis_with_the_token_finds_no_violation_and_no_ignored_auth(store_url, scheduler, tmp_path):
    """``ignored_auth``: every operation the document secures answers 401 without the token, or a wrong one.

    No rate limit here: a request without a token that is over the limit is answered 429 before 401 (by design:
    token guessing is throttled), which this check would report.
    """
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.skip("needs schemathesis (pip install schemathesis)")
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
              "response_schema_conformance,ignored_auth")
    with ServerThread(create_app(store_url, address=scheduler, token=TOKEN, rate_limit=None)) as server:
        proc = subprocess.run(
            [str(exe), "run", f"{server.url}/openapi.json", "--checks", checks, "--max-examples", "15", "--seed",
             "2", "--no-color", "--workers", "1", "--request-timeout", "60", "--report-dir", str(tmp_path),
             "-H", f"Authorization: Bearer {TOKEN}"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
