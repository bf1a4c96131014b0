"""Every decisions and experiments route admits its scope (or admin) and refuses the others."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from persona.access.keys import Scope
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.decide.schema import PlacementIn
from persona.engine import Engine
from tests.conftest import open_engine
from tests.decide.placements import ab


@pytest.fixture
def secured(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> Iterator[tuple[Engine, TestClient]]:
    engine = open_engine(
        tmp_path, database_url, clock, dev_mode=False, access={"key_cache_seconds": 0}
    )
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield engine, client
    engine.close()


ROUTES: list[tuple[str, str, Any, Scope]] = [
    ("POST", "/v1/placements", ab(name="other"), Scope.ADMIN),
    ("PUT", "/v1/placements/home_hero", ab(), Scope.ADMIN),
    ("POST", "/v1/placements/home_hero/pause", None, Scope.ADMIN),
    ("POST", "/v1/placements/home_hero/resume", None, Scope.ADMIN),
    ("GET", "/v1/placements", None, Scope.READ),
    ("GET", "/v1/placements/home_hero", None, Scope.READ),
    ("GET", "/v1/placements/home_hero/versions", None, Scope.READ),
    ("GET", "/v1/experiments", None, Scope.READ),
    ("GET", "/v1/experiments/home_hero.v1/results", None, Scope.READ),
    ("POST", "/v1/decisions", {"user_id": "u1", "placements": ["home_hero"]}, Scope.DECIDE),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_scopes(
    secured: tuple[Engine, TestClient], method: str, path: str, body: Any, scope: Scope
) -> None:
    engine, client = secured
    config = PlacementIn.model_validate(ab())
    engine.decisions.create(config.name, config.body())
    assert client.request(method, path, json=body).status_code == 401
    for other in (s for s in (Scope.INGEST, Scope.READ, Scope.DECIDE) if s != scope):
        secret = engine.keys.create("other", [other]).secret
        answer = client.request(method, path, json=body, headers={"X-API-Key": secret})
        assert answer.status_code == 403, (other, answer.text)
    for allowed in dict.fromkeys((scope, Scope.ADMIN)):
        secret = engine.keys.create("right", [allowed]).secret
        answer = client.request(method, path, json=body, headers={"X-API-Key": secret})
        assert answer.status_code < 300, answer.text
