"""Erasure acts on the person as persona resolved them: user ids and anonymous ids live in
their own namespaces, and the same text in the other namespace is somebody else."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from persona.clock import FakeClock
from persona.engine import Engine
from tests.conftest import NOW_MS

TS = NOW_MS // 1000 - 3_600


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"e-{n}", "type": "view", "item_id": f"i{n}", "timestamp": TS + n, **fields}


def _events_of(engine: Engine, profile_key: str) -> int:
    with engine.storage.read() as uow:
        return len(uow.subjects.export([profile_key]).events)


def test_an_anonymous_id_that_is_another_users_id_does_not_erase_that_user(
    engine: Engine, client: TestClient
) -> None:
    """An identify event linking anonymous id "5" to user "attacker1" makes a:5 attacker1's;
    user 5 is another person, and erasing attacker1 leaves every trace of user 5 in place."""
    victim = [_event(n, user_id="5") for n in range(3)]
    claim = {**_event(10, user_id="attacker1", anonymous_id="5"), "type": "identify"}
    assert client.post("/v1/events", json=[*victim, claim]).json()["accepted"] == 4
    assert client.put("/v1/users/5/traits", json={"plan": "gold"}).status_code == 200

    answer = client.delete("/v1/subjects/attacker1")
    assert answer.status_code == 200, answer.text

    assert _events_of(engine, "u:5") == 3
    assert client.get("/v1/profiles/5").json()["traits"]["plan"] == "gold"
    later = client.post("/v1/events", json=[_event(20, user_id="5")]).json()
    assert later["accepted"] == 1, later
    # the anonymous id linked to attacker1 was theirs, and is refused now
    theirs = client.post("/v1/events", json=[_event(21, anonymous_id="5")]).json()
    assert theirs["events"][0]["code"] == "subject_erased", theirs
    gone = client.post("/v1/events", json=[_event(22, user_id="attacker1")]).json()
    assert gone["events"][0]["code"] == "subject_erased", gone


def test_a_user_and_an_anonymous_visitor_with_the_same_id_are_two_people(
    engine: Engine, client: TestClient
) -> None:
    same = "x-1"
    events = [_event(1, user_id=same), _event(2, anonymous_id=same)]
    assert client.post("/v1/events", json=events).json()["accepted"] == 2

    ambiguous = client.delete(f"/v1/subjects/{same}")
    assert ambiguous.status_code == 409
    assert ambiguous.json()["code"] == "ambiguous_subject"
    assert _events_of(engine, f"u:{same}") == 1 and _events_of(engine, f"a:{same}") == 1

    answer = client.delete(f"/v1/subjects/{same}", params={"id_type": "anonymous"})
    assert answer.status_code == 200, answer.text
    assert _events_of(engine, f"a:{same}") == 0
    assert _events_of(engine, f"u:{same}") == 1
    again = client.post("/v1/events", json=[_event(3, user_id=same)]).json()
    assert again["accepted"] == 1, again
    refused = client.post("/v1/events", json=[_event(4, anonymous_id=same)]).json()
    assert refused["events"][0]["code"] == "subject_erased"


def test_an_anonymous_visitor_is_erased_by_their_id_alone(
    engine: Engine, client: TestClient
) -> None:
    assert client.post("/v1/events", json=[_event(1, anonymous_id="v-9")]).json()["accepted"]
    assert client.delete("/v1/subjects/v-9").status_code == 200
    assert _events_of(engine, "a:v-9") == 0


def test_quarantined_rows_of_another_person_survive_an_erasure(
    engine: Engine, client: TestClient
) -> None:
    """The quarantine holds raw payloads; an erasure deletes those that name the person in
    their own namespace, exactly, whatever the case of other ids or their JSON type."""
    future = TS + 30 * 86_400
    rows = [
        {"type": "view", "user_id": "CaseX", "timestamp": future},  # the person
        {"type": "view", "user_id": 9990001, "timestamp": future},  # the person, as a number
        {"type": "view", "user_id": "casex", "timestamp": future},  # someone else
        {"type": "view", "anonymous_id": "CaseX", "timestamp": future},  # someone else
    ]
    assert client.post("/v1/events", json=rows).json()["rejected"] == 4
    assert client.post("/v1/events", json=[_event(1, user_id="CaseX")]).json()["accepted"]
    assert client.post("/v1/events", json=[_event(2, user_id="9990001")]).json()["accepted"]

    assert client.delete("/v1/subjects/CaseX", params={"id_type": "user"}).status_code == 200
    assert client.delete("/v1/subjects/9990001").status_code == 200

    left = client.get("/v1/quarantine").json()["entries"]
    raws = sorted(entry["raw"] for entry in left)
    assert len(raws) == 2, raws
    assert any('"casex"' in raw for raw in raws)
    assert any('"anonymous_id":"CaseX"' in raw.replace(" ", "") for raw in raws)


def test_an_id_an_event_merely_carries_is_not_adopted(engine: Engine, client: TestClient) -> None:
    """Only identify links an anonymous id to a user; a view that carries both ids is filed
    under the user, and the visitor with that anonymous id stays someone else."""
    visitor = _event(1, anonymous_id="v-1")
    carried = _event(2, user_id="u-1", anonymous_id="v-1")
    assert client.post("/v1/events", json=[visitor, carried]).json()["accepted"] == 2
    assert client.delete("/v1/subjects/u-1").status_code == 200
    assert _events_of(engine, "u:u-1") == 0 and _events_of(engine, "a:v-1") == 1
    later = client.post("/v1/events", json=[_event(3, anonymous_id="v-1")]).json()
    assert later["accepted"] == 1, later


def test_a_tombstone_from_before_namespaces_still_refuses_the_id(
    engine: Engine, client: TestClient, clock: FakeClock
) -> None:
    """Tombstones written before ids had namespaces hold the hash of the bare id: they keep
    refusing it, as a user id and as an anonymous id (the safe reading of an old erasure)."""
    with engine.storage.write() as uow:
        uow.tombstones.add({engine.privacy.personal.id_hash("old-1")}, clock.now_ms())
    for fields in ({"user_id": "old-1"}, {"anonymous_id": "old-1"}):
        answer = client.post("/v1/events", json=[_event(1, **fields)]).json()
        assert answer["events"][0]["code"] == "subject_erased", answer
    assert client.put("/v1/users/old-1/traits", json={"a": 1}).status_code == 409
