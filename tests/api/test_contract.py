"""The OpenAPI document declares every problem an operation can answer, in the shape sent."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from httpx import Response

from persona.access.keys import Scope
from persona.api.app import create_app
from persona.api.contract import DOMAIN_STATUSES
from persona.api.deps import SCOPE_ATTRIBUTE
from persona.api.problems import MEDIA_TYPE
from persona.clock import FakeClock
from persona.engine import Engine
from persona.errors import PersonaError
from tests.conftest import open_engine

PROBLEM = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _needs_a_key(route: APIRoute) -> bool:
    return hasattr(route.endpoint, SCOPE_ATTRIBUTE) or any(
        hasattr(d.dependency, SCOPE_ATTRIBUTE) for d in route.dependencies
    )


def _operations(engine: Engine) -> Iterator[tuple[APIRoute, str, dict[str, Any]]]:
    app = create_app(engine)
    document = app.openapi()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in sorted(route.methods or ()):
                yield route, method, document["paths"][route.path_format][method.lower()]


def test_every_operation_declares_the_problems_it_can_answer(engine: Engine) -> None:
    checked = 0
    for route, method, operation in _operations(engine):
        where = f"{method} {route.path_format}"
        responses = operation["responses"]
        expected = {"413", "500"}
        if _needs_a_key(route):
            expected |= {"401", "403", "429"}
        if "{" in route.path_format:
            expected |= {"404", "422"}
        if "requestBody" in operation:
            expected |= {"400", "422"}
        if operation.get("parameters"):
            expected.add("422")
        assert expected <= set(responses), (where, sorted(expected - set(responses)))
        for status, response in responses.items():
            if int(status) >= 400 and (route.path_format, status) != ("/readyz", "503"):
                assert response["content"] == PROBLEM, (where, status)
                assert "Codes: `" in response["description"], (where, status)
        checked += 1
    assert checked >= 46


def test_the_framework_validation_shape_is_gone(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert "HTTPValidationError" not in str(document)
    put_item = document["paths"]["/v1/items/{item_id}"]["put"]["responses"]
    assert put_item["422"]["content"] == PROBLEM


def test_every_domain_status_names_an_operation(engine: Engine) -> None:
    operation_ids = {operation["operationId"] for _, _, operation in _operations(engine)}
    assert set(DOMAIN_STATUSES) <= operation_ids


def test_each_status_lists_the_codes_the_domains_raise(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    responses = document["paths"]["/v1/segments"]["post"]["responses"]
    assert "`conflict`" in responses["409"]["description"]
    assert "`invalid_rule`" in responses["422"]["description"]
    assert "`invalid_request`" in responses["422"]["description"]


# What problems.py sends, validated against the schema the document declares.


@pytest.fixture
def keyed(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[TestClient]:
    engine = open_engine(
        tmp_path,
        database_url,
        clock,
        dev_mode=False,
        access={"key_cache_seconds": 0, "rate_limit_per_second": 0.01, "rate_limit_burst": 1},
    )
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        client.headers["X-API-Key"] = engine.keys.create("ci", [Scope.INGEST]).secret
        yield client
    engine.close()


def _problem_validator(client: TestClient) -> jsonschema.protocols.Validator:
    document = client.get("/openapi.json").json()
    schema = {**document["components"]["schemas"]["Problem"], "components": document["components"]}
    validator_class = jsonschema.validators.validator_for(schema)
    validator: jsonschema.protocols.Validator = validator_class(schema)
    return validator


def _checked(validator: jsonschema.protocols.Validator, response: Response, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body = response.json()
    validator.validate(body)
    assert body["status"] == status and body["type"] == f"urn:persona:problem:{body['code']}"
    return body


def test_the_problems_sent_match_the_declared_schema(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    validator = _problem_validator(client)
    invalid = _checked(validator, client.put("/v1/items/i1", json={"price": -1}), 422)
    assert invalid["errors"][0]["path"] == "body.price"
    placement = _checked(validator, client.post("/v1/placements", json={"name": "p"}), 422)
    assert placement["code"] == "invalid_placement" and placement["errors"]
    rule = {"name": "s1", "rule": "profile.count >"}
    syntax = _checked(validator, client.post("/v1/segments", json=rule), 422)
    assert {"line", "column", "excerpt"} <= set(syntax)
    assert _checked(validator, client.get("/v1/items/nothing"), 404)["code"] == "not_found"
    assert _checked(validator, client.get("/v1/nothing"), 404)["code"] == "not_found"
    assert _checked(validator, client.delete("/v1/events"), 405)["code"] == "method_not_allowed"
    segment = {"name": "s1", "rule": "profile.event_count > 1"}
    assert client.post("/v1/segments", json=segment).status_code == 201
    assert _checked(validator, client.post("/v1/segments", json=segment), 409)["code"] == "conflict"
    for method, path in (("POST", "/v1/events"), ("PUT", "/v1/items/i1")):
        json_type = {"content-type": "application/json"}
        malformed = client.request(method, path, content=b"{bad", headers=json_type)
        assert _checked(validator, malformed, 400)["code"] == "malformed_json"

    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.profiles, "get_json", explode)
    assert _checked(validator, client.get("/v1/profiles/u1"), 500)["code"] == "internal_error"


def test_the_access_problems_match_the_declared_schema(keyed: TestClient) -> None:
    validator = _problem_validator(keyed)
    assert _checked(validator, keyed.get("/v1/items", headers={"X-API-Key": ""}), 401)
    assert _checked(validator, keyed.get("/v1/quarantine"), 403)
    limited = keyed.get("/v1/quarantine")
    assert _checked(validator, limited, 429)["retry_after"] == int(limited.headers["retry-after"])


def test_every_code_is_documented_under_its_status(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    descriptions: dict[str, str] = {}
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for status, response in operation["responses"].items():
                descriptions[status] = response["description"]
    pending: list[type[PersonaError]] = [PersonaError]
    while pending:
        error = pending.pop()
        pending.extend(error.__subclasses__())
        assert re.fullmatch(r"[a-z_]+", error.code), error
        assert f"`{error.code}`" in descriptions[str(error.status)], error
