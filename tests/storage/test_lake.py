"""The event lake: one Parquet file per day under HOME/lake, the same rows as the store (none
missed, none twice), in step through merges, crashes and a change of store."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from sqlalchemy import create_engine, text

from persona.clock import FakeClock
from persona.engine import Engine
from persona.storage import lake as lake_module
from persona.storage.database import normalize_url
from persona.storage.lake import ParquetEventLake
from persona.storage.protocols import EVENT_COLUMNS
from tests.conftest import NOW_MS, POSTGRES_URL, open_engine
from tests.storage.test_contract import event

DAY_MS = 86_400_000
BASE_MS = NOW_MS - 10 * DAY_MS  # 2025-12-22T00:00:00Z


def at(day: int, ms: int = 0) -> int:
    return BASE_MS + day * DAY_MS + ms


def lake_rows(engine: Engine) -> pa.Table:
    """Every row of the files the lake names, in file order."""
    return files_rows(engine.lake.files())


def files_rows(files: list[Path]) -> pa.Table:
    if not files:
        return EVENT_COLUMNS.empty_table()
    return pa.concat_tables([lake_module._read(path) for path in files])


def store_rows(engine: Engine) -> pa.Table:
    with engine.storage.events_after(-1) as written:
        chunks = list(written.chunks)
    table = pa.concat_tables(chunks) if chunks else EVENT_COLUMNS.empty_table()
    return table.sort_by(lake_module.ORDER)


def assert_same_as_the_store(engine: Engine, *moments: int | None) -> None:
    """The lake holds the store's events (each once, in time and id order), and training reads
    the same table from both, for every moment given (None: every event)."""
    engine.lake.sync()
    assert lake_rows(engine).equals(store_rows(engine))
    for n, before_ms in enumerate((None, *moments)):
        from_lake = engine.lake.interaction_columns(before_ms)
        from_store = engine.storage.interaction_columns(before_ms)
        assert from_lake.schema == from_store.schema
        assert from_lake.equals(from_store), before_ms
        # A first sync gives what it wrote, not what it reads back from the files.
        first = ParquetEventLake(engine.lake.root.with_name(f"first-lake-{n}"), engine.storage)
        assert first.interaction_columns(before_ms).equals(from_store), before_ms
        # ... and its files, written on their own thread, hold the same rows as a sync's
        assert files_rows(first.files()).equals(lake_rows(engine))


def append(engine: Engine, *records: object) -> None:
    with engine.storage.write() as uow:
        uow.events.append(list(records))  # type: ignore[arg-type]


def test_a_sync_writes_a_file_per_day_that_pyarrow_reads_with_its_date(engine: Engine) -> None:
    append(
        engine,
        event("e1", "u:1", at(0, 5)),
        event("e2", "u:2", at(0, 9), item_id="i2"),
        event("e3", "u:1", at(2, 1), value=3.25),
    )
    first = engine.lake.sync()
    assert (first.copied, first.days, first.rebuilt) == (3, ["2025-12-22", "2025-12-24"], False)
    root = engine.settings.home / "lake"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert files == [
        "events/date=2025-12-22/part-00000001-0.parquet",
        "events/date=2025-12-24/part-00000001-0.parquet",
    ]
    dataset = ds.dataset(root / "events", format="parquet", partitioning="hive")
    table = dataset.to_table().sort_by("event_id")
    assert table["event_id"].to_pylist() == ["e1", "e2", "e3"]
    assert table["date"].to_pylist() == ["2025-12-22", "2025-12-22", "2025-12-24"]
    assert set(EVENT_COLUMNS.names) < set(table.column_names)
    assert orjson.loads(table["properties"][0].as_py()) == {"k": [1, "two", {"three": 3.5}]}
    manifest = orjson.loads((root / "manifest.json").read_bytes())
    assert manifest["write_seq"] == first.write_seq
    assert manifest["days"]["2025-12-24"]["rows"] == 1

    again = engine.lake.sync()
    assert (again.copied, again.days, again.write_seq) == (0, [], first.write_seq)
    assert_same_as_the_store(engine)


def test_events_of_the_same_millisecond_are_neither_missed_nor_doubled(engine: Engine) -> None:
    # Each write adds events at moments the lake already holds, ids before and after theirs;
    # one more is late, into a day already written.
    append(engine, *(event(f"m{n}", f"u:{n % 3}", at(1, 7)) for n in (2, 5, 8)))
    engine.lake.sync()
    append(engine, *(event(f"m{n}", f"u:{n % 3}", at(1, 7)) for n in (1, 6, 9)))
    append(engine, event("m0", "u:9", at(1, 7)), event("m7", "u:9", at(1, 6)))
    engine.lake.sync()
    append(engine, event("m3", "u:3", at(1, 7)), event("late", "u:3", at(0, 1)))
    moments = [at(1, 7), at(1, 8), at(1, 6), at(1), at(0, 2)]
    assert_same_as_the_store(engine, *moments)
    ids = lake_rows(engine)["event_id"].to_pylist()
    assert ids == ["late", "m7", *(f"m{n}" for n in (0, 1, 2, 3, 5, 6, 8, 9))]


def test_the_lake_reads_what_the_store_reads_chunk_by_chunk_over_many_days(
    engine: Engine,
) -> None:
    # Six writes of events spread over nine days, out of time order within and across writes,
    # read by the lake three rows at a time (the store then reads them in time order).
    small = ParquetEventLake(engine.lake.root, engine.storage, chunk_rows=3)
    for write in range(6):
        append(
            engine,
            *(
                event(
                    f"w{write}-{n}",
                    f"u:{n % 4}",
                    at((n * 7 + write) % 9, (n * 13) % 5),
                    item_id=None if n % 5 == 0 else f"i{n % 3}",
                    type="impression" if n % 7 == 0 else "view",
                    value=None if n % 2 else n / 3,
                )
                for n in range(12)
            ),
        )
        if write % 2:
            small.sync()
    moments = [at(day, ms) for day in range(10) for ms in (0, 3)]
    assert_same_as_the_store(engine, *moments)


def test_a_first_copy_waits_for_its_files_beyond_a_bound_of_rows(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first sync hands the days' files to its writer thread; when more than
    ``PENDING_ROWS`` rows wait (a slow disk), it waits for the oldest before going on."""
    append(engine, *(event(f"e{n}", f"u:{n % 3}", at(n % 8, n)) for n in range(40)))
    handed, written, most_waiting = [0], [0], [0]
    write, write_file = lake_module._DayFiles.write, lake_module._write_file

    def hand(files: lake_module._DayFiles, path: Path, table: pa.Table) -> None:
        write(files, path, table)
        handed[0] += table.num_rows
        most_waiting[0] = max(most_waiting[0], handed[0] - written[0])

    def slow_write(path: Path, table: pa.Table) -> None:
        time.sleep(0.02)
        write_file(path, table)
        written[0] += table.num_rows

    monkeypatch.setattr(lake_module, "PENDING_ROWS", 6)
    monkeypatch.setattr(lake_module._DayFiles, "write", hand)
    monkeypatch.setattr(lake_module, "_write_file", slow_write)
    columns = engine.lake.interaction_columns()
    assert written[0] < 40  # training's columns came back before every file was written
    assert columns.equals(engine.storage.interaction_columns())
    engine.lake.wait()
    assert written[0] == 40
    assert 5 <= most_waiting[0] <= 6 + 5  # the bound, plus the day handed over (5 rows a day)
    assert lake_rows(engine).equals(store_rows(engine))


