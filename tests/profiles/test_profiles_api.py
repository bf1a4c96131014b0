"""Profiles through the API: visible at once, identity merges, order independence, traits."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from persona.engine import Engine
from tests.helpers import view

HOUR = 3600


def post(client: TestClient, body: Any) -> Any:
    response = client.post("/v1/events", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def items(client: TestClient) -> None:
    response = client.post(
        "/v1/items",
        json={
            "items": [
                {"item_id": "i1", "categories": ["drama"]},
                {"item_id": "i2", "categories": ["comedy", "drama"]},
                {"item_id": "i3", "categories": ["action"]},
            ]
        },
    )
    assert response.status_code == 200, response.text


def test_profile_is_current_when_ingest_returns(client: TestClient) -> None:
    items(client)
    t0 = 1_700_000_000
    post(
        client,
        [
            view("e1", item="i1", ts=t0, context={"device": "mobile", "country": "DE"}),
            view("e2", item="i2", ts=t0 + 60),
            {
                "event_id": "e3",
                "type": "purchase",
                "user_id": "u1",
                "item_id": "i3",
                "timestamp": t0 + 2 * HOUR,
                "value": 19.99,
                "context": {"device": "desktop", "country": "FR"},
            },
            {
                "event_id": "e4",
                "type": "add_to_cart",
                "user_id": "u1",
                "item_id": "i1",
                "timestamp": t0 + 3 * HOUR,
            },
        ],
    )
    profile = client.get("/v1/profiles/u1").json()
    assert profile["kind"] == "user" and profile["event_count"] == 4
    assert profile["counts"] == {"add_to_cart": 1, "purchase": 1, "view": 2}
    assert profile["first_seen_at"] == "2023-11-14T22:13:20Z"
    assert profile["session_count"] == 3  # gaps of 2 h and 1 h
    assert profile["rfm"]["frequency"] == 1 and profile["rfm"]["monetary"] == 19.99
    assert profile["rfm"]["recency_days"] > 700
    assert profile["last_context"] == {"device": "desktop", "country": "FR"}
    assert [r["item_id"] for r in profile["recent_items"]] == ["i1", "i3", "i2"]
    # purchase (weight 5) of an action film; drama: view 1 + half of a view 0.5 + cart 3
    affinities = profile["category_affinities"]
    assert list(affinities) == ["action", "drama", "comedy"]
    decay = lambda hours: 2 ** (-hours / (30 * 24))  # noqa: E731 - 30-day half-life, at the newest event
    assert affinities["drama"] == pytest.approx(
        1 * decay(3) + 0.5 * decay(3 - 1 / 60) + 3, rel=1e-5
    )
    assert affinities["comedy"] == pytest.approx(0.5 * decay(3 - 1 / 60), rel=1e-5)


def test_identify_merges_anonymous_history_and_routes_later_events(
    client: TestClient, engine: Engine
) -> None:
    t0 = 1_700_000_000
    post(
        client,
        [
            {
                "event_id": "a1",
                "type": "view",
                "anonymous_id": "anon",
                "item_id": "i1",
                "timestamp": t0,
            },
            {
                "event_id": "a2",
                "type": "view",
                "anonymous_id": "anon",
                "item_id": "i2",
                "timestamp": t0 + 10,
            },
        ],
    )
    assert client.get("/v1/profiles/anon").json()["kind"] == "anonymous"
    post(client, view("k1", user="alice", item="i3", ts=t0 + 20))
    post(
        client,
        {
            "event_id": "id1",
            "type": "identify",
            "user_id": "alice",
            "anonymous_id": "anon",
            "timestamp": t0 + 30,
        },
    )
    post(
        client,
        {
            "event_id": "a3",
            "type": "click",
            "anonymous_id": "anon",
            "item_id": "i1",
            "timestamp": t0 + 40,
        },
    )

    alice = client.get("/v1/profiles/alice").json()
    assert alice["counts"] == {"click": 1, "identify": 1, "view": 3}
    assert alice["aliases"] == ["anon"]
    assert client.get("/v1/profiles/anon").json()["profile_id"] == "alice"
    with engine.storage.read() as uow:
        history = {e.event_id for e in uow.events.for_profile("u:alice", 100)}
        assert uow.profiles.load(["a:anon"]) == {}
    assert history == {"a1", "a2", "k1", "id1", "a3"}


def _profile_without_clock_fields(client: TestClient, user: str) -> dict[str, Any]:
    profile: dict[str, Any] = client.get(f"/v1/profiles/{user}").json()
    for field in ("updated_at", "category_affinities"):
        profile.pop(field)
    return profile


def scenario() -> list[dict[str, Any]]:
    t0 = 1_700_000_000
    rng = random.Random(7)
    events: list[dict[str, Any]] = []
    for i in range(60):
        who = {"anonymous_id": "anon"} if i % 3 == 0 else {"user_id": "bob"}
        kind = rng.choice(["view", "view", "click", "purchase", "add_to_cart"])
        event = {
            "event_id": f"e{i}",
            "type": kind,
            "item_id": rng.choice(["i1", "i2", "i3"]),
            "timestamp": t0 + rng.randint(0, 3 * 86400),
            "context": {"device": rng.choice(["m", "d"])},
            **who,
        }
        if kind == "purchase":
            event["value"] = round(rng.uniform(1, 50), 2)
        events.append(event)
    events.append(
        {
            "event_id": "link",
            "type": "identify",
            "user_id": "bob",
            "anonymous_id": "anon",
            "timestamp": t0 + 86400,
        }
    )
    return events


def test_the_same_events_in_any_order_give_the_same_profile(
    tmp_path: Any, database_url: str, clock: Any
) -> None:
    from persona.api.app import create_app
    from tests.conftest import open_engine

    events = scenario()
    results = []
    for attempt, seed in enumerate([None, 1, 2]):
        ordered = list(events)
        if seed is not None:
            random.Random(seed).shuffle(ordered)
        home = tmp_path / f"run{attempt}"
        url = database_url if attempt == 0 else None
        engine = open_engine(home, url or f"sqlite:///{home / 'p.db'}", clock)
        with TestClient(create_app(engine)) as client:
            items(client)
            for start in range(
                0, len(ordered), 7
            ):  # several batches, identify somewhere among them
                post(client, ordered[start : start + 7])
            post(client, ordered[:20])  # replays change nothing
            results.append(
                (
                    _profile_without_clock_fields(client, "bob"),
                    client.get("/v1/profiles/bob").json()["category_affinities"],
                )
            )
        engine.close()
    base, base_affinity = results[0]
    assert base["event_count"] == 61
    for other, affinity in results[1:]:
        assert other == base
        assert affinity.keys() == base_affinity.keys()
        for name, score in affinity.items():
            assert abs(score - base_affinity[name]) < 1e-6


def test_traits_are_replaced_and_never_touch_aggregates(client: TestClient) -> None:
    post(client, view("e1", user="carol"))
    response = client.put("/v1/users/carol/traits", json={"plan": "gold", "email_opt_in": True})
    assert response.status_code == 200 and response.json()["traits"] == {
        "plan": "gold",
        "email_opt_in": True,
    }
    client.put("/v1/users/carol/traits", json={"plan": "silver"})
    post(client, view("e2", user="carol"))
    profile = client.get("/v1/profiles/carol").json()
    assert profile["traits"] == {"plan": "silver"} and profile["event_count"] == 2
    # traits create a profile for someone never seen
    assert client.put("/v1/users/dave/traits", json={"tier": 1}).json()["event_count"] == 0


def test_traits_reject_bad_documents_and_server_fields_are_not_writable(client: TestClient) -> None:
    assert client.put("/v1/users/x/traits", json=[1, 2]).status_code == 422
    assert client.put("/v1/users/x/traits", json={"k": "a\u0000"}).json()["code"] in {
        "invalid_request",
        "invalid_document",
    }
    assert client.put("/v1/users/x/traits", json={"k": "a\u0000"}).status_code == 422
    profile = client.put(
        "/v1/users/x/traits", json={"event_count": 999, "segments": ["vip"]}
    ).json()
    assert profile["event_count"] == 0 and profile["traits"] == {
        "event_count": 999,
        "segments": ["vip"],
    }


def test_unknown_profile_is_404(client: TestClient) -> None:
    response = client.get("/v1/profiles/nobody")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
