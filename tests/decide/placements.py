"""Builders shared by the decisions tests: placement configurations, requests and events."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from persona.decide.schema import DecisionsOut


def ab(
    name: str = "home_hero", weights: tuple[float, ...] = (1.0, 1.0), **extra: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": name,
        "policy": "ab",
        "variants": [
            {"id": f"v{i}", "payload": {"title": f"variant {i}"}, "weight": w}
            for i, w in enumerate(weights)
        ],
    }
    config.update(extra)
    return config


def thompson(name: str = "banner", arms: int = 2, **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "policy": "thompson",
        "variants": [{"id": f"arm{i}", "payload": {"arm": i}} for i in range(arms)],
        "thompson": {"reward": "click", "min_exploration": 0.0, **settings},
    }


def create(client: TestClient, config: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/placements", json=config)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def decide(client: TestClient, *placements: str, **request: Any) -> list[dict[str, Any]]:
    if "user_id" not in request and "anonymous_id" not in request:
        request["user_id"] = "u1"
    response = client.post("/v1/decisions", json={"placements": list(placements), **request})
    assert response.status_code == 200, response.text
    body = response.json()
    assert DecisionsOut.model_validate(body).model_dump(mode="json") == body  # the documented shape
    decisions: list[dict[str, Any]] = body["decisions"]
    return decisions


def outcome(
    event_id: str, decision_id: str, kind: str, user: str = "u1", **extra: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id,
        "type": kind,
        "user_id": user,
        "decision_id": decision_id,
    }
    event.update(extra)
    return event


def post_events(client: TestClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/v1/events", json=events)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
