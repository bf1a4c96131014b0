"""The segments API: definitions, preview, members, profile memberships, errors and scopes."""

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


def seed(client: TestClient) -> None:
    events = [{"type": "view", "user_id": f"u{i}", "item_id": "i1"} for i in range(5)] + [
        {"type": "purchase", "user_id": "u1", "item_id": "i1", "value": 150.0}
    ]
    assert client.post("/v1/events", json=events).status_code == 200


def test_create_get_list_update_delete(client: TestClient) -> None:
    seed(client)
    created = client.post(
        "/v1/segments",
        json={
            "name": "high_value",
            "rule": "profile.monetary > 100",
            "description": "big spenders",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["kind"], body["size"]) == ("high_value", "rule", 1)
    assert body["description"] == "big spenders"
    assert client.get("/v1/segments/high_value").json()["rule"] == "profile.monetary > 100"
    assert [s["name"] for s in client.get("/v1/segments").json()["segments"]] == ["high_value"]

    changed = client.put("/v1/segments/high_value", json={"rule": "did(view)"})
    assert changed.status_code == 200
    assert changed.json()["size"] == 5
    assert client.delete("/v1/segments/high_value").status_code == 204
    assert client.get("/v1/segments/high_value").status_code == 404


@pytest.fixture
def small_k(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[TestClient]:
    """Member lists of five people, with a k-anonymity threshold they pass."""
    engine = open_engine(tmp_path, database_url, clock, privacy={"k_anonymity": 2})
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield client
    engine.close()


def test_preview_members_and_profile_memberships(small_k: TestClient) -> None:
    client = small_k
    seed(client)
    preview = client.post("/v1/segments/preview", json={"rule": "did(view)", "sample": 2})
    assert preview.status_code == 200
    assert preview.json() == {
        "size": 5,
        "sample": [{"profile_id": "u0", "kind": "user"}, {"profile_id": "u1", "kind": "user"}],
    }
    assert client.get("/v1/segments").json()["segments"] == []  # nothing saved

    client.post("/v1/segments", json={"name": "viewers", "rule": "did(view) within 7d"})
    first = client.get("/v1/segments/viewers/members", params={"limit": 3}).json()
    assert [m["profile_id"] for m in first["members"]] == ["u0", "u1", "u2"]
    rest = client.get(
        "/v1/segments/viewers/members", params={"limit": 3, "after": first["next_after"]}
    ).json()
    assert [m["profile_id"] for m in rest["members"]] == ["u3", "u4"]
    assert rest["next_after"] is None

    assert client.get("/v1/profiles/u1").json()["segments"] == ["viewers"]
    mine = client.get("/v1/profiles/u1/segments").json()
    assert mine["segments"] == ["viewers"]
    assert [(s["segment"], s["exited_at"]) for s in mine["history"]] == [("viewers", None)]


def test_errors(client: TestClient) -> None:
    assert client.get("/v1/segments/nope").status_code == 404
    assert client.get("/v1/segments/nope/members").status_code == 404
    assert client.put("/v1/segments/nope", json={"rule": "did(view)"}).status_code == 404
    assert client.delete("/v1/segments/nope").status_code == 404
    assert client.get("/v1/profiles/nobody/segments").status_code == 404

    assert client.post("/v1/segments", json={"name": "a", "rule": "did(view)"}).status_code == 201
    duplicate = client.post("/v1/segments", json={"name": "a", "rule": "did(click)"})
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "conflict"

    bad = client.post("/v1/segments", json={"name": "b", "rule": "did(view) and > 3"})
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["code"] == "invalid_rule"
    assert (problem["line"], problem["column"]) == (1, 15)
    assert problem["excerpt"] == "did(view) and > 3\n              ^"
    assert bad.headers["content-type"] == "application/problem+json"

    unknown = client.post("/v1/segments", json={"name": "c", "rule": 'segment("zzz")'})
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "invalid_rule"
    preview = client.post("/v1/segments/preview", json={"rule": "did("})
    assert preview.status_code == 422
    assert preview.json()["column"] == 5
    assert (
        client.post("/v1/segments", json={"name": "Bad Name", "rule": "did(x)"}).status_code == 422
    )
    assert (
        client.post("/v1/segments", json={"name": "d", "rule": "did(x)", "size": 3}).status_code
        == 422
    )


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


ROUTES = [
    ("POST", "/v1/segments", {"name": "s", "rule": "did(view)"}, Scope.ADMIN),
    ("PUT", "/v1/segments/s", {"rule": "did(view)"}, Scope.ADMIN),
    ("DELETE", "/v1/segments/s", None, Scope.ADMIN),
    ("GET", "/v1/segments", None, Scope.READ),
    ("GET", "/v1/segments/s", None, Scope.READ),
    ("GET", "/v1/segments/s/members", None, Scope.MEMBERS),
    ("POST", "/v1/segments/preview", {"rule": "did(view)"}, Scope.MEMBERS),
    ("GET", "/v1/profiles/u1/segments", None, Scope.READ),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
def test_scopes(
    secured: tuple[Engine, TestClient],
    method: str,
    path: str,
    body: dict[str, str] | None,
    scope: Scope,
) -> None:
    engine, client = secured
    engine.segments.create("s", "did(click)")
    assert client.request(method, path, json=body).status_code == 401
    others = [s for s in (Scope.INGEST, Scope.READ, Scope.DECIDE, Scope.MEMBERS) if s != scope]
    for other in others:
        secret = engine.keys.create("other", [other]).secret
        answer = client.request(method, path, json=body, headers={"X-API-Key": secret})
        assert answer.status_code == 403, (other, answer.text)
    secret = engine.keys.create("right", [scope]).secret
    answer = client.request(method, path, json=body, headers={"X-API-Key": secret})
    assert answer.status_code not in (401, 403), answer.text
