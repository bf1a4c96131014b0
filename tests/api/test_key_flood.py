"""What a client without a key can make the server hold: nothing.

Malformed keys are refused before any lookup, lookups that fail are never cached, and headers
over their limit are refused (431) before a route reads them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.access.keys import Scope
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.settings import load_settings
from tests.conftest import open_engine


@pytest.fixture
def secured(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> Iterator[tuple[Engine, TestClient]]:
    engine = open_engine(tmp_path, database_url, clock, dev_mode=False)
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield engine, client
    engine.close()


def test_made_up_keys_are_refused_and_nothing_of_them_is_kept(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    made_up = [
        f"psk_{'7' * 5_000}_x",  # a key id far too long
        "psk__" + "s" * 43,  # no key id
        "nonsense",
        "psk_0123456789ab_" + "~" * 43,  # not the secret's alphabet
        *(f"psk_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}" for _ in range(200)),
    ]
    for key in made_up:
        answer = client.get("/v1/items", headers={"Authorization": f"Bearer {key}"})
        # refused; past the address's budget of failures, without even a lookup (below)
        assert answer.status_code in (401, 429), (key[:40], answer.text)
        assert answer.json()["code"] in ("unauthorized", "rate_limited")
    assert engine.keys.cached_keys == 0


def test_a_real_key_still_works_and_is_cached(secured: tuple[Engine, TestClient]) -> None:
    engine, client = secured
    key = engine.keys.create("reader", [Scope.READ]).secret
    for _ in range(3):
        assert client.get("/v1/items", headers={"Authorization": f"Bearer {key}"}).status_code
    assert client.get("/v1/items", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert engine.keys.cached_keys == 1


def test_headers_over_the_limit_get_431_and_a_closed_connection(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    huge = "psk_" + "7" * (engine.settings.server.max_header_bytes + 1) + "_x"
    answer = client.get("/v1/items", headers={"Authorization": f"Bearer {huge}"})
    assert answer.status_code == 431
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers["connection"] == "close"
    assert answer.json()["code"] == "headers_too_large"
    assert engine.keys.cached_keys == 0
    # within the limit, the same route answers as usual
    assert client.get("/healthz").status_code == 200


def test_an_address_sending_made_up_keys_is_slowed_down_before_any_lookup(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    """Past its budget of failed authentications, a client address is answered 429 without a
    key lookup, and recovers as the budget refills; a valid key from elsewhere is unaffected."""
    engine = open_engine(
        tmp_path,
        database_url,
        clock,
        dev_mode=False,
        access={"failed_auth_per_second": 0.001, "failed_auth_burst": 5},
    )
    key = engine.keys.create("reader", [Scope.READ]).secret
    try:
        with TestClient(create_app(engine), raise_server_exceptions=False) as attacker:
            made_up = {"Authorization": f"Bearer psk_{secrets.token_hex(6)}_{'s' * 43}"}
            statuses = [attacker.get("/v1/items", headers=made_up).status_code for _ in range(8)]
            assert statuses == [401] * 5 + [429] * 3
            refused = attacker.get("/v1/items", headers=made_up)
            assert int(refused.headers["retry-after"]) >= 1
        with TestClient(
            create_app(engine), raise_server_exceptions=False, client=("198.51.100.7", 4000)
        ) as other:
            assert other.get("/v1/items", headers={"X-API-Key": key}).status_code == 200
    finally:
        engine.close()


def test_a_revocation_takes_effect_at_once_in_the_revoking_process(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    """With the default key cache (5 s), a key revoked through this process is refused on its
    next request; other processes see it within the cache's seconds (docs/security.md)."""
    engine = open_engine(tmp_path, database_url, clock, dev_mode=False)
    assert engine.settings.access.key_cache_seconds == 5.0
    created = engine.keys.create("leaked", [Scope.READ])
    headers = {"X-API-Key": created.secret}
    try:
        with TestClient(create_app(engine), raise_server_exceptions=False) as client:
            assert client.get("/v1/items", headers=headers).status_code == 200  # now cached
            engine.keys.revoke(created.key_id)
            assert client.get("/v1/items", headers=headers).status_code == 401
    finally:
        engine.close()


def test_keys_are_rate_limited_by_default(tmp_path: Path) -> None:
    """A leaked key cannot take the whole server: limits are on unless turned off."""
    access = load_settings(home=tmp_path).access
    assert access.rate_limit_per_second == 1_000 and access.rate_limit_burst == 2_000
    assert access.failed_auth_per_second == 5 and access.failed_auth_burst == 50
