"""On SQLite, ingest's statements bypass SQLAlchemy's row processing; they store the same bytes."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from persona.clock import FakeClock
from persona.engine import Engine
from persona.storage import sql, tables
from tests.conftest import open_engine
from tests.storage.test_contract import event, item


@pytest.fixture(params=["jsonb", "executemany"])
def sqlite_engine(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Engine:
    """An engine on SQLite, appending events by each of its two statements."""
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", clock)
    with engine.storage.read() as uow:
        jsonb = sql.has_jsonb(uow.connection)
    if request.param == "executemany":
        monkeypatch.setattr(sql, "has_jsonb", lambda connection: False)
    elif not jsonb:
        message = "this SQLite binding has no JSONB (pysqlite3-binary is not installed)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield engine  # type: ignore[misc]
    engine.close()


def _raw_rows(tmp_path: Path) -> dict[str, tuple[object, ...]]:
    """Each event's stored bytes, but for the number of the write that stored it."""
    columns = ", ".join(c.name for c in tables.events.columns if c.name != "write_seq")
    with sqlite3.connect(tmp_path / "p.db") as connection:
        rows = connection.execute(f"SELECT {columns} FROM events ORDER BY event_id").fetchall()
    return {str(row[0]): tuple(row[1:]) for row in rows}


@pytest.mark.parametrize(
    ("properties", "context"),
    [(None, None), ({"k": [1, "two", {"three": 3.5}], "é": "ü"}, {"device": "mobile"})],
)
def test_append_stores_what_the_core_statement_stores(
    sqlite_engine: Engine, tmp_path: Path, properties: object, context: object
) -> None:
    fast, core = (
        event(name, properties=properties, context=context, value=2.5, payload_hash="h")
        for name in ("a", "b")
    )
    with sqlite_engine.storage.write() as uow:
        assert uow.events.append([fast]) == {"a"}
    with sqlite_engine.storage.engine.begin() as connection:
        values = {name: getattr(core, name) for name in core.__slots__}
        connection.execute(tables.events.insert(), values)
    rows = _raw_rows(tmp_path)
    assert rows["a"] == rows["b"]
    with sqlite_engine.storage.read() as uow:
        assert uow.events.get("a") == fast


