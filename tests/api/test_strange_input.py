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


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 2**70])
def test_integers_beyond_64_bits_in_documents_are_refused(client: TestClient, number: int) -> None:
    item = {"item_id": "i1", "attributes": {"n": [number]}}
    error = _refused(client.post("/v1/items", json={"items": [item]}))["errors"][0]
    assert error["type"] == "invalid_document" and "64 bits" in error["message"]
    _refused(client.put("/v1/users/u1/traits", json={"n": {"deep": number}}))
    variant = {"id": "a", "payload": {"n": number}}
    config = {"name": "p1", "policy": "ab", "variants": [variant]}
    _refused(client.post("/v1/placements", json=config), "invalid_placement")


def test_integers_within_64_bits_are_stored_faithfully(client: TestClient) -> None:
    attributes = {"low": -(2**63), "high": 2**64 - 1}
    assert client.put("/v1/items/i1", json={"attributes": attributes}).status_code == 200
    assert client.get("/v1/items/i1").json()["attributes"] == attributes


def test_a_rule_priority_is_bounded(client: TestClient) -> None:
    variant = {"id": "a", "priority": 2**70}
    config = {"name": "p1", "policy": "rules", "variants": [variant]}
    body = _refused(client.post("/v1/placements", json=config), "invalid_placement")
    assert body["errors"][0]["path"] == "variants.0.priority"


@pytest.mark.parametrize(
    "created_at",
    ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.9999Z", "9999-12-31T20:00-14:00"],
)
def test_creation_times_that_are_no_date_in_utc_are_refused(
    client: TestClient, created_at: str
) -> None:
    error = _refused(client.put("/v1/items/i1", json={"created_at": created_at}))["errors"][0]
    assert error["type"] == "invalid_timestamp"
    assert client.get("/v1/items").json()["items"] == []  # nothing stored that reads back badly


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z"])
def test_the_earliest_and_latest_creation_times_read_back(
    client: TestClient, created_at: str
) -> None:
    assert client.put("/v1/items/i1", json={"created_at": created_at}).status_code == 200
    assert client.get("/v1/items/i1").json()["created_at"].startswith(created_at[:19])
    assert len(client.get("/v1/items").json()["items"]) == 1


# NUL characters: PostgreSQL cannot store them in text, so they are refused wherever free text
# arrives (each of these was a 500 on PostgreSQL only).

