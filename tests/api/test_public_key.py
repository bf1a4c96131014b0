"""The `public` scope: a key a web page may carry sends events and asks for decisions, and is
refused everything else (every other operation of the OpenAPI document is tried)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from persona.access.keys import PUBLIC_REFUSED, Scope
from persona.api.app import create_app
from persona.cli.main import app as cli
from persona.clock import FakeClock
from persona.decide.schema import PlacementIn
from persona.engine import Engine
from persona.errors import ForbiddenError
from tests.conftest import open_engine
from tests.decide.placements import ab

# The two operations a public key may call; every other one answers it 403.
ADMITTED = {("POST", "/v1/events"), ("POST", "/v1/decisions")}


@pytest.fixture
def secured(tmp_path: Path, clock: FakeClock) -> Iterator[tuple[Engine, TestClient]]:
    engine = open_engine(
        tmp_path,
        f"sqlite:///{tmp_path / 'p.db'}",
        clock,
        dev_mode=False,
        access={"key_cache_seconds": 0},
    )
    config = PlacementIn.model_validate(ab())
    engine.decisions.create(config.name, config.body())
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield engine, client
    engine.close()


def key(engine: Engine, *scopes: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {engine.keys.create('test', scopes).secret}"}


def test_a_public_key_sends_events_and_asks_for_decisions(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    public = key(engine, Scope.PUBLIC)
    events = [
        {"event_id": "p-1", "type": "view", "anonymous_id": "a1", "item_id": "i1"},
        {"event_id": "p-2", "type": "identify", "anonymous_id": "a1", "user_id": "u1"},
    ]
    sent = client.post("/v1/events", json=events, headers=public)
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 2
    decided = client.post(
        "/v1/decisions", json={"user_id": "u1", "placements": ["home_hero"]}, headers=public
    )
    assert decided.status_code == 200, decided.text
    decision = decided.json()["decisions"][0]
    assert decision["variant"] in ("v0", "v1") and decision["decision_id"]
    impression = {
        "event_id": "p-3",
        "type": "impression",
        "user_id": "u1",
        "decision_id": decision["decision_id"],
    }
    assert client.post("/v1/events", json=impression, headers=public).json()["accepted"] == 1


def _operations(client: TestClient) -> Iterator[tuple[str, str]]:
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        if not path.startswith(("/v1/", "/metrics")):
            continue
        for method in operations:
            yield method.upper(), path


def test_every_other_operation_refuses_a_public_key(secured: tuple[Engine, TestClient]) -> None:
    """Catalog and traits writes, consent, profile and recommendation reads, admin routes:
    each answers 403 with the problem's code and a detail that says what the key is for."""
    engine, client = secured
    public = key(engine, Scope.PUBLIC)
    refused = []
    for method, path in _operations(client):
        if (method, path) in ADMITTED:
            continue
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        answer = client.request(method, concrete, json={}, headers=public)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert problem["code"] == ForbiddenError.code == "not_enough_permissions"
        assert problem["detail"] == PUBLIC_REFUSED
        refused.append((method, path))
    for must in [
        ("PUT", "/v1/items/{item_id}"),
        ("POST", "/v1/items"),
        ("PUT", "/v1/users/{user_id}/traits"),
        ("PUT", "/v1/users/{user_id}/consent"),
        ("GET", "/v1/profiles/{user_id}"),
        ("GET", "/v1/users/{user_id}/recommendations"),
        ("GET", "/v1/segments"),
        ("POST", "/v1/placements"),
        ("GET", "/v1/quarantine"),
        ("DELETE", "/v1/subjects/{subject_id}"),
        ("GET", "/metrics"),
    ]:
        assert must in refused, must
    assert len(refused) >= 40


