"""POST /v1/events: outcomes per event, dedupe, conflicts, quarantine, limits."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from persona.engine import Engine
from tests.conftest import NOW_MS
from tests.helpers import quarantine_count, stored_event_count, view


def post(client: TestClient, body: Any) -> Any:
    response = client.post("/v1/events", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    assert {"type", "title", "detail", "request_id"} <= set(body)
    assert "Traceback" not in response.text
    return body


def test_a_single_event_gets_a_server_id(client: TestClient, engine: Engine) -> None:
    answer = post(client, view(None))
    assert answer["accepted"] == 1
    event_id = answer["events"][0]["event_id"]
    assert event_id and answer["events"][0]["status"] == "accepted"
    with engine.storage.read() as uow:
        stored = uow.events.get(event_id)
    assert (
        stored is not None and stored.user_id == "u1" and stored.occurred_at_ms == 1_700_000_000_000
    )


def test_posting_the_same_batch_twice_stores_each_event_once(
    client: TestClient, engine: Engine
) -> None:
    batch = [view(f"e{i}", item=f"i{i}") for i in range(5)]
    first = post(client, batch)
    second = post(client, batch)
    assert (first["accepted"], first["duplicates"]) == (5, 0)
    assert (second["accepted"], second["duplicates"], second["rejected"]) == (0, 5, 0)
    assert {e["status"] for e in second["events"]} == {"duplicate"}
    assert stored_event_count(engine) == 5
    profile = client.get("/v1/profiles/u1").json()
    assert profile["counts"] == {"view": 5}


def test_same_id_other_payload_is_quarantined_as_a_conflict(
    client: TestClient, engine: Engine
) -> None:
    post(client, view("e1", item="i1"))
    answer = post(client, view("e1", item="i2"))
    outcome = answer["events"][0]
    assert outcome["status"] == "rejected" and outcome["code"] == "event_id_conflict"
    with engine.storage.read() as uow:
        assert uow.events.get("e1").item_id == "i1"  # type: ignore[union-attr]
        entries = uow.quarantine.list(after_id=0, limit=10)
    assert [e.code for e in entries] == ["event_id_conflict"]
    assert orjson.loads(entries[0].raw)["item_id"] == "i2"


def test_a_batch_mixing_stored_and_new_events_counts_only_the_new(
    client: TestClient, engine: Engine
) -> None:
    """Ingest stores a batch at once on the assumption that its events are new; those stored
    before are then set aside as duplicates or conflicts, and only the others are folded."""
    post(client, [view("e1", item="i1"), view("e2", item="i2")])
    answer = post(
        client,
        [view("e1", item="i1"), view("e3", item="i3"), view("e2", item="x"), view("e4", item="i4")],
    )
    assert [e["status"] for e in answer["events"]] == [
        "duplicate",
        "accepted",
        "rejected",
        "accepted",
    ]
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (2, 1, 1)
    assert answer["events"][2]["code"] == "event_id_conflict"
    assert stored_event_count(engine) == 4 and quarantine_count(engine) == 1
    profile = client.get("/v1/profiles/u1").json()
    assert profile["counts"] == {"view": 4}
    assert {r["item_id"] for r in profile["recent_items"]} == {"i1", "i2", "i3", "i4"}


def test_a_stored_anonymous_event_in_a_batch_with_its_identify(client: TestClient) -> None:
    def anonymous(event_id: str, ts: int) -> dict[str, Any]:
        return {"event_id": event_id, "type": "view", "anonymous_id": "v", "timestamp": ts}

    post(client, anonymous("a1", 1_700_000_000))
    identify = {
        "event_id": "id1",
        "type": "identify",
        "user_id": "carol",
        "anonymous_id": "v",
        "timestamp": 1_700_000_010,
    }
    answer = post(
        client, [anonymous("a1", 1_700_000_000), identify, anonymous("a2", 1_700_000_020)]
    )
    assert [e["status"] for e in answer["events"]] == ["duplicate", "accepted", "accepted"]
    carol = client.get("/v1/profiles/carol").json()
    assert carol["counts"] == {"identify": 1, "view": 2}
    assert carol["aliases"] == ["v"]


def test_duplicates_and_conflicts_inside_one_batch(client: TestClient) -> None:
    answer = post(client, [view("e1"), view("e1"), view("e1", item="other")])
    assert [e["status"] for e in answer["events"]] == ["accepted", "duplicate", "rejected"]
    assert answer["events"][2]["code"] == "event_id_conflict"


def test_one_bad_event_does_not_sink_the_batch(client: TestClient, engine: Engine) -> None:
    batch = [
        view("ok1"),
        {"type": "view", "item_id": "x"},
        view("ok2", ts="not a time"),
        view("ok3", value="NaN"),
        "not an object",
        view("ok4", unexpected=1),
        view("ok5"),
    ]
    answer = post(client, batch)
    outcomes = answer["events"]
    assert [o["status"] for o in outcomes] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert [o.get("code") for o in outcomes[1:6]] == [
        "missing_identity",
        "invalid_timestamp",
        "invalid_field",
        "invalid_event",
        "unknown_field",
    ]
    assert outcomes[2]["path"] == "timestamp" and outcomes[5]["path"] == "unexpected"
    assert stored_event_count(engine) == 2
    entries = client.get("/v1/quarantine").json()["entries"]
    assert [e["batch_index"] for e in entries] == [1, 2, 3, 4, 5]
    assert all(e["raw"] and e["message"] and e["received_at"] for e in entries)


def test_events_too_far_in_the_future_are_quarantined_and_late_ones_accepted(
    client: TestClient,
) -> None:
    now_s = NOW_MS / 1000
    answer = post(
        client,
        [
            view("future", ts=now_s + 3600),
            view("soon", ts=now_s + 60),
            view("late", ts=now_s - 86400 * 400),
        ],
    )
    assert [e["status"] for e in answer["events"]] == ["rejected", "accepted", "accepted"]
    assert answer["events"][0]["code"] == "future_timestamp"


def test_iso_and_unix_timestamps_mean_the_same_time(client: TestClient, engine: Engine) -> None:
    post(
        client,
        [
            view("a", ts="2023-11-14T22:13:20Z"),
            view("b", ts=1_700_000_000),
            view("c", ts="1700000000"),
        ],
    )
    with engine.storage.read() as uow:
        times = {uow.events.get(e).occurred_at_ms for e in "abc"}  # type: ignore[union-attr]
    assert times == {1_700_000_000_000}


def test_an_oversized_event_is_rejected_alone(client: TestClient) -> None:
    big = view("big", properties={"blob": "x" * 40_000})
    answer = post(client, [view("small"), big])
    assert [e["status"] for e in answer["events"]] == ["accepted", "rejected"]
    assert answer["events"][1]["code"] == "event_too_large"


@pytest.mark.parametrize(
    ("event", "code"),
    [
        (view("n1", properties={"k": "a\u0000b"}), "invalid_document"),
        (view("n2", user="a\u0000b"), "invalid_field"),
        (view("n3", properties={"k" * 300: 1}), "invalid_document"),
        (view("n4", value=1e300), "invalid_field"),
        (
            view("n5", properties={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}),
            "invalid_document",
        ),
        ({"type": "", "user_id": "u"}, "invalid_field"),
        ({"type": "view", "user_id": "u" * 200}, "invalid_field"),
        ({"type": "view", "anonymous_id": "a", "timestamp": True}, "invalid_timestamp"),
        ({"type": "view", "anonymous_id": "a", "timestamp": 1e20}, "invalid_timestamp"),
    ],
)
def test_hostile_values_are_rejected_with_a_code(
    client: TestClient, event: dict[str, Any], code: str
) -> None:
    answer = post(client, [event])
    assert answer["events"][0]["status"] == "rejected"
    assert answer["events"][0]["code"] == code


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b'"\\ud800"', 400, "malformed_json"),
        (b"[1e400]", 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b"42", 422, "invalid_request"),
        (b"[]", 422, "invalid_request"),
        (b'{"events": []}', 422, "invalid_request"),
        (b'{"events": [], "extra": 1}', 422, "invalid_request"),
    ],
)
def test_bad_bodies_get_one_problem_shape(
    client: TestClient, engine: Engine, body: bytes, status: int, code: str
) -> None:
    response = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
    assert_problem(response, status, code)
    assert stored_event_count(engine) == 0


def test_the_events_envelope_is_accepted(client: TestClient) -> None:
    assert post(client, {"events": [view("e1"), view("e2")]})["accepted"] == 2


def test_a_batch_over_the_limit_is_refused_whole(client: TestClient, engine: Engine) -> None:
    batch = [view(f"e{i}") for i in range(1001)]
    body = assert_problem(client.post("/v1/events", json=batch), 413, "batch_too_large")
    assert "1000" in body["detail"]
    assert stored_event_count(engine) == 0 and quarantine_count(engine) == 0


def test_a_body_over_the_limit_gets_413_and_stores_nothing(
    client: TestClient, engine: Engine
) -> None:
    filler = "x" * 1000
    batch = [view(f"e{i}", properties={"f": filler}) for i in range(6000)]
    body = orjson.dumps(batch[:1000]) * 6
    assert len(body) > 5 * 1024 * 1024
    assert_problem(client.post("/v1/events", content=body), 413, "payload_too_large")

    def chunks() -> Any:
        for _ in range(7):
            yield b"x" * (1024 * 1024)

    assert_problem(client.post("/v1/events", content=chunks()), 413, "payload_too_large")
    assert stored_event_count(engine) == 0


def test_replay_of_a_fixed_event_happens_once(client: TestClient, engine: Engine) -> None:
    post(client, [{"event_id": "bad", "type": "view", "item_id": "i1"}])
    entry = client.get("/v1/quarantine").json()["entries"][0]
    qid = entry["quarantine_id"]
    fixed = {"event_id": "bad", "type": "view", "item_id": "i1", "user_id": "u9"}
    answer = client.post(f"/v1/quarantine/{qid}/replay", json=fixed).json()
    assert answer["events"][0]["status"] == "accepted"
    assert_problem(client.post(f"/v1/quarantine/{qid}/replay", json=fixed), 409, "conflict")
    entry = client.get("/v1/quarantine").json()["entries"][0]
    assert entry["replayed_event_id"] == "bad" and entry["replayed_at"]
    assert stored_event_count(engine) == 1
    assert_problem(client.post("/v1/quarantine/999/replay"), 404, "not_found")


def test_a_replay_that_is_still_invalid_leaves_the_entry_open(client: TestClient) -> None:
    post(client, [{"type": "view"}])
    qid = client.get("/v1/quarantine").json()["entries"][0]["quarantine_id"]
    answer = client.post(f"/v1/quarantine/{qid}/replay").json()
    assert answer["events"][0]["code"] == "missing_identity"
    entries = client.get("/v1/quarantine").json()["entries"]
    assert len(entries) == 1 and entries[0]["replayed_at"] is None


def test_quarantine_pages_and_bounds(client: TestClient) -> None:
    post(client, [{"type": "view"} for _ in range(5)])
    page = client.get("/v1/quarantine", params={"limit": 2}).json()
    assert len(page["entries"]) == 2 and page["next_after"] is not None
    rest = client.get("/v1/quarantine", params={"after": page["next_after"], "limit": 10}).json()
    assert len(rest["entries"]) == 3 and rest["next_after"] is None
    assert_problem(client.get("/v1/quarantine", params={"limit": 5000}), 422, "invalid_request")


def test_metrics_count_outcomes_and_routes(client: TestClient) -> None:
    post(client, [view("e1"), view("e1"), {"type": "x"}])
    text = client.get("/metrics").text
    assert 'persona_events_total{outcome="accepted"} 1.0' in text
    assert 'persona_events_total{outcome="duplicate"} 1.0' in text
    assert 'persona_events_total{outcome="rejected"} 1.0' in text
    assert 'persona_http_requests_total{method="POST",route="/v1/events",status="200"} 1.0' in text
    assert "persona_profile_updates_total 1.0" in text


def test_a_whole_number_id_is_its_decimal_text(client: TestClient, engine: Engine) -> None:
    """Ids are text; a JSON integer stands for its decimal text, so 42 and "42" are one person,
    and the same event sent with either is a duplicate."""
    first = post(
        client,
        {"event_id": 7, "type": "view", "user_id": 42, "item_id": 1, "anonymous_id": -3},
    )
    assert first["events"][0] == {"index": 0, "status": "accepted", "event_id": "7"}
    again = post(
        client,
        {"event_id": "7", "type": "view", "user_id": "42", "item_id": "1", "anonymous_id": "-3"},
    )
    assert again["events"][0]["status"] == "duplicate"
    post(client, {"type": "purchase", "user_id": "42", "item_id": 2.0, "value": 5})
    with engine.storage.read() as uow:
        stored = uow.events.get("7")
    assert stored is not None
    assert (stored.user_id, stored.anonymous_id, stored.item_id) == ("42", "-3", "1")
    profile = client.get("/v1/profiles/42").json()
    assert profile["counts"] == {"view": 1, "purchase": 1}
    assert {r["item_id"] for r in profile["recent_items"]} == {"1", "2"}


@pytest.mark.parametrize("field", ["event_id", "user_id", "anonymous_id", "item_id"])
@pytest.mark.parametrize("value", [True, 4.5, {"id": 1}, [1], 10**130, 123456789012345678901234])
def test_ids_that_are_not_text_or_whole_numbers_are_rejected(
    client: TestClient, field: str, value: Any
) -> None:
    event = {"type": "view", "user_id": "u1", "anonymous_id": "v1", field: value}
    # the standard json module writes integers of any size (orjson stops at 64 bits)
    response = client.post("/v1/events", content=json.dumps(event))
    assert response.status_code == 200, response.text
    outcome = response.json()["events"][0]
    assert outcome["status"] == "rejected", outcome
    assert (outcome["code"], outcome["path"]) == ("invalid_field", field)
