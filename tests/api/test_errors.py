"""One error shape for every failure, and 500s that reveal only a request id."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from persona.engine import Engine


def test_unknown_route_and_method(client: TestClient) -> None:
    missing = client.get("/v1/nothing")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert missing.headers["content-type"].startswith("application/problem+json")
    wrong = client.delete("/v1/events")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"


def test_an_unhandled_error_shows_only_a_request_id(
    client: TestClient,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(engine.profiles, "get_json", explode)
    with caplog.at_level(logging.ERROR):
        response = client.get("/v1/profiles/u1", headers={"x-request-id": "req-42"})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and body["request_id"] == "req-42"
    assert "secret internal detail" not in response.text and "Traceback" not in response.text
    assert "secret internal detail" in caplog.text  # the details go to the log


def test_request_ids_are_echoed_or_made(client: TestClient) -> None:
    assert (
        client.get("/healthz", headers={"x-request-id": "abc-1"}).headers["x-request-id"] == "abc-1"
    )
    made = client.get("/healthz", headers={"x-request-id": "bad id with spaces"}).headers[
        "x-request-id"
    ]
    assert made != "bad id with spaces" and len(made) == 32


def test_validation_errors_do_not_echo_input(client: TestClient) -> None:
    response = client.put("/v1/items/i1", json={"price": "sneaky-value-123"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_request" and body["errors"][0]["path"] == "body.price"
    assert "sneaky-value-123" not in response.text


def test_path_ids_are_bounded(client: TestClient) -> None:
    assert client.get("/v1/profiles/" + "x" * 200).status_code == 422
    assert client.get("/v1/items/a%00b").status_code == 422