def test_a_first_copy_that_fails_to_write_leaves_no_lake_and_the_next_sync_copies_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    append(engine, *(event(f"e{n}", "u:1", at(n)) for n in range(6)))
    calls, write_file = [0], lake_module._write_file

    def full_disk(path: Path, table: pa.Table) -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise OSError(28, "No space left on device")
        write_file(path, table)

    monkeypatch.setattr(lake_module, "_write_file", full_disk)
    # training still gets its columns: the store keeps every event, the lake is a copy
    assert engine.lake.interaction_columns().equals(engine.storage.interaction_columns())
    engine.lake.wait()
    assert "the lake's first copy failed" in caplog.text
    assert not (engine.lake.root / "manifest.json").exists()
    assert engine.lake.files() == []
    monkeypatch.undo()
    assert engine.lake.sync().copied == 6
    assert len(list(engine.lake.root.rglob("*.parquet"))) == 6  # the failed copy's are gone
    assert_same_as_the_store(engine)


def test_a_merge_after_a_sync_moves_the_copied_events_to_the_persons_key(
    engine: Engine,
) -> None:
    engine.ingest.ingest(
        [
            {
                "event_id": "v1",
                "type": "view",
                "anonymous_id": "anon",
                "item_id": "i1",
                "timestamp": at(0) / 1000,
            },
            {
                "event_id": "v2",
                "type": "view",
                "anonymous_id": "anon",
                "item_id": "i2",
                "timestamp": at(3) / 1000,
            },
        ]
    )
    engine.lake.sync()
    assert set(lake_rows(engine)["profile_key"].to_pylist()) == {"a:anon"}
    engine.ingest.ingest(
        [
            {
                "event_id": "v3",
                "type": "identify",
                "anonymous_id": "anon",
                "user_id": "ann",
                "timestamp": at(4) / 1000,
            }
        ]
    )
    report = engine.lake.sync()
    assert report.copied == 3  # the identify, and the two events moved to the user's key
    assert set(lake_rows(engine)["profile_key"].to_pylist()) == {"u:ann"}
    assert lake_rows(engine).num_rows == 3
    assert_same_as_the_store(engine, at(1))


