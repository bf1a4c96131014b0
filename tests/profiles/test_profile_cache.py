"""Profile reads come from a cache that every committed change of the person drops."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from persona.clock import FakeClock
from persona.engine import Engine
from persona.profiles.schema import Profile
from tests.helpers import view


def post(client: TestClient, events: list[dict[str, Any]]) -> None:
    response = client.post("/v1/events", json=events)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


def profile(client: TestClient, person: str) -> dict[str, Any]:
    response = client.get(f"/v1/profiles/{person}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def reads(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The people whose profile was read from the database (a cache miss each)."""
    missed: list[str] = []
    read = engine.profiles._read

    def counting(person_id: str) -> Any:
        missed.append(person_id)
        return read(person_id)

    monkeypatch.setattr(engine.profiles, "_read", counting)
    return missed


def test_the_answer_is_what_the_profile_model_writes(client: TestClient, engine: Engine) -> None:
    client.put("/v1/items/i1", json={"title": "One", "categories": ["drama"]})
    client.post("/v1/segments", json={"name": "buyers", "rule": "count(purchase) >= 1"})
    purchase = {"type": "purchase", "user_id": "u1", "item_id": "i1", "value": 12.5}
    post(
        client,
        [
            view("e1", ts=1_700_000_000.123, context={"device": "mobile"}),
            {**purchase, "event_id": "e2", "timestamp": 1_700_000_100},
        ],
    )
    client.put("/v1/users/u1/traits", json={"plan": "gold", "age": 41})
    answer = engine.profiles.get_json("u1")
    model = Profile.model_validate_json(answer)
    assert orjson.loads(answer) == orjson.loads(model.model_dump_json())
    assert orjson.loads(answer)["first_seen_at"] == "2023-11-14T22:13:20.123000Z"
    assert model.segments == ["buyers"] and model.traits == {"plan": "gold", "age": 41}
    assert [r.item_id for r in model.recent_items] == ["i1"]


def test_a_second_read_does_not_touch_the_database(client: TestClient, reads: list[str]) -> None:
    post(client, [view("e1")])
    first = profile(client, "u1")
    assert profile(client, "u1") == first
    assert reads == ["u1"]


def test_every_committed_event_of_the_person_shows_at_once(
    client: TestClient, reads: list[str]
) -> None:
    post(client, [view("e1"), view("o1", user="other")])
    profile(client, "u1")
    profile(client, "other")
    post(client, [view("e2", ts=1_700_000_060)])
    assert profile(client, "u1")["event_count"] == 2
    assert profile(client, "other")["event_count"] == 1
    assert reads == ["u1", "other", "u1"]  # the other person's read stayed cached


def test_an_anonymous_id_read_follows_its_merge(client: TestClient) -> None:
    post(client, [{"event_id": "a1", "type": "view", "anonymous_id": "anon", "item_id": "i1"}])
    assert profile(client, "anon")["kind"] == "anonymous"
    post(client, [{"event_id": "id1", "type": "identify", "anonymous_id": "anon", "user_id": "u9"}])
    merged = profile(client, "anon")
    assert (merged["profile_id"], merged["aliases"]) == ("u9", ["anon"])


def test_traits_segments_and_erasure_show_at_once(client: TestClient) -> None:
    post(client, [view("e1")])
    assert profile(client, "u1")["segments"] == []
    assert client.put("/v1/users/u1/traits", json={"plan": "gold"}).status_code == 200
    assert profile(client, "u1")["traits"] == {"plan": "gold"}
    created = client.post("/v1/segments", json={"name": "viewers", "rule": "count(view) >= 1"})
    assert created.status_code == 201, created.text
    assert profile(client, "u1")["segments"] == ["viewers"]  # a write of unknown people: all
    assert client.delete("/v1/subjects/u1").status_code == 200
    assert client.get("/v1/profiles/u1").status_code == 404


def test_decisions_keep_the_cached_profiles(
    client: TestClient, engine: Engine, reads: list[str]
) -> None:
    placement = {
        "name": "hero",
        "policy": "rules",
        "variants": [{"id": "a", "payload": {"title": "A"}}],
    }
    assert client.post("/v1/placements", json=placement).status_code == 201
    post(client, [view("e1")])
    profile(client, "u1")
    reads.clear()
    body = {"user_id": "u1", "placements": ["hero"]}
    assert client.post("/v1/decisions", json=body).status_code == 200
    profile(client, "u1")
    assert reads == []  # the decision log's commit declared that it changes no profile


def test_day_counts_are_computed_at_each_read(client: TestClient, clock: FakeClock) -> None:
    post(client, [view("e1")])
    before = profile(client, "u1")["days_since_last_seen"]
    clock.advance(3 * 86_400)
    assert profile(client, "u1")["days_since_last_seen"] == pytest.approx(before + 3)


def test_a_read_that_raced_a_commit_is_not_kept(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(client, [view("e1")])
    read = engine.profiles._read

    def read_then_commit(person_id: str) -> Any:
        found = read(person_id)  # read before the commit below, returned after it
        engine.ingest.ingest([view("e2", ts=1_700_000_060)])
        return found

    monkeypatch.setattr(engine.profiles, "_read", read_then_commit)
    assert profile(client, "u1")["event_count"] == 1
    monkeypatch.setattr(engine.profiles, "_read", read)
    assert profile(client, "u1")["event_count"] == 2
