"""Strange but valid input never gets a 500: it is stored faithfully or refused with a 422.

The rule, the same for every route: text is stored as sent, control characters and characters
beyond the Basic Multilingual Plane included, except where a field's pattern refuses them (ids,
categories, tags, names: no control characters) and except what no store can keep: NUL
characters, and lone surrogate escapes (``"\\ud800"``, half of a UTF-16 pair), which are not text.
Each regression below was a 500 found by fuzzing the API from its OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from persona.engine import Engine

LONE = '"\\ud800"'  # JSON for a lone surrogate: json.dumps cannot write it, so bodies are raw
JSON = {"content-type": "application/json"}


def _raw(client: TestClient, method: str, path: str, body: str) -> Any:
    return client.request(method, path, content=body.encode(), headers=JSON)


def _refused(response: Any, code: str = "invalid_request") -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


@pytest.mark.parametrize(
    "fields",
    [
        '"title": ' + LONE,
        '"categories": [' + LONE + "]",
        '"tags": ["ok", ' + LONE + "]",
        '"attributes": {' + LONE + ": 1}",
        '"attributes": {"k": ["x", ' + LONE + "]}",
        '"attributes": {"k": {"\\udfff x": 1}}',
    ],
)
def test_lone_surrogates_in_items_are_refused(client: TestClient, fields: str) -> None:
    batch = '{"items": [{"item_id": "i1", ' + fields + "}]}"
    assert _refused(_raw(client, "POST", "/v1/items", batch))["errors"][0]["path"].startswith(
        "body.items.0."
    )
    _refused(_raw(client, "PUT", "/v1/items/i1", "{" + fields + "}"))
    _refused(_raw(client, "POST", "/v1/items", '{"items": [{"item_id": ' + LONE + "}]}"))
    assert client.get("/v1/items").json()["items"] == []


def test_a_lone_surrogate_says_what_it_is(client: TestClient) -> None:
    body = '{"items": [{"item_id": "i1", "attributes": {"a": ' + LONE + "}}]}"
    error = _refused(_raw(client, "POST", "/v1/items", body))["errors"][0]
    assert error["type"] == "invalid_document" and "lone surrogate" in error["message"]
    assert error["path"] == "body.items.0.attributes"


def test_control_and_astral_characters_are_stored_faithfully(client: TestClient) -> None:
    item = {
        "item_id": "🎬-\u00e9-1",
        "title": "tab\there\x01\x1f\x7f 🎬 \U0010fffd",
        "categories": ["🎬 films", "\u00e9t\u00e9"],
        "tags": ["\U0001f600"],
        "attributes": {"\x01key 🎬": "\x02value\n🎬", "nested": {"\U0001f600": ["\x1b"]}},
    }
    assert client.post("/v1/items", json={"items": [item]}).status_code == 200
    stored = client.get("/v1/items/%F0%9F%8E%AC-%C3%A9-1").json()
    assert {key: stored[key] for key in item} == item
    fields = {key: value for key, value in item.items() if key != "item_id"}
    assert client.put("/v1/items/\U0001f600", json=fields).status_code == 200
    assert client.get("/v1/items/\U0001f600").json()["attributes"] == item["attributes"]


@pytest.mark.parametrize("field", ["item_id", "categories", "tags"])
def test_control_characters_in_ids_and_labels_are_refused(client: TestClient, field: str) -> None:
    value: Any = "a\x01b" if field == "item_id" else ["a\x01b"]
    item = {"item_id": "i1", field: value}
    body = _refused(client.post("/v1/items", json={"items": [item]}))
    assert body["errors"][0]["type"] == "string_pattern_mismatch"


def test_traits_refuse_lone_surrogates_and_keep_the_rest(client: TestClient) -> None:
    _refused(_raw(client, "PUT", "/v1/users/u1/traits", "{" + LONE + ': "x"}'))
    _refused(_raw(client, "PUT", "/v1/users/u1/traits", '{"plan": [' + LONE + "]}"))
    traits = {"\x01plan 🎬": "gold\x02 \U0001f600"}
    assert client.put("/v1/users/u1/traits", json=traits).json()["traits"] == traits


def test_placement_payloads_refuse_lone_surrogates(client: TestClient) -> None:
    variant = '{"id": "a", "payload": {"title": ' + LONE + "}}"
    config = '{"name": "p1", "policy": "ab", "variants": [' + variant + "], "
    config += '"fallback": "a"}'
    body = _refused(_raw(client, "POST", "/v1/placements", config), "invalid_placement")
    assert body["errors"][0]["type"] == "invalid_document"
    assert client.get("/v1/placements").json()["placements"] == []


def test_events_with_lone_surrogates_are_not_json_to_ingest(client: TestClient) -> None:
    event = '{"type": "view", "user_id": "u1", "properties": {"a": ' + LONE + "}}"
    response = _raw(client, "POST", "/v1/events", event)
    assert response.status_code == 400 and response.json()["code"] == "malformed_json"


@pytest.mark.parametrize("epsilon", ["5e-324", "1e-300", "0.0009", "0", "-1", "10.5", "nan"])
def test_a_privacy_loss_outside_its_range_is_refused(
    client: TestClient, engine: Engine, epsilon: str
) -> None:
    segment = {"name": "s1", "rule": "profile.event_count >= 0"}
    assert client.post("/v1/segments", json=segment).status_code == 201
    _refused(client.get("/v1/segments/s1/size", params={"epsilon": epsilon}))
    _refused(client.get("/v1/experiments/x/results", params={"epsilon": epsilon}))


def test_the_smallest_privacy_loss_still_answers(client: TestClient) -> None:
    segment = {"name": "s1", "rule": "profile.event_count >= 0"}
    assert client.post("/v1/segments", json=segment).status_code == 201
    answer = client.get("/v1/segments/s1/size", params={"epsilon": "0.001"})
    assert answer.status_code == 200 and answer.json()["size"] >= 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/quarantine?after=24162623211985268899840"),
        ("GET", "/v1/audit?after=2147483648"),
        ("POST", "/v1/quarantine/9223372036854775808/replay"),
        ("POST", "/v1/quarantine/2147483648/replay"),
    ],
)
def test_ids_beyond_what_a_store_holds_are_refused(
    client: TestClient, method: str, path: str
) -> None:
    _refused(client.request(method, path))


def test_the_largest_id_a_store_holds_is_fine(client: TestClient) -> None:
    assert client.get("/v1/quarantine?after=2147483647").json()["entries"] == []
    assert client.get("/v1/audit?after=2147483647").json()["entries"] == []
    assert client.post("/v1/quarantine/2147483647/replay").status_code == 404
