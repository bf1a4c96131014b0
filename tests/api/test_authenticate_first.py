"""A body is read only once its key is known: a request without a valid key is refused before
persona parses what it sends (on the event loop, where parsing megabytes stalls every other
request)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.access.keys import Scope
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import open_engine

WRITES = [
    ("PUT", "/v1/items/i1"),
    ("POST", "/v1/items"),
    ("PUT", "/v1/users/u1/traits"),
    ("PUT", "/v1/users/u1/consent"),
    ("POST", "/v1/segments"),
    ("POST", "/v1/placements"),
    ("POST", "/v1/events"),
]
JSON = {"Content-Type": "application/json"}
MADE_UP = {**JSON, "Authorization": "Bearer psk_0123456789ab_" + "s" * 43}


@pytest.fixture
def secured(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[TestClient]:
    engine = open_engine(tmp_path, database_url, clock, dev_mode=False)
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        client.app_state = engine  # type: ignore[attr-defined]
        yield client
    engine.close()


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_body_without_a_valid_key_is_refused_unparsed(
    secured: TestClient, method: str, path: str
) -> None:
    """Malformed JSON would be 400 once parsed: a 401 shows it never was."""
    for headers in (JSON, MADE_UP):
        answer = secured.request(method, path, content=b"{" * 1_000_000, headers=headers)
        assert answer.status_code == 401, answer.text
        assert answer.json()["code"] == "unauthorized"
        assert answer.headers["www-authenticate"] == "Bearer"


def test_a_body_with_a_valid_key_reaches_its_route(secured: TestClient) -> None:
    engine: Engine = secured.app_state  # type: ignore[attr-defined]
    key = {**JSON, "X-API-Key": engine.keys.create("w", [Scope.INGEST]).secret}
    answer = secured.put("/v1/users/u1/traits", json={"plan": "gold"}, headers=key)
    assert answer.status_code == 200, answer.text
    malformed = secured.put("/v1/users/u1/traits", content=b"{", headers=key)
    assert malformed.status_code == 400  # with a key, the body is read and judged as before
    wrong_scope = {"X-API-Key": engine.keys.create("r", [Scope.READ]).secret}
    assert secured.put("/v1/users/u1/traits", json={}, headers=wrong_scope).status_code == 403