def test_a_trait_write_with_a_public_key_is_refused_and_changes_nothing(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    admin = key(engine, Scope.ADMIN)
    public = key(engine, Scope.PUBLIC)
    assert client.put("/v1/users/u1/traits", json={"plan": "free"}, headers=admin).is_success
    answer = client.put("/v1/users/u1/traits", json={"plan": "gold"}, headers=public)
    assert answer.status_code == 403 and answer.json()["code"] == "not_enough_permissions"
    assert client.get("/v1/profiles/u1", headers=admin).json()["traits"] == {"plan": "free"}


def test_events_carry_no_traits_so_a_public_key_cannot_set_them_through_one(
    secured: tuple[Engine, TestClient],
) -> None:
    """An identify event with traits is not an event persona knows: it is rejected (and
    quarantined) for every key; traits given to the snippet's identify travel as properties."""
    engine, client = secured
    public = key(engine, Scope.PUBLIC)
    with_traits = {"type": "identify", "anonymous_id": "a1", "user_id": "u1", "traits": {"x": 1}}
    answer = client.post("/v1/events", json=with_traits, headers=public).json()
    assert answer["rejected"] == 1 and answer["events"][0]["code"] == "unknown_field"
    traits = with_traits.pop("traits")
    as_properties = {**with_traits, "event_id": "p-9", "properties": traits}
    assert client.post("/v1/events", json=as_properties, headers=public).json()["accepted"] == 1
    profile = client.get("/v1/profiles/u1", headers=key(engine, Scope.READ)).json()
    assert profile["traits"] == {} and "a1" in profile["aliases"]


def test_a_public_key_travels_in_the_url_of_the_events_route_only(
    secured: tuple[Engine, TestClient],
) -> None:
    """For ``navigator.sendBeacon``, which cannot set a header; any other key is refused
    there (it would be written in logs and histories), and no other route reads the URL."""
    engine, client = secured
    secret = engine.keys.create("page", [Scope.PUBLIC]).secret
    event = {"type": "view", "anonymous_id": "a1"}
    sent = client.post(
        "/v1/events",
        params={"key": secret},
        content=b'{"type": "view", "anonymous_id": "a1"}',
        headers={"content-type": "text/plain;charset=UTF-8"},
    )
    assert sent.status_code == 200 and sent.json()["accepted"] == 1, sent.text
    for scopes in ([Scope.INGEST], [Scope.ADMIN]):
        other = engine.keys.create("backend", scopes).secret
        refused = client.post("/v1/events", params={"key": other}, json=event)
        assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
        assert "public key" in refused.json()["detail"]
    decide = {"anonymous_id": "a1", "placements": ["home_hero"]}
    assert client.post("/v1/decisions", params={"key": secret}, json=decide).status_code == 401
    assert client.get("/v1/profiles/a1", params={"key": secret}).status_code == 401
    # a key in a header wins: the URL's is not read then
    ingest = key(engine, Scope.INGEST)
    both = client.post("/v1/events", params={"key": "psk_0_nonsense"}, json=event, headers=ingest)
    assert both.status_code == 200


def test_a_public_key_holds_no_other_scope(engine: Engine, tmp_path: Path) -> None:
    assert engine.keys.create("page", [Scope.PUBLIC]).scopes == ["public"]
    for other in (s for s in Scope if s != Scope.PUBLIC):
        with pytest.raises(ValueError, match="public key holds no other scope"):
            engine.keys.create("page", [Scope.PUBLIC, other])
    runner = CliRunner()
    home = ["--home", str(tmp_path / "cli")]
    created = runner.invoke(cli, [*home, "keys", "create", "--scope", "public", "--name", "web"])
    assert created.exit_code == 0, created.output
    assert created.stdout.strip().splitlines()[-1].startswith("psk_")
    mixed = runner.invoke(cli, [*home, "keys", "create", "--scope", "public", "--scope", "read"])
    assert mixed.exit_code == 2 and "no other scope" in mixed.output


def test_the_openapi_document_names_the_public_scope_on_its_two_operations(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    events = document["paths"]["/v1/events"]["post"]
    assert "scope `ingest` or `public` (or `admin`)" in events["description"]
    assert [p["name"] for p in events["parameters"]] == ["key"]
    decide = document["paths"]["/v1/decisions"]["post"]["description"]
    assert "scope `decide` or `public` (or `admin`)" in decide