NUL = "a\x00b"
PLACEMENT = {"name": "p1", "policy": "ab", "variants": [{"id": "a"}]}


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": NUL, "placements": ["p1"]},
        {"anonymous_id": NUL, "placements": ["p1"]},
        {"user_id": "u1", "placements": ["p1", NUL]},
        {"user_id": "u1", "placements": ["p1"], "context": {"device": NUL}},
        {"user_id": "u1", "placements": ["p1"], "context": {"country": NUL}},
        {"user_id": "u1", "placements": ["p1"], "context": {"page": NUL}},
    ],
)
def test_decisions_refuse_nul_characters(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/v1/placements", json=PLACEMENT).status_code == 201
    _refused(client.post("/v1/decisions", json=body))
    good = {"user_id": "u1", "placements": ["p1"], "context": {"device": "\x01📱"}}
    assert client.post("/v1/decisions", json=good).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v1/items?after=a%00b",
        "/v1/quarantine?code=a%00b",
        "/v1/segments/s1/members?after=a%00b",
        "/v1/users/u1/recommendations?device=a%00b",
        "/v1/users/u1/recommendations?country=a%00b",
        "/v1/users/u1/recommendations?category=a%00b",
        "/v1/users/u1/recommendations?placement=a%00b",
        "/v1/users/u1/recommendations?exclude=i1&exclude=a%00b",
    ],
)
def test_query_parameters_refuse_nul_characters(client: TestClient, path: str) -> None:
    segment = {"name": "s1", "rule": "profile.event_count >= 0"}
    assert client.post("/v1/segments", json=segment).status_code == 201
    _refused(client.get(path))


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    [
        ("POST", "/v1/segments", {"name": "s2", "rule": f'traits.plan = "{NUL}"'}, None),
        (
            "POST",
            "/v1/segments",
            {"name": "s2", "rule": "profile.sessions > 1", "description": NUL},
            None,
        ),
        ("PUT", "/v1/segments/s1", {"rule": f'did("{NUL}")'}, None),
        ("POST", "/v1/segments/preview", {"rule": f'context.device = "{NUL}"'}, None),
        (
            "POST",
            "/v1/predictions",
            {"name": "p", "event_type": "rate", "horizon_days": 7, "description": NUL},
            None,
        ),
        ("POST", "/v1/placements", {**PLACEMENT, "description": NUL}, "invalid_placement"),
        (
            "POST",
            "/v1/placements",
            {**PLACEMENT, "variants": [{"id": "a", "targeting": {"device": [NUL]}}]},
            "invalid_placement",
        ),
        (
            "POST",
            "/v1/placements",
            {**PLACEMENT, "variants": [{"id": "a", "targeting": {"segments": [NUL]}}]},
            "invalid_placement",
        ),
        (
            "PUT",
            "/v1/placements/p0",
            {"policy": "recommendations", "recommendations": {"category": NUL}},
            "invalid_placement",
        ),
        (
            "PUT",
            "/v1/placements/p0",
            {"policy": "recommendations", "recommendations": {"exclude": [NUL]}},
            "invalid_placement",
        ),
        (
            "PUT",
            "/v1/placements/p0",
            {
                "policy": "thompson",
                "variants": [{"id": "a"}],
                "thompson": {"bucket_by": "segment", "bucket_segments": [NUL]},
            },
            "invalid_placement",
        ),
    ],
)
def test_definitions_refuse_nul_characters(
    client: TestClient, method: str, path: str, body: dict[str, Any], code: str | None
) -> None:
    segment = {"name": "s1", "rule": "profile.event_count >= 0"}
    assert client.post("/v1/segments", json=segment).status_code == 201
    assert client.post("/v1/placements", json={**PLACEMENT, "name": "p0"}).status_code == 201
    _refused(client.request(method, path, json=body), code or "invalid_request")


def test_a_rejected_event_with_an_unstorable_id_or_key_is_quarantined(client: TestClient) -> None:
    events = [
        {"type": "view", "user_id": "u1", "event_id": "e" * 129},
        {"type": "view", "user_id": "u1", "event_id": NUL},
        {"type": "view", "user_id": "u1", NUL: 1},
        {"type": "view", "user_id": "u1", "k" * 600: 1},
    ]
    answer = client.post("/v1/events", json=events).json()
    assert [e["status"] for e in answer["events"]] == ["rejected"] * 4
    entries = client.get("/v1/quarantine").json()["entries"]
    assert [e["event_id"] for e in entries] == [None, None, None, None]
    assert entries[2]["code"] == "unknown_field" and entries[2]["path"] == "a\\u0000b"
    assert len(entries[3]["path"]) == 512 and entries[3]["raw"].count("k") >= 600


def _nested(depth: int) -> Any:
    document: Any = "leaf"
    for _ in range(depth):
        document = {"a": document}
    return document


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/v1/placements",
            {
                "name": "deep",
                "policy": "rules",
                "variants": [{"id": "a", "payload": _nested(300)}],
                "fallback": "a",
            },
        ),
        ("PUT", "/v1/users/deep/traits", _nested(300)),
        ("PUT", "/v1/items/deep", {"title": "t", "attributes": _nested(300)}),
    ],
)
def test_a_document_nested_300_deep_is_refused_not_a_server_error(
    client: TestClient, method: str, path: str, body: Any
) -> None:
    answer = client.request(method, path, json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_an_event_nested_300_deep_is_rejected_not_a_server_error(client: TestClient) -> None:
    event = {"type": "view", "user_id": "u", "properties": _nested(300)}
    answer = client.post("/v1/events", json=[event])
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected"] == 1
