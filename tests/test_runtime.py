"""The server and the commands collect cycles less often than the interpreter's default."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.engine import Engine
from persona.runtime import YOUNG_GENERATION_THRESHOLD


@pytest.fixture
def default_collector() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("default_collector")
def test_the_server_raises_the_young_threshold_at_start(engine: Engine) -> None:
    with TestClient(create_app(engine)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
