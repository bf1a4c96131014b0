"""The storage contract: every backend (SQLite, PostgreSQL) passes the same tests."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import inspect, select

from persona.clock import FakeClock
from persona.engine import Engine
from persona.storage.database import (
    HEADS,
    MIGRATIONS,
    create_database_engine,
    migrate,
    revisions,
)
from persona.storage.protocols import SHOWN_COLUMNS
from persona.storage.records import (
    ApiKeyRecord,
    EventRecord,
    ItemRecord,
    QuarantineRecord,
    RecentEvent,
)
from persona.storage.sql import SqlStorage, bulk
from persona.storage.tables import changes, metadata
from tests.conftest import open_engine


def event(
    event_id: str, profile_key: str = "u:1", at: int = 1_000, **fields: object
) -> EventRecord:
    values: dict[str, object] = {
        "event_id": event_id,
        "type": "view",
        "profile_key": profile_key,
        "user_id": profile_key[2:],
        "anonymous_id": None,
        "item_id": "i1",
        "occurred_at_ms": at,
        "received_at_ms": at,
        "value": None,
        "properties": {"k": [1, "two", {"three": 3.5}]},
        "context": {"device": "mobile"},
        "decision_id": None,
        "payload_hash": "h-" + event_id,
        "source": "test",
    }
    values.update(fields)
    return EventRecord(**values)  # type: ignore[arg-type]


def item(item_id: str, **fields: object) -> ItemRecord:
    values: dict[str, object] = {
        "item_id": item_id,
        "title": f"Item {item_id}",
        "categories": ["a", "b"],
        "tags": ["t"],
        "price": 9.5,
        "available": True,
        "created_at_ms": 1,
        "attributes": {"year": 1999, "nested": {"x": [1, 2]}},
        "updated_at_ms": 2,
    }
    values.update(fields)
    return ItemRecord(**values)  # type: ignore[arg-type]


class TestEventLog:
    def test_appending_inserts_while_the_block_runs(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.events.append([event("e1")])
        with engine.storage.write() as uow:
            with uow.events.appending([event("e1", payload_hash="x"), event("e2")]) as appended:
                worked = sum(range(1000))  # the caller's own work meanwhile
            assert (appended.ids, worked) == ({"e2"}, 499500)
        with engine.storage.read() as uow:
            assert uow.events.payload_hashes(["e1", "e2"]) == {"e1": "h-e1", "e2": "h-e2"}

    def test_a_failing_block_leaves_nothing_appended(self, engine: Engine) -> None:
        def write_then_fail() -> None:
            with engine.storage.write() as uow, uow.events.appending([event("e1")]):
                raise RuntimeError("the fold failed")

        with pytest.raises(RuntimeError, match="the fold failed"):
            write_then_fail()
        with engine.storage.read() as uow:
            assert uow.events.payload_hashes(["e1"]) == {}

    def test_append_returns_only_new_ids_and_keeps_the_first(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            assert uow.events.append([event("e1"), event("e2")]) == {"e1", "e2"}
        with engine.storage.write() as uow:
            assert uow.events.append([event("e2", payload_hash="other"), event("e3")]) == {"e3"}
        with engine.storage.read() as uow:
            assert uow.events.count() == 3
            assert uow.events.payload_hashes(["e1", "e2", "missing"]) == {
                "e1": "h-e1",
                "e2": "h-e2",
            }
            stored = uow.events.get("e1")
        assert stored == event("e1")

    def test_round_trips_every_field(self, engine: Engine) -> None:
        original = event("e1", value=4.5, decision_id="d1", anonymous_id="anon", properties=None)
        with engine.storage.write() as uow:
            uow.events.append([original])
        with engine.storage.read() as uow:
            assert uow.events.get("e1") == original

    def test_for_profile_is_newest_first_and_reassign_moves_history(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.events.append(
                [
                    event("e1", "a:x", 10),
                    event("e2", "a:x", 30),
                    event("e3", "u:y", 20),
                    event("e4", "a:z", 40),
                ]
            )
            assert uow.events.reassign_profiles({}) == 0
            assert uow.events.reassign_profiles({"a:x": "u:y", "a:z": "u:w"}) == 3
        with engine.storage.read() as uow:
            assert [e.event_id for e in uow.events.for_profile("u:y", 10)] == ["e2", "e3", "e1"]
            assert uow.events.for_profile("a:x", 10) == []
            assert [e.event_id for e in uow.events.for_profile("u:w", 10)] == ["e4"]
            assert [e.event_id for e in uow.events.iter_all(batch_size=2)] == [
                "e1",
                "e3",
                "e2",
                "e4",
            ]

    def test_many_ids_beyond_one_parameter_chunk(self, engine: Engine) -> None:
        records = [event(f"e{i}", at=i) for i in range(2500)]
        with engine.storage.write() as uow:
            assert len(uow.events.append(records)) == 2500
        with engine.storage.read() as uow:
            assert len(uow.events.payload_hashes([r.event_id for r in records])) == 2500

    def test_the_reads_recommenders_and_serving_make(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.events.append(
                [
                    event("e1", "u:1", 10, item_id="i1", context={"device": "mobile"}),
                    event("e2", "u:1", 30, item_id="i2", type="click", value=2.0),
                    event("e3", "u:2", 20, item_id="i2", context={"device": "tv"}),
                    event("e4", "u:2", 40, item_id=None, type="identify", context=None),
                    event("e5", "u:3", 50, item_id="i3", type="impression", context=None),
                    event("e6", "u:1", 5, item_id="i1", type="purchase", value=9.5),
                ]
            )
        columns = engine.storage.interaction_columns()
        assert columns.column_names == [
            *("profile_key", "item_id", "type", "occurred_at_ms", "value", "context")
        ]
        assert [
            (*list(row.values())[:-1], row["context"] and orjson.loads(row["context"]))
            for row in columns.to_pylist()
        ] == [
            ("u:1", "i1", "purchase", 5, 9.5, {"device": "mobile"}),
            ("u:1", "i1", "view", 10, None, {"device": "mobile"}),
            ("u:2", "i2", "view", 20, None, {"device": "tv"}),
            ("u:1", "i2", "click", 30, 2.0, {"device": "mobile"}),
            ("u:3", "i3", "impression", 50, None, None),
        ]
        assert engine.storage.interaction_columns(before_ms=20)["occurred_at_ms"].to_pylist() == [
            5,
            10,
        ]
        with engine.storage.read() as uow:
            assert uow.events.item_history("u:1", 2) == [("i2", "click", 30), ("i1", "view", 10)]
            assert uow.events.item_history("u:9", 5) == []
            assert uow.events.item_signature("u:1", ["impression"]) == (3, 30)
            assert uow.events.item_signature("u:3", ["impression"]) == (0, -1)
            assert uow.events.item_signature("u:3", []) == (1, 50)
            assert uow.events.item_signature("u:9", ["impression"]) == (0, -1)
            assert sorted(uow.events.context_item_counts("device", 10, ["impression"])) == [
                ("mobile", "i1", 1),
                ("mobile", "i2", 1),
                ("tv", "i2", 1),
            ]
            assert uow.events.popular_items(2, ["impression"]) == ["i1", "i2"]
            assert uow.events.popular_items(5, []) == ["i1", "i2", "i3"]
            assert uow.events.value_totals(["u:1", "u:2"], ["purchase", "click"], 31) == {
                "u:1": 11.5
            }
            assert uow.events.value_totals(["u:1"], ["purchase"], 5) == {}
            assert list(uow.events.scan(("event_id", "type"), before_ms=20, batch_size=1)) == [
                ("e6", "purchase"),
                ("e1", "view"),
            ]
            by_profile = uow.events.scan(("profile_key", "item_id"), order_by=("profile_key",))
            assert [key for key, _ in by_profile] == ["u:1"] * 3 + ["u:2"] * 2 + ["u:3"]
            with pytest.raises(ValueError, match="not fields"):
                next(uow.events.scan(("profile_key", "password")))
            recent = uow.events.recent_events(["u:1", "u:2", "u:9"], 10, ["view", "click"])
            assert {key: sorted(events, key=str) for key, events in recent.items()} == {
                "u:1": [RecentEvent("click", "i2", 30), RecentEvent("view", "i1", 10)],
                "u:2": [RecentEvent("view", "i2", 20)],
            }
            assert set(uow.events.recent_events(["u:2"], None, ["identify"])) == {"u:2"}

    def test_shown_columns_are_the_impressions_and_clicks_of_lists(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        listed = {"list_id": "home-7", "position": 2}
        with engine.storage.write() as uow:
            uow.events.append(
                [
                    event(
                        "s1",
                        "u:1",
                        10,
                        type="impression",
                        decision_id="d1",
                        properties={"position": 1},
                    ),
                    event(
                        "s2",
                        "u:1",
                        11,
                        item_id="i2",
                        type="impression",
                        decision_id="d1",
                        properties={"position": "2"},
                    ),  # not an integer: no position
                    event(
                        "s3",
                        "u:1",
                        12,
                        item_id="i2",
                        type="click",
                        decision_id="d1",
                        properties=None,
                    ),
                    event("s4", "u:2", 13, type="impression", properties=listed),
                    event("s5", "u:2", 14, type="click", properties={"list_id": 7}),
                    event("s6", "u:2", 15, type="impression", properties={"list_id": "a\nb"}),
                    event("s7", "u:2", 16, type="impression", properties={"position": 1}),
                    event("s8", "u:2", 17, type="view", decision_id="d2"),
                    event("s9", "u:2", 18, item_id=None, type="impression", decision_id="d2"),
                ]
            )
        columns = engine.storage.shown_columns()
        assert columns.schema == SHOWN_COLUMNS
        assert [tuple(row.values()) for row in columns.to_pylist()] == [
            ("u:1", "i1", "impression", 10, "d1", 1),
            ("u:1", "i2", "impression", 11, "d1", None),
            ("u:1", "i2", "click", 12, "d1", None),
            ("u:2", "i1", "impression", 13, "home-7", 2),
            ("u:2", "i1", "click", 14, "7", None),
        ]
        assert engine.storage.shown_columns(before_ms=12).num_rows == 2
        monkeypatch.setattr(bulk, "CHUNK_ROWS", 2)  # in chunks: the same rows
        assert engine.storage.shown_columns().equals(columns)

    def test_interaction_columns_in_bulk_whatever_comes_first(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Thousands of events without a value come first; the values after them still read
        # as numbers, ties of time in event id order, the empty case keeps its columns, and
        # reading in chunks (ties of time across a chunk's end) changes nothing.
        assert engine.storage.interaction_columns().num_rows == 0
        assert engine.storage.interaction_columns().schema.field("value").type == "double"
        plain = [event(f"e{n:05d}", "u:1", 1_000 + n // 2) for n in range(5_000)]
        valued = [event(f"v{n}", "u:2", 10_000, value=float(n) + 0.5) for n in range(3)]
        with engine.storage.write() as uow:
            uow.events.append([*plain, *valued, event("x", "u:3", 20_000, value=7)])
        columns = engine.storage.interaction_columns()
        assert columns.num_rows == 5_004
        assert columns["value"].null_count == 5_000
        assert columns["value"].to_pylist()[-4:] == [0.5, 1.5, 2.5, 7.0]
        assert columns["occurred_at_ms"].to_pylist()[:4] == [1_000, 1_000, 1_001, 1_001]
        assert columns["profile_key"].to_pylist()[-4:] == ["u:2", "u:2", "u:2", "u:3"]
        monkeypatch.setattr(bulk, "CHUNK_ROWS", 333)
        assert engine.storage.interaction_columns().equals(columns)
        assert engine.storage.interaction_columns(before_ms=1_010).num_rows == 20

    def test_a_failed_unit_of_work_stores_nothing(self, engine: Engine) -> None:
        def fail_midway() -> None:
            with engine.storage.write() as uow:
                uow.events.append([event("e1")])
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fail_midway()
        with engine.storage.read() as uow:
            assert uow.events.count() == 0

    def test_type_counts_per_bucket_of_event_time(self, engine: Engine) -> None:
        minute = 60_000
        base = 1_767_225_600_000  # a minute's start
        with engine.storage.write() as uow:
            uow.events.append(
                [
                    event("early", at=base - 1),  # before the window
                    event("a", at=base),
                    event("b", at=base + minute - 1),
                    event("c", at=base + minute - 1, type="click"),
                    event("d", at=base + 2 * minute + 5),
                    event("late", at=base + 3 * minute),  # the window's end is open
                ]
            )
        with engine.storage.read() as uow:
            counts = uow.events.type_counts(base, base + 3 * minute, minute)
            hours = uow.events.type_counts(0, base + 4 * minute, 3_600_000)
        assert counts == [
            (base, "click", 1),
            (base, "view", 2),
            (base + 2 * minute, "view", 1),
        ]
        assert sum(n for _, _, n in hours) == 6 and {at % 3_600_000 for at, _, _ in hours} == {0}


class TestQuarantineLog:
    def test_counts_by_code_and_over_time(self, engine: Engine) -> None:
        day = 86_400_000
        records = [
            QuarantineRecord(code=code, message="m", raw="{}", source="api", received_at_ms=at)
            for code, at in [("c1", 10), ("c1", day + 1), ("c1", day + 2), ("c2", day + 3)]
        ]
        with engine.storage.write() as uow:
            assert uow.quarantine.code_counts() == []
            uow.quarantine.add(records)
        with engine.storage.read() as uow:
            first = uow.quarantine.list(after_id=0, limit=1)[0].quarantine_id
        assert first is not None
        with engine.storage.write() as uow:
            uow.quarantine.mark_replayed(first, "e1", 20)
        with engine.storage.read() as uow:
            assert uow.quarantine.code_counts() == [("c1", 3, 1), ("c2", 1, 0)]
            assert uow.quarantine.code_counts_over_time(0, day) == [
                (0, "c1", 1),
                (day, "c1", 2),
                (day, "c2", 1),
            ]
            assert uow.quarantine.code_counts_over_time(day + 2, day) == [
                (day, "c1", 1),
                (day, "c2", 1),
            ]

    def test_add_list_page_and_replay_once(self, engine: Engine) -> None:
        records = [
            QuarantineRecord(
                code="c1" if i % 2 else "c2", message="m", raw="{}", source="api", received_at_ms=i
            )
            for i in range(5)
        ]
        with engine.storage.write() as uow:
            uow.quarantine.add(records)
        with engine.storage.read() as uow:
            assert uow.quarantine.count() == 5
            first = uow.quarantine.list(after_id=0, limit=2)
            rest = uow.quarantine.list(after_id=first[-1].quarantine_id or 0, limit=10)
            only_c1 = uow.quarantine.list(after_id=0, limit=10, code="c1")
        assert len(first) == 2 and len(rest) == 3
        assert {r.code for r in only_c1} == {"c1"} and len(only_c1) == 2
        target = first[0].quarantine_id
        assert target is not None
        with engine.storage.write() as uow:
            assert uow.quarantine.mark_replayed(target, "e9", 99) is True
            assert uow.quarantine.mark_replayed(target, "e9", 100) is False
        with engine.storage.read() as uow:
            entry = uow.quarantine.get(target)
        assert entry is not None and entry.replayed_event_id == "e9" and entry.replayed_at_ms == 99


class TestProfileStore:
    def test_states_upsert_without_touching_traits(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.profiles.set_traits("u:1", {"plan": "gold"}, {"counts": {}}, 5)
            uow.profiles.save_states({"u:1": {"counts": {"view": 1}}, "u:2": {"counts": {}}}, 6)
        with engine.storage.read() as uow:
            loaded = uow.profiles.load(["u:1", "u:2", "u:3"])
        assert set(loaded) == {"u:1", "u:2"}
        assert loaded["u:1"].traits == {"plan": "gold"}
        assert loaded["u:1"].state == {"counts": {"view": 1}}
        assert loaded["u:2"].traits is None and loaded["u:1"].updated_at_ms == 6

    def test_aliases_resolve_and_first_link_wins(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.profiles.add_aliases({"a:x": "u:1", "a:y": "u:1"}, 1)
            uow.profiles.add_aliases({"a:x": "u:2"}, 2)
        with engine.storage.read() as uow:
            assert uow.profiles.resolve_aliases(["a:x", "a:z"]) == {"a:x": "u:1"}
            assert uow.profiles.aliases_of("u:1") == ["a:x", "a:y"]

    def test_delete(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.profiles.save_states({"u:1": {}, "u:2": {}}, 1)
            uow.profiles.delete(["u:1"])
        with engine.storage.read() as uow:
            assert set(uow.profiles.load(["u:1", "u:2"])) == {"u:2"}
            assert uow.profiles.count() == 1

    def test_all_states(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.profiles.save_states({"u:2": {"n": 2}, "u:1": {"n": 1}}, 1)
        with engine.storage.read() as uow:
            assert list(uow.profiles.all_states()) == [("u:1", {"n": 1}), ("u:2", {"n": 2})]

    def test_all_states_cut_to_some_fields(self, engine: Engine) -> None:
        states = {
            "u:1": {"n": 1, "counts": {"view": 2}, "recent": [["i1", 5, "e1"]], "f": 0.5},
            "u:2": {"n": 2, "counts": {}, "sessions": [[1, 2, 3], [4, 5, 6]], "f": None},
        }
        with engine.storage.write() as uow:
            uow.profiles.save_states(states, 1)
        with engine.storage.read() as uow:
            cut = list(uow.profiles.all_states(["counts", "sessions", "f"]))
            with pytest.raises(ValueError, match="field names"):
                list(uow.profiles.all_states(["n') FROM profiles --"]))
        assert cut == [
            ("u:1", {"counts": {"view": 2}, "sessions": None, "f": 0.5}),
            ("u:2", {"counts": {}, "sessions": [[1, 2, 3], [4, 5, 6]], "f": None}),
        ]


class TestReadBesideWrite:
    def test_it_sees_what_is_committed_while_a_write_is_open(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.profiles.save_states({"u:1": {"n": 1}}, 1)
        with engine.storage.write() as uow:
            uow.profiles.save_states({"u:1": {"n": 2}}, 2)
            with engine.storage.read_beside_write() as beside:
                assert beside.profiles.load(["u:1"])["u:1"].state == {"n": 1}

    def test_it_does_not_wait_for_the_shared_pool(self, engine: Engine) -> None:
        """Writers queued for the lock may hold every pooled connection; the lock's holder
        still reads."""
        pool = engine.storage.engine.pool
        held = [engine.storage.engine.connect() for _ in range(pool.size() + 32)]
        try:
            with engine.storage.read_beside_write() as beside:
                assert beside.profiles.load(["nobody"]) == {}
        finally:
            for connection in held:
                connection.close()


class TestCatalog:
    def test_items_written_since_a_moment_come_latest_first(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.catalog.upsert([item("a", updated_at_ms=1_000), item("b", updated_at_ms=2_000)])
            uow.catalog.upsert([item("c", updated_at_ms=3_000), item("d", updated_at_ms=3_000)])
        with engine.storage.read() as uow:
            assert [i.item_id for i in uow.catalog.written_since(1_000, 10)] == ["c", "d", "b"]
            assert [i.item_id for i in uow.catalog.written_since(1_500, 2)] == ["c", "d"]
            assert uow.catalog.written_since(3_000, 10) == []
            found = uow.catalog.written_since(2_500, 1)[0]
        assert found == item("c", updated_at_ms=3_000)

    def test_upsert_get_replace_and_categories(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.catalog.upsert([item("1"), item("2", categories=["c"])])
            uow.catalog.upsert([item("1", title="New", available=False)])
        with engine.storage.read() as uow:
            got = uow.catalog.get("1")
            assert uow.catalog.get("nope") is None
            assert uow.catalog.categories_for(["1", "2", "3"]) == {"1": ["a", "b"], "2": ["c"]}
            page = uow.catalog.list(after_id="1", limit=10)
            assert uow.catalog.unavailable_ids() == ["1"]
            assert uow.catalog.all_categories() == {"1": ["a", "b"], "2": ["c"]}
            assert uow.catalog.count() == 2
        assert got == item("1", title="New", available=False)
        assert [i.item_id for i in page] == ["2"]

    def test_categories_kept_between_transactions_follow_every_catalog_write(
        self, engine: Engine, tmp_path: Path, clock: FakeClock
    ) -> None:
        """Categories are cached between transactions; a write elsewhere (another process on
        the same database) or in the reading transaction itself is never hidden by the cache."""
        with engine.storage.write() as uow:
            uow.catalog.upsert([item("1"), item("2", categories=["c"])])
        with engine.storage.read() as uow:
            assert uow.catalog.categories_for(["1", "2", "3"]) == {"1": ["a", "b"], "2": ["c"]}
        other = open_engine(tmp_path / "other", str(engine.storage.engine.url), clock)
        try:
            with other.storage.write() as uow:
                uow.catalog.upsert([item("1", categories=["z"]), item("3", categories=["n"])])
        finally:
            other.close()
        with engine.storage.read() as uow:
            assert uow.catalog.categories_for(["1", "2", "3"]) == {
                "1": ["z"],
                "2": ["c"],
                "3": ["n"],
            }
        with engine.storage.write() as uow:
            uow.catalog.upsert([item("2", categories=["d"])])
            assert uow.catalog.categories_for(["2"]) == {"2": ["d"]}

    def test_a_rolled_back_catalog_write_leaves_nothing_cached(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.catalog.upsert([item("1")])

        def write_then_fail() -> None:
            with engine.storage.write() as uow:
                uow.catalog.upsert([item("1", categories=["rolled", "back"])])
                assert uow.catalog.categories_for(["1"]) == {"1": ["rolled", "back"]}
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError, match="abort"):
            write_then_fail()
        for _ in range(2):  # the first read fills the cache, the second reads from it
            with engine.storage.read() as uow:
                assert uow.catalog.categories_for(["1"]) == {"1": ["a", "b"]}


class TestKeyStore:
    def test_add_get_list_revoke(self, engine: Engine) -> None:
        record = ApiKeyRecord("k1", "ci", "hash", ["read"], 1)
        with engine.storage.write() as uow:
            uow.keys.add(record)
        with engine.storage.write() as uow:
            assert uow.keys.get("k1") == record
            assert uow.keys.revoke("k1", 5) is True
            assert uow.keys.revoke("k1", 6) is False
        with engine.storage.read() as uow:
            assert [k.revoked_at_ms for k in uow.keys.list()] == [5]


class TestStorage:
    def test_commit_listeners_hear_what_each_write_declared(self, engine: Engine) -> None:
        heard: list[set[str] | None] = []
        engine.storage.add_commit_listener(heard.append)
        with engine.storage.write() as uow:
            uow.profiles.save_states({"u:1": {}}, 1)
            uow.changes_profiles(["u:1"])
        with engine.storage.write() as uow:
            uow.profiles.save_states({"u:2": {}}, 1)  # undeclared: any profile may have changed
        engine.storage.log_decisions([])  # nothing written, nothing heard
        with engine.storage.read() as uow:
            uow.profiles.load(["u:1"])
        assert heard == [{"u:1"}, None]

    def test_a_failed_write_is_not_heard(self, engine: Engine) -> None:
        heard: list[set[str] | None] = []
        engine.storage.add_commit_listener(heard.append)

        def fail() -> None:
            with engine.storage.write() as uow:
                uow.changes_profiles(["u:1"])
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            fail()
        assert heard == []

    def test_ping_answers(self, engine: Engine) -> None:
        engine.storage.ping()

    def test_a_parallel_write_locks_its_people_where_writes_run_side_by_side(
        self, engine: Engine, database_url: str
    ) -> None:
        """PostgreSQL runs parallel writes side by side, each locking the people it changes;
        SQLite runs every write alone, so there is nothing to lock. Either way the write
        commits, declared changes heard and feed written as for any write."""
        heard: list[set[str] | None] = []
        engine.storage.add_commit_listener(heard.append)
        with engine.storage.write(parallel=True) as uow:
            assert uow.locks_profiles == database_url.startswith("postgresql")
            uow.lock_profiles(["u:1", "a:x", "u:1"])
            uow.lock_profiles(["u:1"])  # held already
            uow.events.append([event("e1", "u:1")])
            uow.profiles.save_states({"u:1": {}}, 1)
            uow.changes_profiles(["u:1"])
        with engine.storage.write() as uow:
            assert not uow.locks_profiles  # it runs alone
        assert heard == [{"u:1"}, None]
        with engine.storage.read() as uow:
            assert set(uow.events.payload_hashes(["e1"])) == {"e1"}
            assert set(uow.profiles.load(["u:1"])) == {"u:1"}

    def test_other_processes_hear_declared_changes_through_the_feed(
        self, engine: Engine, database_url: str
    ) -> None:
        other = SqlStorage(create_database_engine(database_url))  # another process's view
        heard: list[set[str] | None] = []
        resets: list[bool] = []
        other.add_commit_listener(heard.append)
        other.add_reset_listener(lambda: resets.append(True))
        try:
            assert other.follow_changes() == 0  # the first call notes where the feed stands
            with engine.storage.write() as uow:
                uow.profiles.save_states({"u:1": {}, "u:2": {}}, 1)
                uow.changes_profiles(["u:1", "u:2"])
            with engine.storage.write() as uow:
                uow.profiles.save_states({"u:3": {}}, 1)  # undeclared: not in the feed
            with other.write() as uow:  # its own write: heard once, at the commit
                uow.profiles.save_states({"u:4": {}}, 1)
                uow.changes_profiles(["u:4"])
            assert other.follow_changes() == 2
            assert heard == [{"u:4"}, {"u:1", "u:2"}] and resets == []
            # An erasure leaves no mention of the person in the feed; the others reset.
            with engine.storage.write() as uow:
                uow.erases_profiles(["u:1"])
            assert other.follow_changes() == 1
            assert resets == [True]
            with engine.storage.engine.connect() as connection:
                kept = connection.execute(select(changes.c.profile_keys)).scalars().all()
            assert not any(keys and "u:1" in keys for keys in kept)
        finally:
            other.close()

    def test_one_holder_of_a_lease_at_a_time(self, engine: Engine) -> None:
        storage = engine.storage
        assert storage.take_lease("jobs", "a", ttl_seconds=60)
        assert not storage.take_lease("jobs", "b", ttl_seconds=60)
        assert storage.take_lease("jobs", "a", ttl_seconds=0.05)  # renewed, shorter
        assert storage.lease_holders(["jobs", "other"]) == {"jobs": "a"}
        time.sleep(0.1)
        assert storage.lease_holders(["jobs"]) == {}  # expired
        assert storage.take_lease("jobs", "b", ttl_seconds=60)
        storage.release_lease("jobs", "a")  # not the holder: nothing happens
        assert storage.lease_holders(["jobs"]) == {"jobs": "b"}
        storage.release_lease("jobs", "b")
        assert storage.take_lease("jobs", "a", ttl_seconds=60)


def test_migrations_create_exactly_the_declared_schema(engine: Engine) -> None:
    """Alembic's comparison finds no difference between the migrated database and tables.py."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.storage.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    db = create_database_engine(
        str(engine.storage.engine.url.render_as_string(hide_password=False))
    )
    migrate(db)
    tables = set(inspect(db).get_table_names())
    db.dispose()
    assert {
        "events",
        "quarantine",
        "profiles",
        "aliases",
        "items",
        "api_keys",
        "catalog_version",
        "alembic_version",
    } <= tables


def test_a_migrated_database_is_at_alembics_heads(tmp_path: Path) -> None:
    """``migrate`` skips Alembic for a database at ``HEADS``: they must be Alembic's heads, so
    that a new migration cannot be skipped."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert frozenset(ScriptDirectory.from_config(config).get_heads()) == HEADS
    db = create_database_engine(f"sqlite:///{tmp_path / 'p.db'}")
    assert revisions(db) == frozenset()
    migrate(db)
    assert revisions(db) == HEADS
    db.dispose()


def test_sqlite_runs_in_wal_mode_with_durable_commits(tmp_path: Path) -> None:
    db = create_database_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with db.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    db.dispose()
