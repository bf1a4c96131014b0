"""Consent: events not granted at their time are not used; every change is audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from persona.clock import FakeClock
from persona.engine import Engine
from persona.privacy import consent as consent_module
from persona.recommend.service import NO_CONSENT
from persona.storage.sql.consents import SqlConsentLog
from persona.storage.tables.privacy import audit_log, held_events
from tests.conftest import NOW_MS, open_engine

DAY_S = 86_400
NOW_S = NOW_MS // 1000


def view(n: int, user: str, ts: float, item: str = "i1") -> dict[str, object]:
    return {
        "event_id": f"e{n}",
        "type": "view",
        "user_id": user,
        "item_id": item,
        "timestamp": ts,
    }


def held_count(engine: Engine) -> int:
    with engine.storage.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(held_events)).scalar())


def audit_actions(engine: Engine) -> list[str]:
    with engine.storage.engine.connect() as connection:
        return [a for (a,) in connection.execute(select(audit_log.c.action))]


def test_people_without_a_record_are_granted_by_default(engine: Engine) -> None:
    engine.ingest.ingest([view(1, "ann", NOW_S - 10)])
    assert engine.profiles.get("ann").event_count == 1
    assert held_count(engine) == 0


def test_events_after_a_revocation_are_held_and_not_folded(
    engine: Engine, client: TestClient, clock: FakeClock
) -> None:
    engine.ingest.ingest([view(1, "ann", NOW_S - 2 * DAY_S)])
    answer = client.put("/v1/users/ann/consent", json={"analytics": "revoked"})
    assert answer.status_code == 200
    assert answer.json()["purposes"]["analytics"] == "revoked"
    clock.advance(60)
    # one event from before the revocation (by its own time), two after it
    result = engine.ingest.ingest(
        [view(2, "ann", NOW_S - DAY_S), view(3, "ann", NOW_S + 30), view(4, "ann", NOW_S + 40)]
    )
    assert (result.accepted, result.held) == (1, 2)
    assert [e["status"] for e in result.events] == ["accepted", "held", "held"]
    assert [e["event_id"] for e in result.events] == ["e2", "e3", "e4"]
    retried = engine.ingest.ingest([view(3, "ann", NOW_S + 30)])
    assert (retried.held, retried.duplicates) == (0, 1)
    profile = engine.profiles.get("ann")
    assert profile.event_count == 2  # e1 and e2: granted at their time
    assert held_count(engine) == 2
    with engine.storage.read() as uow:
        assert uow.events.count() == 2
    assert "consent.change" in audit_actions(engine)
    # granting again applies from its own time on, not to the held events
    client.put("/v1/users/ann/consent", json={"analytics": "granted"})
    clock.advance(60)
    engine.ingest.ingest([view(5, "ann", (NOW_MS + 120_000) / 1000)])
    assert engine.profiles.get("ann").event_count == 3
    assert audit_actions(engine).count("consent.change") == 2


def test_consent_events_set_consent_by_their_time(engine: Engine) -> None:
    consent = {
        "event_id": "c1",
        "type": "consent",
        "user_id": "bob",
        "timestamp": NOW_S - 100,
        "properties": {"purposes": {"personalization": "denied"}},
    }
    result = engine.ingest.ingest(
        [view(1, "bob", NOW_S - 200), consent, view(2, "bob", NOW_S - 50)]
    )
    assert (result.accepted, result.held) == (2, 1)
    assert [e["status"] for e in result.events] == ["accepted", "accepted", "held"]
    assert engine.profiles.get("bob").event_count == 1
    assert engine.privacy.consent.current("u:bob")["personalization"] == "denied"
    # a retried consent event is a duplicate, not a second change
    again = engine.ingest.ingest([consent])
    assert again.duplicates == 1
    assert audit_actions(engine).count("consent.change") == 1


def test_a_malformed_consent_event_is_refused(engine: Engine) -> None:
    bad = {"type": "consent", "user_id": "bob", "properties": {"purposes": {"spam": "granted"}}}
    result = engine.ingest.ingest([bad])
    assert result.rejected == 1
    assert result.events[0]["code"] == "invalid_consent"


def test_unknown_purpose_or_status_is_422(client: TestClient) -> None:
    assert client.put("/v1/users/a/consent", json={"spam": "granted"}).status_code == 422
    answer = client.put("/v1/users/a/consent", json={"analytics": "maybe"})
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_request"


@pytest.fixture
def strict(tmp_path: Path, database_url: str, clock: FakeClock) -> Iterator[Engine]:
    engine = open_engine(
        tmp_path,
        database_url,
        clock,
        privacy={"consent_required": True, "unconsented_events": "drop"},
    )
    yield engine
    engine.close()


def test_consent_required_and_drop_policy(strict: Engine) -> None:
    result = strict.ingest.ingest([view(1, "cat", NOW_S - 10)])
    assert result.rejected == 1
    assert result.events[0]["code"] == "consent_not_granted"
    with strict.storage.read() as uow:
        assert uow.events.count() == 0
        assert uow.quarantine.count() == 0  # nothing about the person is kept
    assert held_count(strict) == 0
    strict.privacy.consent.set(
        "cat", {"analytics": "granted", "personalization": "granted"}, actor="test"
    )
    assert strict.ingest.ingest([view(2, "cat", NOW_S + 1)]).accepted == 1
    assert strict.profiles.get("cat").event_count == 1


def test_no_personalization_consent_gets_trending_marked(
    engine: Engine, client: TestClient
) -> None:
    engine.ingest.ingest([view(i, f"p{i % 3}", NOW_S - 100 + i, f"i{i % 5}") for i in range(30)])
    client.put("/v1/users/p1/consent", json={"personalization": "denied"})
    answer = client.get("/v1/users/p1/recommendations", params={"n": 3})
    assert answer.status_code == 200
    body = answer.json()
    assert body["source"] in ("trending", "popular")
    assert body["reason"] == NO_CONSENT
    other = client.get("/v1/users/p2/recommendations", params={"n": 3}).json()
    assert other["reason"] != NO_CONSENT


def test_audit_log_refuses_update_and_delete(engine: Engine, client: TestClient) -> None:
    client.put("/v1/users/ann/consent", json={"marketing": "denied"})
    db = engine.storage.engine
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"), db.begin() as connection:
            connection.execute(text(statement))
    page = client.get("/v1/audit", params={"limit": 10}).json()
    assert [e["action"] for e in page["entries"]] == ["consent.change"]
    entry = page["entries"][0]
    assert entry["actor"] == "dev"
    assert "ann" not in entry["target"]
    assert client.get("/v1/audit", params={"limit": 5000}).status_code == 422


def test_consent_history_with_dates(engine: Engine, clock: FakeClock) -> None:
    consent = engine.privacy.consent
    consent.set("dan", {"analytics": "granted"}, actor="t", effective_at_ms=NOW_MS - 10_000)
    consent.set("dan", {"analytics": "revoked"}, actor="t", effective_at_ms=NOW_MS)
    assert consent.current("u:dan", NOW_MS - 5_000)["analytics"] == "granted"
    assert consent.current("u:dan", NOW_MS + 5_000)["analytics"] == "revoked"
    assert consent.current("u:dan", NOW_MS - 20_000)["analytics"] == "unset"
    with engine.storage.read() as uow:
        history = engine.privacy.consent.history(uow, ["u:dan"])
    assert [(c.status, c.effective_at_ms, c.source) for c in history] == [
        ("granted", NOW_MS - 10_000, "api"),
        ("revoked", NOW_MS, "api"),
    ]


def test_consent_of_a_user_covers_their_linked_anonymous_id(
    engine: Engine, client: TestClient
) -> None:
    identify = {"type": "identify", "user_id": "lu", "anonymous_id": "anon-lu"}
    engine.ingest.ingest([{**identify, "timestamp": NOW_S - 100}])
    client.put("/v1/users/lu/consent", json={"personalization": "denied"})
    result = engine.ingest.ingest(
        [{"type": "view", "anonymous_id": "anon-lu", "item_id": "i1", "timestamp": NOW_S + 1}]
    )
    assert (result.accepted, result.held) == (0, 1)
    assert held_count(engine) == 1  # linked to lu, whose personalization is denied
    answer = client.get("/v1/users/anon-lu/recommendations").json()
    assert answer["reason"] == NO_CONSENT
    assert engine.privacy.consent.allows_person("someone-new", "personalization")


def test_the_events_api_answers_held_for_lack_of_consent(
    engine: Engine, client: TestClient
) -> None:
    client.put("/v1/users/dan/consent", json={"analytics": "denied"})
    answer = client.post(
        "/v1/events", json=[view(1, "dan", NOW_S + 1), view(2, "eve", NOW_S + 1), {"type": "x"}]
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {k: body[k] for k in ("accepted", "held", "duplicates", "rejected")} == {
        "accepted": 1,
        "held": 1,
        "duplicates": 0,
        "rejected": 1,
    }
    assert body["events"][0] == {"index": 0, "status": "held", "event_id": "e1"}
    assert body["events"][1]["status"] == "accepted"
    assert held_count(engine) == 1
    again = client.post("/v1/events", json=view(1, "dan", NOW_S + 1)).json()
    assert (again["held"], again["duplicates"]) == (0, 1)
    metrics = client.get("/metrics").text
    assert 'persona_events_total{outcome="held"} 1.0' in metrics


def test_people_without_any_record_are_answered_from_a_snapshot_without_a_read(
    engine: Engine, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who has consent records is read in bulk; anyone else gets the default with no read of
    their own, until a commit names them or the snapshot is dropped (a missed change) or
    expires."""
    consent = engine.privacy.consent
    client.put("/v1/users/denier/consent", json={"personalization": "denied"})
    client.put("/v1/users/granter/consent", json={"personalization": "granted"})
    assert consent.refresh_holders() == 2
    reads: list[tuple[str, str]] = []
    log = SqlConsentLog.of_person

    def counted(self: SqlConsentLog, user: str, anonymous: str, purpose: str) -> Any:
        reads.append((user, anonymous))
        return log(self, user, anonymous, purpose)

    monkeypatch.setattr(SqlConsentLog, "of_person", counted)
    assert consent.allows_person("quiet", "personalization")
    assert reads == []
    assert not consent.allows_person("denier", "personalization")  # a holder: read
    assert reads == [("u:denier", "a:denier")]
    # A commit naming someone after the snapshot: their answer is read, and is right.
    client.put("/v1/users/quiet/consent", json={"personalization": "denied"})
    assert not consent.allows_person("quiet", "personalization")
    assert reads[-1] == ("u:quiet", "a:quiet")
    # A link made after the snapshot to someone with records: the anonymous id is read.
    linked = {"type": "identify", "user_id": "granter", "anonymous_id": "new-anon"}
    assert engine.ingest.ingest([linked]).accepted == 1
    assert consent.allows_person("new-anon", "personalization")
    assert reads[-1] == ("u:new-anon", "a:new-anon")
    # Missed changes (a reset) drop the snapshot: everyone is read again.
    engine.storage._reset()  # type: ignore[attr-defined]
    assert consent.allows_person("other", "personalization")
    assert reads[-1] == ("u:other", "a:other")
    consent.refresh_holders()
    before = len(reads)
    assert consent.allows_person("someone", "personalization")
    assert len(reads) == before
    # An expired snapshot answers nothing.
    monkeypatch.setattr(consent_module, "HOLDERS_SECONDS", -1.0)
    consent.refresh_holders()
    assert consent.allows_person("late", "personalization")
    assert reads[-1] == ("u:late", "a:late")


def test_with_consent_required_the_snapshot_answers_no(strict: Engine) -> None:
    strict.privacy.consent.refresh_holders()
    assert not strict.privacy.consent.allows_person("nobody", "personalization")
