"""The numbered writes of the event log, and the read of the events written after one (what the
lake copies), on every backend."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from persona.clock import FakeClock
from persona.engine import Engine
from persona.storage.protocols import EVENT_COLUMNS
from persona.storage.sql import bulk
from tests.conftest import open_engine
from tests.storage.test_contract import event


def written_after(
    engine: Engine, write_seq: int, chunk_rows: int = 250_000
) -> tuple[int, pa.Table]:
    """The last write the store holds, and every event of the writes after ``write_seq``."""
    with engine.storage.events_after(write_seq, chunk_rows) as written:
        chunks = list(written.chunks)
        last = written.write_seq
    for chunk in chunks:
        assert chunk.schema == EVENT_COLUMNS
        assert 0 < chunk.num_rows <= chunk_rows
    return last, pa.concat_tables(chunks) if chunks else EVENT_COLUMNS.empty_table()


class TestWrittenEvents:
    def test_every_column_of_every_event_in_event_time_order(self, engine: Engine) -> None:
        start, nothing = written_after(engine, -1)
        assert nothing.num_rows == 0
        with engine.storage.write() as uow:
            uow.events.append(
                [
                    event("e2", "u:1", 20, value=0.1 + 0.2, decision_id="d1", source="api"),
                    event("e1", "a:x", 10, user_id=None, anonymous_id="x", item_id=None),
                    event("e3", "u:2", 30, properties=None, context=None, value=-7.0),
                ]
            )
        last, table = written_after(engine, -1)
        assert last == start + 1
        first, second, third = table.to_pylist()
        assert [first["event_id"], second["event_id"], third["event_id"]] == ["e1", "e2", "e3"]
        assert orjson.loads(first.pop("properties")) == {"k": [1, "two", {"three": 3.5}]}
        assert orjson.loads(first.pop("context")) == {"device": "mobile"}
        assert first == {
            "event_id": "e1",
            "type": "view",
            "profile_key": "a:x",
            "user_id": None,
            "anonymous_id": "x",
            "item_id": None,
            "occurred_at_ms": 10,
            "received_at_ms": 10,
            "value": None,
            "decision_id": None,
            "source": "test",
        }
        assert second["value"] == 0.1 + 0.2  # the stored double exactly, not 15 digits of it
        assert (second["decision_id"], second["source"]) == ("d1", "api")
        assert (third["properties"], third["context"], third["value"]) == (None, None, -7.0)

    def test_only_the_writes_after_a_number(self, engine: Engine) -> None:
        start, _ = written_after(engine, -1)
        with engine.storage.write() as uow:
            uow.events.append([event("a1", at=5)])
            uow.events.append([event("a2", at=5)])  # the same write: the same number
        first, _ = written_after(engine, -1)
        assert first == start + 1
        with engine.storage.write() as uow:
            uow.events.append([event("a1", at=5)])  # nothing new (may take a number or not)
        with engine.storage.write() as uow, uow.events.appending([event("b1", at=5)]):
            pass
        last, everything = written_after(engine, -1)
        assert last > first
        assert sorted(everything["event_id"].to_pylist()) == ["a1", "a2", "b1"]
        assert written_after(engine, first)[1]["event_id"].to_pylist() == ["b1"]
        assert written_after(engine, last) == (last, EVENT_COLUMNS.empty_table())

    def test_a_profile_merge_writes_the_moved_events_again(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.events.append([event("e1", "a:x", 10), event("e2", "u:y", 20)])
        seen, _ = written_after(engine, -1)
        with engine.storage.write() as uow:
            assert uow.events.reassign_profiles({"a:x": "u:y"}) == 1
        last, moved = written_after(engine, seen)
        assert last == seen + 1
        assert moved.select(["event_id", "profile_key"]).to_pylist() == [
            {"event_id": "e1", "profile_key": "u:y"}
        ]

    def test_chunks_in_event_time_order_across_writes_and_ties(self, engine: Engine) -> None:
        # 700 events in 5 writes, 7 to a millisecond, each write spread over the whole time.
        for write in range(5):
            with engine.storage.write() as uow:
                uow.events.append(
                    [event(f"w{write}-{n:03d}", at=(n * 5 + write) // 7) for n in range(140)]
                )
        expected = sorted(f"w{w}-{n:03d}" for w in range(5) for n in range(140))
        for chunk_rows in (1_000, 33, 7, 1):  # one chunk (found by number), then many (by time)
            _, table = written_after(engine, -1, chunk_rows)
            times = table["occurred_at_ms"].to_pylist()
            assert times == sorted(times)
            assert sorted(table["event_id"].to_pylist()) == expected

    def test_a_write_not_committed_is_not_read_and_its_number_comes_later(
        self, engine: Engine
    ) -> None:
        with engine.storage.write() as uow:
            uow.events.append([event("a", at=1)])
        holding, go_on = threading.Event(), threading.Event()

        def slow_write() -> None:
            with engine.storage.write() as uow:
                uow.events.append([event("late", at=0)])  # earlier in event time
                holding.set()
                go_on.wait(10)

        writer = threading.Thread(target=slow_write)
        writer.start()
        assert holding.wait(10)
        seen, table = written_after(engine, -1)
        go_on.set()
        writer.join()
        assert table["event_id"].to_pylist() == ["a"]
        last, later = written_after(engine, seen)
        assert (last, later["event_id"].to_pylist()) == (seen + 1, ["late"])

    def test_each_store_names_its_event_log(
        self, engine: Engine, tmp_path: Path, clock: FakeClock
    ) -> None:
        with engine.storage.events_after(-1) as first:
            name = first.log_id
        with engine.storage.events_after(-1) as again:
            assert again.log_id == name
        other = open_engine(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}", clock)
        try:
            with other.storage.events_after(-1) as elsewhere:
                assert elsewhere.log_id != name
        finally:
            other.close()


@pytest.mark.parametrize("chunk_rows", [2, 250_000])
def test_a_text_holding_a_separator_is_refused_not_misread(
    tmp_path: Path, clock: FakeClock, chunk_rows: int
) -> None:
    """On SQLite each chunk travels as text; an id with a newline (which ingest refuses) would
    split a row in two: the read counts its rows and says so rather than return them."""
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", clock)
    try:
        with engine.storage.write() as uow:
            uow.events.append([event("bad\nid", at=1), event("good", at=2)])
        with pytest.raises(ValueError, match="separator"):
            written_after(engine, -1, chunk_rows)
    finally:
        engine.close()


def test_a_sqlite_without_concat_ws_reads_the_same_rows(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.44 (the standard library's, where pysqlite3 has no wheel) joins the
    fields with ``||``: the rows read back the same."""
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", clock)
    try:
        with engine.storage.write() as uow:
            uow.events.append(
                [
                    event("e1", "a:x", 10, user_id=None, anonymous_id="x", item_id=None),
                    event("e2", "u:1", 20, value=0.1 + 0.2, decision_id="d1"),
                    event("e3", "u:2", 30, properties=None, context=None),
                ]
            )
        _, recent = written_after(engine, -1)
        row_text = bulk._sqlite_row_text
        monkeypatch.setattr(bulk, "_sqlite_row_text", lambda _version: row_text((3, 40, 1)))
        _, older = written_after(engine, -1)
        assert older.equals(recent) and older.num_rows == 3
    finally:
        engine.close()
