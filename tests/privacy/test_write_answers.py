"""A write answers with what the writer may see: an `ingest` key that sets traits or consent
learns what it wrote, not the rest of the profile or of the consent record."""

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


@pytest.fixture
def secured(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> Iterator[tuple[Engine, TestClient]]:
    engine = open_engine(tmp_path, database_url, clock, dev_mode=False)
    engine.ingest.ingest([{"type": "view", "user_id": "w1", "item_id": "i1"}])
    engine.privacy.consent.set("w1", {"marketing": "denied"}, actor="test")
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield engine, client
    engine.close()


def _key(engine: Engine, *scopes: Scope) -> dict[str, str]:
    return {"X-API-Key": engine.keys.create("k", scopes).secret}


def test_an_ingest_key_learns_the_traits_it_wrote_and_nothing_else(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    answer = client.put(
        "/v1/users/w1/traits", json={"plan": "gold"}, headers=_key(engine, Scope.INGEST)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"profile_id": "w1", "traits": {"plan": "gold"}}
    both = _key(engine, Scope.INGEST, Scope.READ)
    full = client.put("/v1/users/w1/traits", json={"plan": "silver"}, headers=both).json()
    assert full["traits"] == {"plan": "silver"} and full["event_count"] == 1  # the profile


def test_an_ingest_key_learns_the_consent_it_wrote_and_nothing_else(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    written = client.put(
        "/v1/users/w1/consent", json={"analytics": "granted"}, headers=_key(engine, Scope.INGEST)
    )
    assert written.status_code == 200, written.text
    assert written.json() == {"user_id": "w1", "purposes": {"analytics": "granted"}}
    both = _key(engine, Scope.INGEST, Scope.READ)
    full = client.put("/v1/users/w1/consent", json={"analytics": "granted"}, headers=both).json()
    assert full["purposes"]["marketing"] == "denied"
