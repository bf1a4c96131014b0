"""After an erasure, no write path stores anything about the person again."""

from __future__ import annotations

from fastapi.testclient import TestClient

from persona.engine import Engine
from tests.conftest import NOW_MS
from tests.decide.placements import ab, create, decide

TS = NOW_MS // 1000 - 3_600


def _erase(client: TestClient, user: str) -> None:
    event = {"event_id": f"{user}-1", "type": "view", "user_id": user, "item_id": "i1"}
    assert client.post("/v1/events", json=[{**event, "timestamp": TS}]).json()["accepted"] == 1
    assert client.delete(f"/v1/subjects/{user}").status_code == 200


def _held_about(engine: Engine, *keys: str) -> set[str]:
    with engine.storage.read() as uow:
        return uow.subjects.holding(keys)


def test_consent_for_an_erased_person_is_refused(engine: Engine, client: TestClient) -> None:
    _erase(client, "gone-1")
    answer = client.put("/v1/users/gone-1/consent", json={"marketing": "granted"})
    assert answer.status_code == 409
    assert answer.json()["code"] == "subject_erased"
    assert _held_about(engine, "u:gone-1") == set()


def test_decisions_for_an_erased_person_are_answered_and_never_logged(
    engine: Engine, client: TestClient
) -> None:
    create(client, ab())
    _erase(client, "gone-2")
    page = "https://shop.example/account?email=gone-2@example.com"
    decisions = decide(client, "home_hero", user_id="gone-2", context={"page": page})
    assert [d["reason"] for d in decisions] == ["subject_erased"]
    fallback = client.get("/v1/placements/home_hero").json()["config"]["fallback"]
    assert decisions[0]["variant"] == fallback  # the placement's fallback, nothing personal
    # (a decision returns once its log records are committed: nothing is pending)
    assert _held_about(engine, "u:gone-2") == set()
    # someone else is decided for and logged as before
    assert decide(client, "home_hero", user_id="here-1")[0]["reason"] == "assigned"
