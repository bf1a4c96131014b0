"""Browsers on the allowed origins may call the API (CORS); other origins get no permission,
and without an allow-list nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.errors import PersonaError
from persona.settings import Settings
from tests.conftest import open_engine

SHOP = "https://shop.example"
PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type",
}


@pytest.fixture
def allowing(tmp_path: Path, clock: FakeClock) -> Iterator[TestClient]:
    engine = open_engine(
        tmp_path, f"sqlite:///{tmp_path / 'p.db'}", clock, server={"cors_origins": [SHOP]}
    )
    with TestClient(create_app(engine)) as client:
        yield client
    engine.close()


def test_a_preflight_from_an_allowed_origin_is_granted(allowing: TestClient) -> None:
    answer = allowing.options("/v1/events", headers={"origin": SHOP, **PREFLIGHT})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "access-control-allow-credentials" not in answer.headers  # keys, never cookies


def test_an_answer_to_an_allowed_origin_says_so(allowing: TestClient) -> None:
    event = {"type": "view", "user_id": "u1", "item_id": "i1"}
    answer = allowing.post("/v1/events", json=event, headers={"origin": SHOP})
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == SHOP


def test_another_origin_gets_no_permission(allowing: TestClient) -> None:
    other = "https://elsewhere.example"
    answer = allowing.options("/v1/events", headers={"origin": other, **PREFLIGHT})
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
    posted = allowing.post(
        "/v1/events", json={"type": "view", "user_id": "u1"}, headers={"origin": other}
    )
    assert "access-control-allow-origin" not in posted.headers


def test_without_an_allow_list_no_origin_is_granted(client: TestClient) -> None:
    answer = client.options("/v1/events", headers={"origin": SHOP, **PREFLIGHT})
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize(
    "origin", ["https://shop.example/", "https://shop.example/path", "shop.example", "*"]
)
def test_an_allow_list_entry_that_is_no_origin_is_refused(tmp_path: Path, origin: str) -> None:
    with pytest.raises((ValueError, PersonaError)):
        Settings(home=tmp_path, server={"cors_origins": [origin]})  # type: ignore[arg-type]