def test_a_crash_before_the_manifest_leaves_the_lake_as_it_was(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(engine, event("a", "u:1", at(0)), event("b", "u:1", at(1)))
    engine.lake.sync()
    before = lake_rows(engine)
    append(engine, event("c", "u:1", at(1, 1)), event("d", "u:2", at(2)))

    def die(_: object) -> None:
        raise KeyboardInterrupt  # the process ends here: the new files are written, not named

    monkeypatch.setattr(lake_module._Work, "save_manifest", die)
    with pytest.raises(KeyboardInterrupt):
        engine.lake.sync()
    monkeypatch.undo()
    root = engine.lake.root
    assert len(list(root.rglob("*.parquet"))) == 4  # two named, two of the dead sync
    assert lake_rows(engine).equals(before)  # reads see only what the manifest names
    report = engine.lake.sync()
    assert report.copied == 2
    assert len(list(root.rglob("*.parquet"))) == 3  # the leftovers are gone
    assert_same_as_the_store(engine)


def test_a_crash_after_the_manifest_leaves_old_files_the_next_sync_deletes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    append(engine, event("a", "u:1", at(0)))
    engine.lake.sync()
    append(engine, event("b", "u:1", at(0, 1)))
    monkeypatch.setattr(Path, "unlink", lambda *_, **__: None)  # the files outlive the process
    engine.lake.sync()
    monkeypatch.undo()
    root = engine.lake.root
    assert len(list(root.rglob("*.parquet"))) == 2
    engine.lake.sync()
    assert [p.name for p in root.rglob("*.parquet")] == ["part-00000002-0.parquet"]
    assert_same_as_the_store(engine)


def test_a_lake_of_another_store_or_asked_to_is_copied_again(engine: Engine) -> None:
    append(engine, event("a", "u:1", at(0)), event("b", "u:1", at(3)))
    engine.lake.sync()
    manifest_path = engine.lake.root / "manifest.json"
    manifest = orjson.loads(manifest_path.read_bytes())
    # another store's lake: its own days and log, copied further than this store has written
    manifest.update(log_id="another-store", write_seq=manifest["write_seq"] + 100)
    manifest_path.write_bytes(orjson.dumps(manifest))
    report = engine.lake.sync()
    assert (report.rebuilt, report.copied) == (True, 2)
    assert_same_as_the_store(engine)
    again = engine.lake.sync(rebuild=True)
    assert (again.rebuilt, again.copied) == (True, 2)
    assert_same_as_the_store(engine)


def test_an_empty_store_gives_an_empty_lake_with_training_columns(engine: Engine) -> None:
    assert engine.lake.sync().copied == 0
    assert engine.lake.files() == []
    assert engine.lake.interaction_columns().equals(engine.storage.interaction_columns())
    append(engine, event("a", "u:1", at(0), item_id=None))  # no item: nothing to learn from
    assert engine.lake.interaction_columns().num_rows == 0
    assert pc.sum(pc.is_null(lake_rows(engine)["item_id"])).as_py() == 1


@pytest.mark.postgres
def test_a_write_that_commits_after_a_younger_one_still_reaches_the_lake(
    tmp_path: Path, postgres_schema_url: str, clock: FakeClock
) -> None:
    """PostgreSQL's parallel writes commit in any order: a sync while an older write is open
    copies nothing past it, and the next one copies both writes, each event once."""
    engine = open_engine(tmp_path, postgres_schema_url, clock)
    try:
        with engine.storage.write(parallel=True) as older:
            older.events.append([event("e1", "u:1", at(0, 5))])
            with engine.storage.write(parallel=True) as younger:
                younger.events.append([event("e2", "u:2", at(0, 9))])
            with engine.storage.read() as uow:  # committed, and younger
                assert set(uow.events.payload_hashes(["e1", "e2"])) == {"e2"}
            engine.lake.sync()
            assert lake_rows(engine).num_rows == 0  # the older write may still commit
        engine.lake.sync()
        assert sorted(lake_rows(engine)["event_id"].to_pylist()) == ["e1", "e2"]
        assert_same_as_the_store(engine)
    finally:
        engine.close()


@pytest.mark.postgres
def test_a_transaction_in_another_database_does_not_hold_the_lake_back(
    tmp_path: Path, postgres_schema_url: str, clock: FakeClock
) -> None:
    """Transaction ids are the server's: one running in another database (with an id older
    than this store's writes) writes nothing here, and the writes after it are copied."""
    other_database = POSTGRES_URL.rsplit("/", 1)[0] + "/postgres"
    engine = open_engine(tmp_path, postgres_schema_url, clock)
    elsewhere = create_engine(normalize_url(other_database))
    try:
        with elsewhere.connect() as connection, connection.begin():
            connection.execute(text("SELECT pg_current_xact_id()"))  # holds an id, stays open
            append(engine, event("e1", "u:1", at(0, 5)))
            engine.lake.sync()
            assert lake_rows(engine)["event_id"].to_pylist() == ["e1"]
    finally:
        elsewhere.dispose()
        engine.close()
