"""The synthetic shop served over HTTP: load it, train on it, ask for recommendations."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from persona.engine import Engine
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
