"""Configuration changes (segments, placements) are audited: who, what, on which name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from persona.access.keys import Scope
from persona.access.ratelimit import RateLimiter
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import open_engine
from tests.decide.placements import ab


def audit(client: TestClient, **headers: str) -> list[dict[str, Any]]:
    answer = client.get("/v1/audit", params={"limit": 1000}, headers=headers)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


def trail(entries: list[dict[str, Any]], prefix: str) -> list[tuple[str, str, str]]:
    return [
        (e["actor"], e["action"], e["target"]) for e in entries if e["action"].startswith(prefix)
    ]


def test_segment_changes_are_audited_without_the_rule(client: TestClient) -> None:
    secret = "vip@example.com"
    rule = f'did(view) and traits.email == "{secret}"'
    assert client.post("/v1/segments", json={"name": "vip", "rule": rule}).status_code == 201
    changed = client.put("/v1/segments/vip", json={"rule": rule, "description": f"for {secret}"})
    assert changed.status_code == 200
    assert client.delete("/v1/segments/vip").status_code == 204
    entries = audit(client)
    assert trail(entries, "segment.") == [
        ("dev", "segment.create", "segment:vip"),
        ("dev", "segment.update", "segment:vip"),
        ("dev", "segment.delete", "segment:vip"),
    ]
    update = next(e for e in entries if e["action"] == "segment.update")
    assert update["details"] == {"changed": {"rule": False, "description": True}}
    assert all(secret not in str(e) for e in entries)


def test_refused_changes_leave_no_entry(client: TestClient) -> None:
    assert client.delete("/v1/segments/missing").status_code == 404
    assert client.post("/v1/placements/missing/pause").status_code == 404
    assert trail(audit(client), "segment.") == []
    assert trail(audit(client), "placement.") == []


def test_placement_changes_are_audited(client: TestClient) -> None:
    config = ab("hero")
    config["variants"][0]["payload"] = {"title": "private@example.com"}
    assert client.post("/v1/placements", json=config).status_code == 201
    update = {k: v for k, v in ab("hero", weights=(1.0, 3.0)).items() if k != "name"}
    assert client.put("/v1/placements/hero", json=update).status_code == 200
    assert client.post("/v1/placements/hero/pause").status_code == 200
    assert client.post("/v1/placements/hero/resume").status_code == 200
    entries = audit(client)
    assert trail(entries, "placement.") == [
        ("dev", "placement.create", "placement:hero"),
        ("dev", "placement.update", "placement:hero"),
        ("dev", "placement.pause", "placement:hero"),
        ("dev", "placement.resume", "placement:hero"),
    ]
    versions = [e["details"]["version"] for e in entries if e["action"].startswith("placement.")]
    assert versions == [1, 2, 2, 2]
    assert all("private@example.com" not in str(e) for e in entries)


def test_service_calls_without_a_request_are_audited_as_cli(engine: Engine) -> None:
    engine.segments.create("viewers", "did(view)")
    actions = [(e.actor, e.action) for e in engine.privacy.audit.page(after_id=0, limit=10)]
    assert actions == [("cli", "segment.create")]


@pytest.fixture
def secured(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Engine]:
    engine = open_engine(tmp_path, database_url, clock, dev_mode=False)
    engine.rate_limits = RateLimiter(0)  # unlimited: these tests are about the audit trail
    yield engine
    engine.close()


def test_the_actor_is_the_key_that_made_the_change(secured: Engine) -> None:
    created = secured.keys.create("ops", [Scope.ADMIN])
    key = {"X-API-Key": created.secret}
    with TestClient(create_app(secured)) as client:
        assert client.post("/v1/segments", json={"name": "s1", "rule": "did(view)"}, headers=key)
        assert client.post("/v1/placements", json=ab("p1"), headers=key).status_code == 201
        assert client.post("/v1/placements/p1/pause", headers=key).status_code == 200
        entries = audit(client, **key)
    assert trail(entries, "segment.") == [(created.key_id, "segment.create", "segment:s1")]
    assert trail(entries, "placement.") == [
        (created.key_id, "placement.create", "placement:p1"),
        (created.key_id, "placement.pause", "placement:p1"),
    ]
    assert all(created.secret not in str(e) for e in entries)
