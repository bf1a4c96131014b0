"""The synthetic shop served over HTTP: load it, train on it, ask for recommendations."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from persona.clock import FakeClock
from persona.engine import Engine
from persona.recommend.registry import ModelVersion
from persona.recommend.training import TrainingOutcome, train_model_set
from tests.recommend.synthetic import catalog, events
from tests.recommend.synthetic import train as train_and_promote


def load(client: TestClient) -> None:
    response = client.post("/v1/items", json={"items": catalog()})
    assert response.status_code == 200, response.text
    rows = events()
    for start in range(0, len(rows), 1000):
        response = client.post("/v1/events", json=rows[start : start + 1000])
        assert response.status_code == 200, response.text


def train(engine: Engine) -> None:
    train_and_promote(engine)
    engine.recommendations.reload()


def recommendations(client: TestClient, user: str, **params: Any) -> Any:
    response = client.get(f"/v1/users/{user}/recommendations", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def train_twice(
    client: TestClient, engine: Engine, clock: FakeClock, *, second_wins: bool = False
) -> tuple[ModelVersion, TrainingOutcome]:
    """The shop loaded and a model set trained and served; a minute later (another version
    name) a second one trained: promoted when ``second_wins`` (the first's metrics are made
    beatable), else as training decides."""
    load(client)
    train(engine)
    registry = engine.recommendations.registry
    first = registry.champion()
    assert first is not None
    clock.advance(60)
    if second_wins:
        manifest = first.manifest | {"metrics": {"ndcg@10": 0.0}}
        (first.path / "manifest.json").write_text(json.dumps(manifest))
    second = train_model_set(
        engine.storage, registry, engine.clock, engine.settings.profiles.event_weights
    )
    assert second.version.version != first.version
    return first, second
