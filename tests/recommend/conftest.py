"""Fixtures of the recommendation tests: one model set trained on the synthetic shop, and a
store that serves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import NOW_MS, open_engine
from tests.recommend.serving import load, train


@pytest.fixture(scope="module")
def model_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model set trained on the synthetic data, for every test that only serves it."""
    home = tmp_path_factory.mktemp("trained")
    engine = open_engine(home, f"sqlite:///{home / 'persona.db'}", FakeClock(NOW_MS))
    try:
        with TestClient(create_app(engine)) as client:
            load(client)
        train(engine)
    finally:
        engine.close()
    return home / "models"


@pytest.fixture
def trained(client: TestClient, engine: Engine, model_set: Path) -> TestClient:
    """The synthetic data in this test's store, served by the model set trained on it."""
    load(client)
    shutil.copytree(model_set, engine.recommendations.registry.root, dirs_exist_ok=True)
    assert engine.recommendations.reload() is not None
    engine.recommendations.budget_ms = 5_000  # the test machine is shared: no flaky fallbacks
    return client