def test_saved_states_are_stored_as_the_core_statement_stores_them(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    state = {"counts": {"rate": 2}, "affinity": {"Drama": 0.5}, "recent": [["i1", 7]], "é": "ü"}
    with sqlite_engine.storage.write() as uow:
        uow.profiles.save_states({"u:fast": state}, 5)
        uow.profiles.save_states({"u:fast": {**state, "counts": {"rate": 3}}}, 6)  # an update
    with sqlite_engine.storage.engine.begin() as connection:
        connection.execute(
            tables.profiles.insert(),
            {
                "profile_key": "u:core",
                "state": {**state, "counts": {"rate": 3}},
                "updated_at_ms": 6,
            },
        )
    with sqlite3.connect(tmp_path / "p.db") as connection:
        rows = dict(connection.execute("SELECT profile_key, state FROM profiles").fetchall())
    assert rows["u:fast"] == rows["u:core"]
    with sqlite_engine.storage.read() as uow:
        loaded = uow.profiles.load(["u:fast"])["u:fast"]
    assert loaded.state == {**state, "counts": {"rate": 3}} and loaded.updated_at_ms == 6


def test_append_skips_ids_repeated_within_one_call(sqlite_engine: Engine) -> None:
    with sqlite_engine.storage.write() as uow:
        first, again = event("e1", payload_hash="first"), event("e1", payload_hash="again")
        assert uow.events.append([first, again, event("e2")]) == {"e1", "e2"}
    with sqlite_engine.storage.read() as uow:
        assert uow.events.payload_hashes(["e1", "e2", "e3"]) == {"e1": "first", "e2": "h-e2"}


def test_lookups_take_any_number_of_ids(sqlite_engine: Engine) -> None:
    ids = [f"i{n}" for n in range(2500)]
    with sqlite_engine.storage.write() as uow:
        uow.catalog.upsert([item(i, categories=[i, "all"]) for i in ids[::2]])
        uow.events.append([event(i) for i in ids[::3]])
    with sqlite_engine.storage.read() as uow:
        categories = uow.catalog.categories_for([*ids, 'quote"d', "back\\slash"])
        hashes = uow.events.payload_hashes(ids)
    assert categories == {i: [i, "all"] for i in ids[::2]}
    assert hashes == {i: f"h-{i}" for i in ids[::3]}


def test_ids_looked_up_and_then_appended_are_not_new_twice(sqlite_engine: Engine) -> None:
    with sqlite_engine.storage.write() as uow:
        assert uow.events.payload_hashes(["e1", "e2"]) == {}
        assert uow.events.append([event("e1")]) == {"e1"}
        assert uow.events.append([event("e1"), event("e2")]) == {"e2"}
        assert uow.events.append([event("e2")]) == set()
        assert uow.events.payload_hashes(["e1", "e2"]) == {"e1": "h-e1", "e2": "h-e2"}
        assert uow.events.payload_hashes(["e3"]) == {}  # looked up, then sent twice in one call
        twice = [event("e3", payload_hash="first"), event("e3", payload_hash="again")]
        assert uow.events.append(twice) == {"e3"}
        assert uow.events.payload_hashes(["e3"]) == {"e3": "first"}


def test_a_single_statement_write_commits_and_tells_the_listeners(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    heard: list[set[str] | None] = []
    sqlite_engine.storage.add_commit_listener(heard.append)
    sqlite_engine.storage.write_statement(
        "INSERT INTO quarantine (code, message, raw, source, received_at_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        ("test", "m", "{}", "api", 1),
    )
    # Another connection (another process, say) sees it: it was committed, not left open.
    with sqlite3.connect(tmp_path / "p.db") as connection:
        assert connection.execute("SELECT code FROM quarantine").fetchall() == [("test",)]
    assert heard == [set()]  # committed, changing no profile


def test_a_failed_single_statement_write_stores_nothing(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    rows = '[["a", 1], ["b", null]]'  # the second row breaks a NOT NULL constraint
    driver = sqlite_engine.storage.engine.dialect.dbapi
    assert driver is not None
    with pytest.raises(driver.IntegrityError):
        sqlite_engine.storage.write_statement(
            "INSERT INTO quarantine (code, message, raw, source, received_at_ms)"
            " SELECT json_extract(value, '$[0]'), 'm', '{}', 'api', json_extract(value, '$[1]')"
            " FROM json_each(?)",
            (rows,),
        )
    with sqlite3.connect(tmp_path / "p.db") as connection:
        assert connection.execute("SELECT count(*) FROM quarantine").fetchall() == [(0,)]


def test_appending_stores_the_rows_append_stores(sqlite_engine: Engine, tmp_path: Path) -> None:
    documents = {
        "properties": {"k": [1, "two"]},
        "context": {"device": "tv"},
        "value": 0.1,
        "payload_hash": "h",
    }
    with sqlite_engine.storage.write() as uow:
        assert uow.events.payload_hashes(["a", "b"]) == {}
        with uow.events.appending([event("a", **documents)]) as appended:
            pass
        assert appended.ids == {"a"}
        assert uow.events.append([event("b", **documents)]) == {"b"}
    rows = _raw_rows(tmp_path)
    assert rows["a"] == rows["b"]


def _append_in_child(path: str) -> None:
    engine = open_engine(Path(path), f"sqlite:///{path}/child.db", FakeClock(1_000))
    with engine.storage.write() as uow, uow.events.appending([event("child")]) as appended:
        pass
    engine.close()
    os._exit(0 if appended.ids == {"child"} else 1)


def test_appending_works_in_a_forked_child(sqlite_engine: Engine, tmp_path: Path) -> None:
    """The helper thread is started in the parent; a child made by fork starts its own."""
    import multiprocessing

    with sqlite_engine.storage.write() as uow, uow.events.appending([event("parent")]):
        pass
    child = multiprocessing.get_context("fork").Process(
        target=_append_in_child, args=(str(tmp_path),)
    )
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the child hung on its first append")
    assert child.exitcode == 0
