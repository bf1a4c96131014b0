"""API keys and scopes: no route opens without a key outside development mode."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from persona.access.keys import AnyScope, Scope
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import open_engine
from tests.helpers import view


@pytest.fixture
def secured(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> Iterator[tuple[Engine, TestClient]]:
    engine = open_engine(
        tmp_path,
        database_url,
        clock,
        dev_mode=False,
        # every operation is asked without a key: more than the default burst of failures
        access={"key_cache_seconds": 0, "failed_auth_burst": 500},
    )
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield engine, client
    engine.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


ROUTES: list[tuple[str, str, Scope | AnyScope]] = [
    ("POST", "/v1/events", AnyScope((Scope.INGEST, Scope.PUBLIC))),
    ("PUT", "/v1/items/i1", Scope.INGEST),
    ("POST", "/v1/items", Scope.INGEST),
    ("PUT", "/v1/users/u1/traits", Scope.INGEST),
    ("GET", "/v1/items/i1", Scope.READ),
    ("GET", "/v1/items", Scope.READ),
    ("GET", "/v1/profiles/u1", Scope.READ),
    ("GET", "/v1/users/u1/recommendations", AnyScope((Scope.READ, Scope.DECIDE))),
    ("GET", "/metrics", Scope.READ),
    ("GET", "/v1/quarantine", Scope.ADMIN),
    ("POST", "/v1/quarantine/1/replay", Scope.ADMIN),
]


def admitted(needed: Scope | AnyScope) -> tuple[Scope, ...]:
    return needed.scopes if isinstance(needed, AnyScope) else (needed,)


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_every_route_needs_a_key_with_its_scope(
    secured: tuple[Engine, TestClient], method: str, path: str, scope: Scope | AnyScope
) -> None:
    engine, client = secured
    missing = client.request(method, path)
    assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
    wrong = client.request(method, path, headers=bearer("psk_nothere_secret"))
    assert wrong.status_code == 401
    for other_scope in (s for s in Scope if s not in (*admitted(scope), Scope.ADMIN)):
        weak = engine.keys.create("weak", [other_scope]).secret
        forbidden = client.request(method, path, headers=bearer(weak))
        assert forbidden.status_code == 403, other_scope
        assert forbidden.json()["code"] == "not_enough_permissions"
    for each in (*admitted(scope), Scope.ADMIN):
        strong = engine.keys.create("strong", [each]).secret
        allowed = client.request(method, path, headers={"X-API-Key": strong})
        assert allowed.status_code not in (401, 403), each


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_the_openapi_document_names_the_scopes_each_route_admits(
    client: TestClient, method: str, path: str, scope: Scope | AnyScope
) -> None:
    document = client.get("/openapi.json").json()
    template = next(
        p for p in document["paths"] if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), path)
    )
    description = document["paths"][template][method.lower()]["description"]
    names = " or ".join(f"`{s.value}`" for s in admitted(scope))
    assert f"Needs an API key with scope {names} (or `admin`)." in description


def test_every_read_only_route_admits_a_read_key(secured: tuple[Engine, TestClient]) -> None:
    """The README: `read` covers reads. The privacy, quarantine and webhook reads are admin's,
    and who is in a segment is the `members` scope's."""
    engine, client = secured
    reader = {"X-API-Key": engine.keys.create("reader", [Scope.READ]).secret}
    admin_only = {"/v1/quarantine", "/v1/audit", "/v1/subjects/", "/v1/segments/{name}/export"}
    admin_only.add("/v1/segments/{name}/members")  # the members scope (or admin)
    admin_only.add("/v1/webhooks")  # where people's data is sent, and the dead letters' data
    document = client.get("/openapi.json").json()
    checked = []
    for path, operations in document["paths"].items():
        if "get" not in operations or not path.startswith(("/v1/", "/metrics")):
            continue
        if any(path.startswith(prefix) for prefix in admin_only):
            continue
        answer = client.get(re.sub(r"\{[^}]+\}", "x1", path), headers=reader)
        assert answer.status_code not in (401, 403), (path, answer.text)
        checked.append(path)
    # (19 reads: the member list moved to the members scope)
    assert "/v1/users/{user_id}/recommendations" in checked and len(checked) >= 19


def test_admin_grants_every_scope_and_revocation_takes_effect(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    created = engine.keys.create("ops", [Scope.ADMIN])
    assert (
        client.post("/v1/events", json=view("e1"), headers=bearer(created.secret)).status_code
        == 200
    )
    assert client.get("/v1/profiles/u1", headers=bearer(created.secret)).status_code == 200
    engine.keys.revoke(created.key_id)
    assert client.get("/v1/profiles/u1", headers=bearer(created.secret)).status_code == 401


def test_keys_are_stored_hashed_and_never_logged(
    secured: tuple[Engine, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    engine, client = secured
    created = engine.keys.create("ci", [Scope.READ])
    secret_part = created.secret.split("_", 2)[2]
    with engine.storage.read() as uow:
        record = uow.keys.get(created.key_id)
    assert (
        record is not None
        and secret_part not in record.secret_hash
        and len(record.secret_hash) == 64
    )
    with caplog.at_level(logging.DEBUG):
        client.get("/v1/profiles/u1", headers=bearer(created.secret + "tampered"))
        client.get("/v1/profiles/u1", headers=bearer(created.secret))
    assert secret_part not in caplog.text


def test_a_tampered_secret_with_a_real_key_id_is_refused(
    secured: tuple[Engine, TestClient],
) -> None:
    engine, client = secured
    created = engine.keys.create("ci", [Scope.READ])
    prefix, key_id, _ = created.secret.split("_", 2)
    forged = f"{prefix}_{key_id}_{'A' * 43}"
    assert client.get("/v1/items", headers=bearer(forged)).status_code == 401


def test_health_and_docs_are_open(secured: tuple[Engine, TestClient]) -> None:
    _, client = secured
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ok"
    assert client.get("/openapi.json").status_code == 200


def test_a_key_needs_a_scope(engine: Engine) -> None:
    with pytest.raises(ValueError):
        engine.keys.create("none", [])


def test_the_openapi_document_declares_the_key_schemes_and_each_operations_scope(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/v1/"):
                assert operation["security"] == [{"bearer": []}, {"apiKey": []}], path
            if "security" in operation:
                assert "Needs an API key with scope" in operation["description"], path
    for open_path in ("/healthz", "/readyz"):
        assert "security" not in document["paths"][open_path]["get"]
    profile = document["paths"]["/v1/profiles/{user_id}"]["get"]
    assert "`read`" in profile["description"]


def test_no_operation_of_the_api_answers_without_a_key(
    secured: tuple[Engine, TestClient],
) -> None:
    _, client = secured
    document = client.get("/openapi.json").json()
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        for method in operations:
            answer = client.request(method.upper(), concrete, json={})
            assert answer.status_code == 401, (method, path, answer.text)
            checked += 1
    assert checked >= 40
