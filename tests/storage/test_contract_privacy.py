"""The storage contract of the privacy domain (consent, tombstones, held events, everything
stored about a person), on every backend."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, select

from persona.engine import Engine
from persona.storage.records import (
    ConsentChange,
    ConsentEntry,
    HeldEventRecord,
    MembershipRecord,
    QuarantineRecord,
    StreamMessage,
)
from persona.storage.sql.subjects import SUBJECT_COLUMNS, tables_holding_people
from persona.storage.tables import metadata
from persona.storage.tables.predictions import profile_scores
from persona.storage.tables.privacy import subject_tombstones
from persona.storage.tables.segments import segment_memberships
from tests.storage.test_contract import event
from tests.storage.test_contract_decisions import decision, outcome


def change(key: str, purpose: str, status: str, at: int, source: str = "api") -> ConsentChange:
    return ConsentChange(
        profile_key=key,
        purpose=purpose,
        status=status,
        effective_at_ms=at,
        source=source,
        recorded_at_ms=at + 1,
    )


def held(event_id: str, key: str = "u:1", at: int = 1_000, **fields: object) -> HeldEventRecord:
    values: dict[str, object] = {
        "event_id": event_id,
        "type": "view",
        "profile_key": key,
        "user_id": key[2:] if key.startswith("u:") else None,
        "anonymous_id": key[2:] if key.startswith("a:") else None,
        "item_id": "i1",
        "occurred_at_ms": at,
        "received_at_ms": at + 5,
        "value": 1.5,
        "properties": {"k": [1, "two", {"three": 3.5}]},
        "context": {"device": "mobile"},
        "reason": "not consented",
    }
    values.update(fields)
    return HeldEventRecord(**values)  # type: ignore[arg-type]


def _entries(found: list[ConsentEntry]) -> list[tuple[str, str, str, int, str | None]]:
    """What a book holds, leaving out the ids the backend assigned (their order is checked)."""
    ids = [e.consent_id for e in found]
    assert ids == sorted(ids)
    return sorted(
        ((e.profile_key, e.purpose, e.status, e.effective_at_ms, e.via) for e in found), key=str
    )


def linked_changes(engine: Engine, links: dict[str, str], changes: list[ConsentChange]) -> None:
    """Anonymous keys merged into profiles, and consent changes, in one write."""
    with engine.storage.write() as uow:
        uow.profiles.add_aliases(links, 1)
        uow.consents.add(changes)


class TestConsentLog:
    def test_changes_come_back_in_recording_order(self, engine: Engine) -> None:
        first = [change("u:1", "analytics", "granted", 10), change("u:1", "ads", "denied", 10)]
        with engine.storage.write() as uow:
            uow.consents.add(first)
            uow.consents.add([change("u:2", "analytics", "denied", 5)])
            uow.consents.add([change("u:1", "analytics", "revoked", 3, source="event")])
            uow.consents.add([])
        with engine.storage.read() as uow:
            assert uow.consents.history(["u:1"]) == [
                *first,
                change("u:1", "analytics", "revoked", 3, source="event"),
            ]
            assert uow.consents.history(["u:1", "u:2"])[2] == change(
                "u:2", "analytics", "denied", 5
            )
            assert uow.consents.history(["u:3"]) == []

    def test_a_book_follows_anonymous_keys_to_the_user_they_were_linked_to(
        self, engine: Engine
    ) -> None:
        linked_changes(
            engine,
            {"a:x": "u:1"},
            [
                change("u:1", "analytics", "granted", 10),
                change("a:x", "ads", "denied", 20),
                change("u:2", "analytics", "denied", 30),
                change("a:y", "analytics", "denied", 40),
            ],
        )
        with engine.storage.read() as uow:
            book = uow.consents.book(["a:x", "u:2"], ["a:x"])
            assert _entries(book) == sorted(
                [
                    ("u:1", "analytics", "granted", 10, "a:x"),
                    ("a:x", "ads", "denied", 20, None),
                    ("u:2", "analytics", "denied", 30, None),
                ],
                key=str,
            )
            # a change found directly and through a link comes twice, with the same id
            both = uow.consents.book(["u:1", "a:x"], ["a:x"])
            twice = [e for e in both if e.profile_key == "u:1"]
            assert [e.via for e in twice] in ([None, "a:x"], ["a:x", None])
            assert twice[0].consent_id == twice[1].consent_id
            assert uow.consents.book(["u:2"], []) == [e for e in book if e.profile_key == "u:2"]
            assert uow.consents.book([], []) == []

    def test_holders_are_every_key_a_change_can_be_found_through(self, engine: Engine) -> None:
        with engine.storage.read() as uow:
            assert uow.consents.holders() == set()
        linked_changes(
            engine,
            {"a:x": "u:1", "a:y": "u:2", "a:z": "u:3"},
            [
                change("u:1", "analytics", "granted", 10),
                change("u:1", "ads", "denied", 11),
                change("a:y", "ads", "denied", 20),
                change("a:lone", "analytics", "denied", 30),
            ],
        )
        with engine.storage.read() as uow:
            # u:1 has changes, a:x reaches them through its link; a:y and a:lone hold their
            # own; u:2 (which a:y was merged into) and u:3, a:z have none to find.
            assert uow.consents.holders() == {"u:1", "a:x", "a:y", "a:lone"}

    def test_one_person_one_purpose(self, engine: Engine) -> None:
        linked_changes(
            engine,
            {"a:p": "u:owner"},
            [
                change("u:p", "personalization", "granted", 10),
                change("u:p", "analytics", "denied", 11),
                change("a:p", "personalization", "denied", 12),
                change("u:owner", "personalization", "revoked", 13),
                change("u:other", "personalization", "denied", 14),
            ],
        )
        with engine.storage.read() as uow:
            found = uow.consents.of_person("u:p", "a:p", "personalization")
            nobody = uow.consents.of_person("u:q", "a:q", "personalization")
        assert _entries(found) == sorted(
            [
                ("u:p", "personalization", "granted", 10, None),
                ("a:p", "personalization", "denied", 12, None),
                ("u:owner", "personalization", "revoked", 13, "a:p"),
            ],
            key=str,
        )
        assert nobody == []


class TestTombstones:
    def test_add_is_idempotent_and_keeps_the_first_time(self, engine: Engine) -> None:
        with engine.storage.read() as uow:
            assert not uow.tombstones.any()
        with engine.storage.write() as uow:
            uow.tombstones.add({"h1", "h2"}, 10)
            assert uow.tombstones.any()
        with engine.storage.write() as uow:
            uow.tombstones.add(["h2", "h3"], 20)
            uow.tombstones.add([], 30)
        with engine.storage.read() as uow:
            assert uow.tombstones.erased(["h1", "h3", "h4"]) == {"h1", "h3"}
            assert uow.tombstones.erased([]) == set()
        with engine.storage.engine.connect() as connection:
            t = subject_tombstones
            times = dict(connection.execute(select(t.c.id_hash, t.c.erased_at_ms)).all())
        assert times == {"h1": 10, "h2": 10, "h3": 20}

    def test_many_hashes_beyond_one_parameter_chunk(self, engine: Engine) -> None:
        hashes = [f"h{i:04d}" for i in range(2000)] + ['quote"d', "it's", "[x]"]
        with engine.storage.write() as uow:
            uow.tombstones.add(hashes[::2], 1)
        with engine.storage.read() as uow:
            assert uow.tombstones.erased(hashes) == set(hashes[::2])
            assert uow.tombstones.erased(set(hashes[1::2])) == set()


class TestHeldEvents:
    def test_hold_and_tell_which_are_held(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.held_events.hold([held("h1"), held("h2", properties=None, context=None)])
            uow.held_events.hold([])
        with engine.storage.read() as uow:
            assert uow.held_events.held(["h1", "h2", "h3"]) == {"h1", "h2"}
            assert uow.held_events.held([]) == set()
            assert uow.subjects.export(["u:1"]).held_events == [
                held("h1"),
                held("h2", properties=None, context=None),
            ]

    def test_many_ids_beyond_one_parameter_chunk(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.held_events.hold([held(f"h{i}") for i in range(0, 2000, 2)])
        with engine.storage.read() as uow:
            assert len(uow.held_events.held([f"h{i}" for i in range(2000)])) == 1000


def _seed_person(engine: Engine) -> None:
    """u:1 who was a:x before, with a row in every table that holds people; and u:2."""
    with engine.storage.write() as uow:
        uow.events.append(
            [
                event("e1", "a:x", at=100, user_id=None, anonymous_id="x"),
                event("e2", "u:1", at=300, anonymous_id="x"),
                event("e3", "u:1", at=200, type="purchase", value=9.5),
                event("o1", "u:2", at=100),
            ]
        )
        uow.profiles.add_aliases({"a:x": "u:1"}, 1)
        uow.profiles.save_states({"u:1": {"counts": {}}, "u:2": {"counts": {}}}, 2)
        uow.profiles.set_traits("u:1", {"plan": "gold"}, {"counts": {}}, 3)
        uow.consents.add([change("u:1", "ads", "denied", 50), change("u:2", "ads", "denied", 5)])
        uow.held_events.hold([held("h1", at=400), held("h2", "u:2", at=150)])
        uow.decisions.log([decision("d1", "u:1", decided_at_ms=60), decision("d2", "u:2")])
        uow.decisions.add_outcomes([outcome("e2", "d1", "click")])
        uow.quarantine.add(
            [
                QuarantineRecord("future_timestamp", "m", '{"user_id": "1"}', "api", 7),
                QuarantineRecord("future_timestamp", "m", '{"user_id": "12"}', "api", 7),
                QuarantineRecord("future_timestamp", "m", '{"anonymous_id": "1"}', "api", 7),
            ]
        )
        uow.connection.execute(
            insert(segment_memberships),
            [
                {"segment": "s1", "profile_key": "u:1", "entered_at_ms": 10, "exited_at_ms": 20},
                {"segment": "s2", "profile_key": "u:1", "entered_at_ms": 15, "exited_at_ms": None},
                {"segment": "s1", "profile_key": "u:2", "entered_at_ms": 10, "exited_at_ms": None},
            ],
        )
        uow.connection.execute(
            insert(profile_scores),
            [
                {"profile_key": "u:1", "name": "churn", "probability": 0.25, "scored_at_ms": 1},
                {"profile_key": "u:2", "name": "churn", "probability": 0.5, "scored_at_ms": 1},
            ],
        )


class TestSubjectData:
    def test_links_are_the_aliases_of_either_side(self, engine: Engine) -> None:
        _seed_person(engine)
        with engine.storage.read() as uow:
            assert uow.subjects.links(["u:1"]) == [("a:x", "u:1")]
            assert uow.subjects.links({"a:x"}) == [("a:x", "u:1")]
            assert uow.subjects.links(["u:9", "u:2"]) == []

    def test_holding_names_the_keys_some_row_is_filed_under(self, engine: Engine) -> None:
        _seed_person(engine)
        with engine.storage.write() as uow:
            uow.consents.add([change("a:only-consent", "ads", "denied", 5)])
        with engine.storage.read() as uow:
            found = uow.subjects.holding(["u:1", "a:x", "u:2", "u:9", "a:1", "a:only-consent"])
            assert found == {"u:1", "a:x", "u:2", "a:only-consent"}
            assert uow.subjects.holding([]) == set()

    def test_export_reads_every_row_of_the_keys(self, engine: Engine) -> None:
        _seed_person(engine)
        with engine.storage.read() as uow:
            found = uow.subjects.export(["a:x", "u:1"])
            nobody = uow.subjects.export(["u:9"])
        assert [e.event_id for e in found.events] == ["e1", "e3", "e2"]  # by event time
        assert found.events[1] == event("e3", "u:1", at=200, type="purchase", value=9.5)
        assert found.held_events == [held("h1", at=400)]
        assert found.consents == [change("u:1", "ads", "denied", 50)]
        assert found.traits == [{"plan": "gold"}]
        assert found.memberships == [
            MembershipRecord("s1", "u:1", 10, 20),
            MembershipRecord("s2", "u:1", 15, None),
        ]
        assert found.scores == [("churn", 0.25)]
        assert found.decisions == [decision("d1", "u:1", decided_at_ms=60)]
        assert nobody.events == nobody.held_events == nobody.consents == []
        assert (nobody.traits, nobody.memberships, nobody.scores, nobody.decisions) == (
            [],
            [],
            [],
            [],
        )

    def test_delete_removes_every_row_of_the_person_and_counts_them(self, engine: Engine) -> None:
        _seed_person(engine)
        engine.storage.publishes = True
        with engine.storage.write() as uow:  # a message about them not published yet
            uow.outbox.add([StreamMessage("m1", "segment", {"profile_key": "u:1"}, "u:1")])
        with engine.storage.write() as uow:
            deleted = uow.subjects.delete({"u:1", "a:x"})
        assert list(deleted) == [t.name for t in tables_holding_people()] + ["quarantine"]
        assert deleted == {
            "events": 3,
            "profiles": 1,
            "aliases": 1,
            "segment_memberships": 2,
            "profile_scores": 1,
            "decisions": 1,
            "decision_outcomes": 1,
            "consents": 1,
            "held_events": 1,
            "outbox": 1,
            "quarantine": 1,  # user "1" in the payload; "12" and anonymous "1" are others
        }
        with engine.storage.read() as uow:
            gone = uow.subjects.export(["u:1", "a:x"])
            other = uow.subjects.export(["u:2"])
            assert uow.quarantine.count() == 2
        assert not (gone.events or gone.held_events or gone.consents or gone.traits)
        assert not (gone.memberships or gone.scores or gone.decisions)
        assert [e.event_id for e in other.events] == ["o1"]
        assert (len(other.held_events), len(other.consents), len(other.decisions)) == (1, 1, 1)
        with engine.storage.write() as uow:
            assert not any(uow.subjects.delete({"u:1", "a:x"}).values())
            assert not any(uow.subjects.delete([]).values())
            assert uow.quarantine.count() == 2

    def test_events_before_a_cutoff_are_deleted_per_type(self, engine: Engine) -> None:
        _seed_person(engine)
        with engine.storage.write() as uow:
            assert uow.subjects.delete_events_before("view", 300) == 3  # e1, o1, and h2 held
        with engine.storage.read() as uow:
            left = uow.subjects.export(["u:1", "a:x", "u:2"])
        assert sorted(e.event_id for e in left.events) == ["e2", "e3"]
        assert [e.event_id for e in left.held_events] == ["h1"]
        with engine.storage.write() as uow:
            assert uow.subjects.delete_events_before("view", 300) == 0
            assert uow.subjects.delete_events_before("purchase", 201) == 1


def test_forget_deleted_after_a_delete(engine: Engine, tmp_path: Path) -> None:
    _seed_person(engine)
    with engine.storage.write() as uow:
        deleted = uow.subjects.delete({"u:1", "a:x"})
    engine.storage.forget_deleted([*deleted, 'events"; DROP TABLE "events'])
    with engine.storage.read() as uow:
        assert [e.event_id for e in uow.subjects.export(["u:2"]).events] == ["o1"]
    wal = tmp_path / "persona.db-wal"
    if engine.storage.dialect == "sqlite":
        assert wal.stat().st_size == 0  # checkpointed and truncated


def test_every_column_that_names_a_person_is_registered() -> None:
    """A new table with a profile key or a person's id is erased (and so must be listed)."""
    person_columns = {"profile_key", "alias_key", "user_id", "anonymous_id"}
    found = {
        (table.name, column.name)
        for table in metadata.sorted_tables
        for column in table.columns
        if column.name in person_columns
    }
    assert found == {(entry.table.name, entry.column) for entry in SUBJECT_COLUMNS}
