"""``GET /sdk/persona.js``: open to all, cacheable, small; and the CORS answers a page's two
requests need (the browser runs them in test_snippet.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.api.routes.sdk import SNIPPET
from persona.clock import FakeClock
from tests.conftest import open_engine

SHOP = "https://shop.example"
MAX_SNIPPET_BYTES = 8 * 1024  # unminified, comments included: a page's budget, not a library's


@pytest.fixture
def secured(tmp_path: Path, clock: FakeClock) -> Iterator[TestClient]:
    engine = open_engine(
        tmp_path,
        f"sqlite:///{tmp_path / 'p.db'}",
        clock,
        dev_mode=False,
        server={"cors_origins": [SHOP]},
    )
    with TestClient(create_app(engine)) as client:
        yield client
    engine.close()


def test_the_snippet_is_served_without_a_key_with_cache_headers(secured: TestClient) -> None:
    answer = secured.get("/sdk/persona.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/javascript; charset=utf-8"
    assert answer.content == files("persona").joinpath(SNIPPET).read_bytes()
    assert answer.headers["cache-control"] == "public, max-age=300"
    assert answer.headers["x-content-type-options"] == "nosniff"
    etag = answer.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    again = secured.get("/sdk/persona.js", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    for other in ('"stale"', f'W/{etag}, "x"'):
        expected = 304 if etag in other else 200
        assert secured.get("/sdk/persona.js", headers={"if-none-match": other}).status_code == (
            expected
        )


def test_the_snippet_is_small_and_plain(secured: TestClient) -> None:
    body = secured.get("/sdk/persona.js").text
    assert len(body.encode()) < MAX_SNIPPET_BYTES
    assert "import " not in body and "require(" not in body  # no dependencies, no module loader
    exported = body[body.index("window.persona = {") :]
    for name in ("init", "identify", "track", "decide", "observe", "flush", "reset", "anonymousId"):
        assert re.search(rf"\b{name}\b", exported), name


def test_the_snippet_is_not_an_api_operation(secured: TestClient) -> None:
    assert "/sdk/persona.js" not in secured.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("path", ["/v1/events", "/v1/decisions"])
def test_a_preflight_for_a_pages_requests_is_granted_to_an_allowed_origin_only(
    secured: TestClient, path: str
) -> None:
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    granted = secured.options(path, headers={"origin": SHOP, **preflight})
    assert granted.status_code == 200
    assert granted.headers["access-control-allow-origin"] == SHOP
    assert "authorization" in granted.headers["access-control-allow-headers"].lower()
    refused = secured.options(path, headers={"origin": "https://elsewhere.example", **preflight})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
