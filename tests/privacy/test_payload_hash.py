"""The payload hash (retry or conflict) covers what is stored, keyed: it is no oracle for
values persona itself does not keep."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from persona.engine import Engine
from persona.ingest.schema import EventIn
from persona.ingest.service import PayloadHasher
from tests.conftest import NOW_MS

TS = NOW_MS // 1000 - 60


def _stored_hash(engine: Engine, event_id: str) -> str:
    with engine.storage.read() as uow:
        return uow.events.payload_hashes([event_id])[event_id]


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_id": "p1", "type": "view", "user_id": "u1", "timestamp": TS, **fields}


def test_the_stored_hash_is_keyed(engine: Engine, client: TestClient) -> None:
    sent = _event(properties={"email": "hash-me@example.com"})
    assert client.post("/v1/events", json=[sent]).json()["accepted"] == 1
    stored = _stored_hash(engine, "p1")
    assert stored.startswith("k:")
    unkeyed = PayloadHasher.legacy(EventIn.model_validate(sent))
    assert stored != unkeyed  # what anyone could compute from a guess


def test_a_resend_tells_no_more_than_what_is_stored(client: TestClient) -> None:
    """The IP is stored truncated: resending the id with another address of the same /24 is
    the same stored event (a duplicate), so guesses cannot recover the last octet."""
    first = _event(context={"ip": "203.0.113.77"})
    assert client.post("/v1/events", json=[first]).json()["accepted"] == 1
    guess = _event(context={"ip": "203.0.113.12"})
    answer = client.post("/v1/events", json=[guess]).json()
    assert answer["duplicates"] == 1, answer
    other = _event(context={"ip": "198.51.100.77"})
    assert client.post("/v1/events", json=[other]).json()["rejected"] == 1


def test_a_retry_of_an_event_stored_before_keying_is_a_duplicate(
    engine: Engine, client: TestClient
) -> None:
    sent = _event(item_id="i1")
    assert client.post("/v1/events", json=[sent]).json()["accepted"] == 1
    legacy = PayloadHasher.legacy(EventIn.model_validate(sent))
    with engine.storage.write() as uow:  # as an earlier version stored it
        uow.connection.exec_driver_sql(
            "UPDATE events SET payload_hash = %s WHERE event_id = 'p1'"
            if engine.storage.dialect == "postgresql"
            else "UPDATE events SET payload_hash = ? WHERE event_id = 'p1'",
            (legacy,),
        )
    assert client.post("/v1/events", json=[sent]).json()["duplicates"] == 1
    changed = client.post("/v1/events", json=[_event(item_id="i2")]).json()
    assert changed["rejected"] == 1 and changed["events"][0]["code"] == "event_id_conflict"
