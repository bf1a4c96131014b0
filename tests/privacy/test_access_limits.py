"""Access: per-key rate limits, bounds, 500s with only a request id, keys never logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.access.keys import Scope
from persona.access.ratelimit import RateLimiter
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import open_engine


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def secured(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Engine]:
    engine = open_engine(
        tmp_path,
        database_url,
        clock,
        dev_mode=False,
        access={"rate_limit_per_second": 1, "rate_limit_burst": 2},
    )
    yield engine
    engine.close()


def test_rate_limit_per_key(secured: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    ticker = Ticker()
    secured.rate_limits = RateLimiter(1, 2, monotonic=ticker)
    busy = secured.keys.create("busy", [Scope.READ]).secret
    calm = secured.keys.create("calm", [Scope.READ]).secret
    with TestClient(create_app(secured), raise_server_exceptions=False) as client:

        def get(secret: str) -> int:
            headers = {"Authorization": f"Bearer {secret}"}
            return client.get("/v1/items", headers=headers).status_code

        assert [get(busy), get(busy)] == [200, 200]
        limited = client.get("/v1/items", headers={"Authorization": f"Bearer {busy}"})
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "1"
        assert limited.headers["content-type"].startswith("application/problem+json")
        assert limited.json()["code"] == "rate_limited"
        assert get(calm) == 200  # another key is unaffected
        ticker.now += 1.0
        assert get(busy) == 200
        assert get(busy) == 429
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert busy not in logged and calm not in logged
    # The secret: all after the prefix and the key id (it may hold "_" itself, so its last
    # piece alone could be a letter any log line holds).
    assert busy.split("_", 2)[2] not in logged


def test_token_bucket_refills_to_its_burst() -> None:
    ticker = Ticker()
    limiter = RateLimiter(10, 5, monotonic=ticker)
    for _ in range(5):
        limiter.check("k")
    with pytest.raises(Exception, match="limited"):
        limiter.check("k")
    ticker.now += 100
    for _ in range(5):
        limiter.check("k")
    assert not RateLimiter(0).enabled


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/audit", {"limit": 1001}),
        ("/v1/quarantine", {"limit": 1001}),
        ("/v1/items", {"limit": 1001}),
        ("/v1/segments/x/members", {"limit": 1001}),
        ("/v1/users/u1/recommendations", {"n": 101}),
        ("/v1/segments/x/size", {"epsilon": 0}),
    ],
)
def test_page_sizes_and_n_are_bounded(
    client: TestClient, path: str, params: dict[str, int]
) -> None:
    answer = client.get(path, params=params)
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_request"


def test_privacy_routes_need_admin(secured: Engine) -> None:
    secured.rate_limits = RateLimiter(0)  # unlimited: this test is about scopes
    read = secured.keys.create("reader", [Scope.READ]).secret
    created = secured.keys.create("admin", [Scope.ADMIN])
    admin = created.secret
    with TestClient(create_app(secured)) as client:
        for method, path in [
            ("DELETE", "/v1/subjects/u1"),
            ("GET", "/v1/subjects/u1/export"),
            ("GET", "/v1/audit"),
            ("GET", "/v1/subjects/export-schema"),
        ]:
            weak = client.request(method, path, headers={"X-API-Key": read})
            assert weak.status_code == 403
            strong = client.request(method, path, headers={"X-API-Key": admin})
            assert strong.status_code not in (401, 403)
        consent = {"marketing": "denied"}
        client.put("/v1/users/u1/consent", json=consent, headers={"X-API-Key": admin})
        entries = client.get("/v1/audit", headers={"X-API-Key": admin}).json()["entries"]
    actions = [(e["action"], e["actor"]) for e in entries]
    assert all(read not in str(e) and admin not in str(e) for e in entries)
    assert ("key.create", "cli") in actions
    assert ("consent.change", created.key_id) in actions  # who: the key that acted


def test_key_revocation_is_audited(engine: Engine) -> None:
    created = engine.keys.create("temp", [Scope.READ])
    engine.keys.revoke(created.key_id)
    entries = engine.privacy.audit.page(after_id=0, limit=10)
    assert [e.action for e in entries] == ["key.create", "key.revoke"]
    assert all(created.secret not in str(e.details) for e in entries)
