"""SQLAlchemy Core implementation of the storage interfaces, for SQLite and PostgreSQL.

One class per interface, bound to the connection of a unit of work. The two dialects differ in
few places (upserts, the write lock); those are named where they happen.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any, TypeVar

import orjson
from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, Row

from persona.storage import tables
from persona.storage.database import WRITE_OPTION, create_database_engine
from persona.storage.item_cache import CategoryCache
from persona.storage.protocols import Appended, CommitListener
from persona.storage.records import (
    ApiKeyRecord,
    EventRecord,
    Interaction,
    ItemRecord,
    ProfileRecord,
    QuarantineRecord,
)

T = TypeVar("T")
IN_CHUNK = 900  # stay below every SQLite build's bound on bound parameters
# PostgreSQL: writers that read-modify-write profiles take this transaction-level advisory lock,
# which gives them the same one-writer-at-a-time guarantee SQLite's BEGIN IMMEDIATE gives.
PG_WRITE_LOCK = 0x70657273


def _chunks(values: Sequence[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


UpsertInsert = sqlite.Insert | postgresql.Insert

# SQLite fast paths for the statements of every ingest batch and profile read. SQLAlchemy's
# per-statement and per-row work costs about as much as SQLite's own (see BENCHMARKS.md), so on
# SQLite these go to the driver as plain SQL with tuples; PostgreSQL keeps the Core statements
# below them. A list of ids travels as one JSON parameter read by `json_each`, instead of a
# 900-value IN list. tests/storage/test_sqlite_fast_paths.py checks both store the same bytes.
_SQLITE_APPEND = """
INSERT INTO events (
    event_id, type, profile_key, user_id, anonymous_id, item_id, occurred_at_ms, received_at_ms,
    value, properties, context, decision_id, payload_hash, source
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING
"""
# The same rows as one JSON array of arrays, read as JSONB (SQLite 3.45 and later): one call into
# SQLite for the whole batch, which parses the text once and runs without the interpreter lock.
# The parameter is text: a blob would be taken for JSONB if its first bytes happened to fit.
# ("WHERE true" tells the parser that ON CONFLICT is not a join constraint.)
_SQLITE_APPEND_JSONB = """
INSERT INTO events (
    event_id, type, profile_key, user_id, anonymous_id, item_id, occurred_at_ms, received_at_ms,
    value, properties, context, decision_id, payload_hash, source
)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6,
    value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13
FROM jsonb_each(jsonb(?)) WHERE true
ON CONFLICT (event_id) DO NOTHING
"""
_SQLITE_PAYLOAD_HASHES = (
    "SELECT event_id, payload_hash FROM events WHERE event_id IN (SELECT value FROM json_each(?))"
)
_SQLITE_SAVE_STATES = """
INSERT INTO profiles (profile_key, state, updated_at_ms) VALUES (?, ?, ?)
ON CONFLICT (profile_key) DO UPDATE
SET state = excluded.state, updated_at_ms = excluded.updated_at_ms
"""
_SQLITE_PROFILES = (
    "SELECT profile_key, state, traits, updated_at_ms FROM profiles"
    " WHERE profile_key IN (SELECT value FROM json_each(?))"
)
_SQLITE_ALIAS_LINKS = (
    "SELECT alias_key, profile_key FROM aliases WHERE alias_key IN (SELECT value FROM json_each(?))"
)
_SQLITE_ALIASES_OF = "SELECT alias_key FROM aliases WHERE profile_key = ? ORDER BY alias_key"
_SQLITE_CATEGORIES = (
    "SELECT item_id, categories FROM items WHERE item_id IN (SELECT value FROM json_each(?))"
)


def _is_sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


def driver_connection(connection: Connection) -> Any:
    """The driver's connection under ``connection``, inside the transaction it has open.

    Hot paths on SQLite (ingest batches, profile reads) call the driver directly: for statements
    this small, SQLAlchemy's per-execution work costs several times the query itself.
    """
    return connection.connection.driver_connection


_driver = driver_connection


class _Helper:
    """One thread for statements that overlap the caller's Python (SqlEventLog.appending),
    started on first use, and again in a forked child (which inherits no threads)."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, function: Callable[..., int], *arguments: Any) -> Future[int]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="persona-sqlite")
            return self._executor.submit(function, *arguments)

    def forget(self) -> None:
        self._executor = None
        self._lock = threading.Lock()


_HELPER = _Helper()
os.register_at_fork(after_in_child=_HELPER.forget)


def _insert_jsonb(
    driver: Any, rows: list[tuple[Any, ...]], started: threading.Event | None = None
) -> int:
    """Store event rows by ``_SQLITE_APPEND_JSONB``; returns how many were stored."""
    if started is not None:
        started.set()  # for a caller on another thread, waiting until this one runs
    return int(driver.execute(_SQLITE_APPEND_JSONB, (orjson.dumps(rows).decode(),)).rowcount)


def has_jsonb(connection: Connection) -> bool:
    """Whether the SQLite under ``connection`` reads JSONB (3.45 and later; see sqlite_module)."""
    version: tuple[int, ...] = connection.dialect.dbapi.sqlite_version_info  # type: ignore[union-attr]
    return version >= (3, 45)


def json_text(value: Any) -> str:
    """A JSON document as the engine's serializer writes it (so both paths store the same);
    also a list of ids as the one parameter a statement reads with ``json_each``."""
    return "null" if value is None else orjson.dumps(value).decode()


def _document(text: str | None) -> Any:
    """A JSON column as SQLAlchemy's JSON type reads it: SQL NULL and JSON null are None."""
    return None if text is None else orjson.loads(text)


def _event_row(e: EventRecord) -> tuple[Any, ...]:
    """The parameters of ``_SQLITE_APPEND``, in its column order."""
    return (
        e.event_id,
        e.type,
        e.profile_key,
        e.user_id,
        e.anonymous_id,
        e.item_id,
        e.occurred_at_ms,
        e.received_at_ms,
        e.value,
        json_text(e.properties),
        json_text(e.context),
        e.decision_id,
        e.payload_hash,
        e.source,
    )


def _insert(connection: Connection, table: Table) -> UpsertInsert:
    """An INSERT with the dialect's ON CONFLICT clauses (both dialects spell them the same)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class SqlEventLog:
    def __init__(self, connection: Connection) -> None:
        self._c = connection
        # SQLite: ids this transaction looked up and did not find. Its snapshot cannot change
        # under it, so they stay absent until it appends them itself.
        self._absent: set[str] = set()

    def payload_hashes(self, event_ids: Sequence[str]) -> dict[str, str]:
        if _is_sqlite(self._c):
            ids = json_text(list(event_ids))
            hashes = dict(_driver(self._c).execute(_SQLITE_PAYLOAD_HASHES, (ids,)).fetchall())
            self._absent.update(i for i in event_ids if i not in hashes)
            return hashes
        t = tables.events
        found: dict[str, str] = {}
        for chunk in _chunks(list(event_ids)):
            rows = self._c.execute(
                select(t.c.event_id, t.c.payload_hash).where(t.c.event_id.in_(chunk))
            )
            found.update((row.event_id, row.payload_hash) for row in rows)
        return found

    def append(self, events: Sequence[EventRecord]) -> set[str]:
        if not events:
            return set()
        if _is_sqlite(self._c):
            return self._append_sqlite(events)
        t = tables.events
        statement = (
            _insert(self._c, t)
            .on_conflict_do_nothing(index_elements=[t.c.event_id])
            .returning(t.c.event_id)
        )
        rows = [
            {
                "event_id": e.event_id,
                "type": e.type,
                "profile_key": e.profile_key,
                "user_id": e.user_id,
                "anonymous_id": e.anonymous_id,
                "item_id": e.item_id,
                "occurred_at_ms": e.occurred_at_ms,
                "received_at_ms": e.received_at_ms,
                "value": e.value,
                "properties": e.properties,
                "context": e.context,
                "decision_id": e.decision_id,
                "payload_hash": e.payload_hash,
                "source": e.source,
            }
            for e in events
        ]
        return set(self._c.execute(statement, rows).scalars())

    def _append_sqlite(self, events: Sequence[EventRecord]) -> set[str]:
        rows, fresh_ids = self._new_rows(events)
        driver = _driver(self._c)
        if has_jsonb(self._c):
            stored = _insert_jsonb(driver, rows)
        else:
            stored = driver.executemany(_SQLITE_APPEND, rows).rowcount
        self._appended(rows, stored, fresh_ids)
        return fresh_ids

    @contextmanager
    def appending(self, events: Sequence[EventRecord]) -> Iterator[Appended]:
        """Append ``events`` while the block runs; after it, ``Appended.ids`` holds the ids
        actually inserted.

        On SQLite with JSONB the insert is one statement, run on a helper thread: SQLite works
        without the interpreter lock, so the block's Python (ingest folds the profiles) runs
        at the same time. The block must not use this transaction. Elsewhere the events are
        appended before the block runs.
        """
        appended = Appended()
        if not events or not _is_sqlite(self._c) or not has_jsonb(self._c):
            appended.ids = self.append(events)
            yield appended
            return
        rows, fresh_ids = self._new_rows(events)
        started = threading.Event()
        stored = _HELPER.submit(_insert_jsonb, _driver(self._c), rows, started)
        # Wait for the helper to hold the interpreter lock: were this thread to go straight on
        # with Python, the helper could wait a whole switch interval (5 ms) to start.
        started.wait()
        try:
            yield appended
        finally:
            count = stored.result()  # the transaction goes on (or rolls back) only after this
        self._appended(rows, count, fresh_ids)
        appended.ids = fresh_ids

    def _new_rows(self, events: Sequence[EventRecord]) -> tuple[list[tuple[Any, ...]], set[str]]:
        """The rows of the events whose ids are new (the first of each id), and those ids."""
        # Without RETURNING (which executemany cannot give), the new ids are those this
        # transaction's snapshot does not hold; SQLite refuses to write over a newer snapshot.
        absent = self._absent
        ids = [e.event_id for e in events]
        fresh_ids = set(ids)
        if len(fresh_ids) == len(ids) and absent.issuperset(fresh_ids):
            # ingest's case: each id once, and looked up by this transaction already
            return [_event_row(e) for e in events], fresh_ids
        unchecked = [i for i in ids if i not in absent]
        known = self.payload_hashes(unchecked) if unchecked else {}
        fresh = {e.event_id: e for e in reversed(events) if e.event_id not in known}
        return [_event_row(e) for e in events if fresh.get(e.event_id) is e], set(fresh)

    def _appended(self, rows: list[tuple[Any, ...]], stored: int, fresh_ids: set[str]) -> None:
        if stored != len(rows):
            raise RuntimeError("the event log changed under an open transaction")
        self._absent.difference_update(fresh_ids)

    def reassign_profile(self, from_key: str, to_key: str) -> int:
        t = tables.events
        result = self._c.execute(
            update(t).where(t.c.profile_key == from_key).values(profile_key=to_key)
        )
        return int(result.rowcount)

    def for_profile(self, profile_key: str, limit: int) -> list[EventRecord]:
        t = tables.events
        rows = self._c.execute(
            select(t)
            .where(t.c.profile_key == profile_key)
            .order_by(t.c.occurred_at_ms.desc(), t.c.event_id.desc())
            .limit(limit)
        )
        return [_event(row) for row in rows]

    def item_history(self, profile_key: str, limit: int) -> list[tuple[str, str, int]]:
        if _is_sqlite(self._c):
            rows = _driver(self._c).execute(_ITEM_HISTORY_QMARK, (profile_key, limit))
        else:
            rows = self._c.exec_driver_sql(_ITEM_HISTORY, (profile_key, limit))
        return [(item, kind, at) for item, kind, at in rows]

    def get(self, event_id: str) -> EventRecord | None:
        row = self._c.execute(
            select(tables.events).where(tables.events.c.event_id == event_id)
        ).first()
        return _event(row) if row else None

    def count(self) -> int:
        return int(self._c.execute(select(func.count()).select_from(tables.events)).scalar_one())

    def interactions(self, batch_size: int = 50_000) -> Iterator[Interaction]:
        t = tables.events
        query = (
            select(t.c.profile_key, t.c.item_id, t.c.type, t.c.occurred_at_ms, t.c.value)
            .where(t.c.item_id.is_not(None))
            .order_by(t.c.occurred_at_ms, t.c.event_id)
        )
        for row in self._c.execution_options(yield_per=batch_size).execute(query):
            yield Interaction(*row)

    def context_item_counts(
        self, field: str, since_ms: int, ignored_types: Sequence[str]
    ) -> list[tuple[str, str, int]]:
        t = tables.events
        value = t.c.context[field].as_string()
        query = (
            select(value, t.c.item_id, func.count())
            .where(
                t.c.occurred_at_ms >= since_ms,
                t.c.item_id.is_not(None),
                t.c.type.not_in(list(ignored_types)),
                value.is_not(None),
            )
            .group_by(value, t.c.item_id)
        )
        return [(str(v), str(item), int(n)) for v, item, n in self._c.execute(query)]

    def popular_items(self, limit: int, ignored_types: Sequence[str]) -> list[str]:
        t = tables.events
        query = (
            select(t.c.item_id)
            .where(t.c.item_id.is_not(None), t.c.type.not_in(list(ignored_types)))
            .group_by(t.c.item_id)
            .order_by(func.count().desc(), t.c.item_id)
            .limit(limit)
        )
        return list(self._c.execute(query).scalars())

    def iter_all(self, batch_size: int = 10_000) -> Iterator[EventRecord]:
        t = tables.events
        result = self._c.execution_options(yield_per=batch_size).execute(
            select(t).order_by(t.c.occurred_at_ms, t.c.event_id)
        )
        for row in result:
            yield _event(row)


_ITEM_HISTORY = (
    "SELECT item_id, type, occurred_at_ms FROM events"
    " WHERE profile_key = %s AND item_id IS NOT NULL"
    " ORDER BY occurred_at_ms DESC, event_id DESC LIMIT %s"
)
_ITEM_HISTORY_QMARK = _ITEM_HISTORY.replace("%s", "?")


def _event(row: Row[Any]) -> EventRecord:
    m = row._mapping
    return EventRecord(**{name: m[name] for name in EventRecord.__slots__})


class SqlQuarantineLog:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, records: Sequence[QuarantineRecord]) -> None:
        if not records:
            return
        rows = [
            {
                "event_id": r.event_id,
                "code": r.code,
                "message": r.message,
                "path": r.path,
                "batch_index": r.batch_index,
                "raw": r.raw,
                "source": r.source,
                "received_at_ms": r.received_at_ms,
            }
            for r in records
        ]
        self._c.execute(tables.quarantine.insert(), rows)

    def list(self, *, after_id: int, limit: int, code: str | None = None) -> list[QuarantineRecord]:
        t = tables.quarantine
        query = select(t).where(t.c.quarantine_id > after_id)
        if code is not None:
            query = query.where(t.c.code == code)
        rows = self._c.execute(query.order_by(t.c.quarantine_id).limit(limit))
        return [_quarantine(row) for row in rows]

    def get(self, quarantine_id: int) -> QuarantineRecord | None:
        t = tables.quarantine
        row = self._c.execute(select(t).where(t.c.quarantine_id == quarantine_id)).first()
        return _quarantine(row) if row else None

    def mark_replayed(self, quarantine_id: int, event_id: str, at_ms: int) -> bool:
        t = tables.quarantine
        result = self._c.execute(
            update(t)
            .where(t.c.quarantine_id == quarantine_id, t.c.replayed_at_ms.is_(None))
            .values(replayed_at_ms=at_ms, replayed_event_id=event_id)
        )
        return bool(result.rowcount == 1)

    def count(self) -> int:
        return int(
            self._c.execute(select(func.count()).select_from(tables.quarantine)).scalar_one()
        )


def _quarantine(row: Row[Any]) -> QuarantineRecord:
    m = row._mapping
    return QuarantineRecord(**{name: m[name] for name in QuarantineRecord.__slots__})


class SqlProfileStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def load(self, profile_keys: Sequence[str]) -> dict[str, ProfileRecord]:
        if _is_sqlite(self._c):
            rows = _driver(self._c).execute(_SQLITE_PROFILES, (json_text(list(profile_keys)),))
            return {
                key: ProfileRecord(key, orjson.loads(state), _document(traits), updated_at_ms)
                for key, state, traits, updated_at_ms in rows
            }
        t = tables.profiles
        found: dict[str, ProfileRecord] = {}
        for chunk in _chunks(list(profile_keys)):
            for row in self._c.execute(select(t).where(t.c.profile_key.in_(chunk))):
                found[row.profile_key] = ProfileRecord(
                    row.profile_key, row.state, row.traits, row.updated_at_ms
                )
        return found

    def save_states(self, states: Mapping[str, dict[str, Any]], at_ms: int) -> None:
        if not states:
            return
        if _is_sqlite(self._c):
            driver_rows = [(key, json_text(state), at_ms) for key, state in states.items()]
            _driver(self._c).executemany(_SQLITE_SAVE_STATES, driver_rows)
            return
        t = tables.profiles
        statement = _insert(self._c, t)
        statement = statement.on_conflict_do_update(
            index_elements=[t.c.profile_key],
            set_={
                "state": statement.excluded.state,
                "updated_at_ms": statement.excluded.updated_at_ms,
            },
        )
        rows = [{"profile_key": k, "state": s, "updated_at_ms": at_ms} for k, s in states.items()]
        self._c.execute(statement, rows)

    def set_traits(
        self, profile_key: str, traits: dict[str, Any], empty_state: dict[str, Any], at_ms: int
    ) -> None:
        t = tables.profiles
        statement = _insert(self._c, t).values(
            profile_key=profile_key, state=empty_state, traits=traits, updated_at_ms=at_ms
        )
        statement = statement.on_conflict_do_update(
            index_elements=[t.c.profile_key],
            set_={
                "traits": statement.excluded.traits,
                "updated_at_ms": statement.excluded.updated_at_ms,
            },
        )
        self._c.execute(statement)

    def delete(self, profile_keys: Sequence[str]) -> None:
        t = tables.profiles
        for chunk in _chunks(list(profile_keys)):
            self._c.execute(delete(t).where(t.c.profile_key.in_(chunk)))

    def resolve_aliases(self, alias_keys: Sequence[str]) -> dict[str, str]:
        if _is_sqlite(self._c):
            ids = json_text(list(alias_keys))
            return dict(_driver(self._c).execute(_SQLITE_ALIAS_LINKS, (ids,)).fetchall())
        t = tables.aliases
        found: dict[str, str] = {}
        for chunk in _chunks(list(alias_keys)):
            rows = self._c.execute(
                select(t.c.alias_key, t.c.profile_key).where(t.c.alias_key.in_(chunk))
            )
            found.update((row.alias_key, row.profile_key) for row in rows)
        return found

    def add_aliases(self, links: Mapping[str, str], at_ms: int) -> None:
        if not links:
            return
        t = tables.aliases
        statement = _insert(self._c, t).on_conflict_do_nothing(index_elements=[t.c.alias_key])
        self._c.execute(
            statement,
            [{"alias_key": a, "profile_key": p, "created_at_ms": at_ms} for a, p in links.items()],
        )

    def aliases_of(self, profile_key: str) -> list[str]:
        if _is_sqlite(self._c):
            rows = _driver(self._c).execute(_SQLITE_ALIASES_OF, (profile_key,))
            return [alias for (alias,) in rows]
        t = tables.aliases
        rows = self._c.execute(
            select(t.c.alias_key).where(t.c.profile_key == profile_key).order_by(t.c.alias_key)
        )
        return list(rows.scalars())

    def count(self) -> int:
        return int(self._c.execute(select(func.count()).select_from(tables.profiles)).scalar_one())


class SqlCatalog:
    def __init__(self, connection: Connection, cache: CategoryCache | None = None) -> None:
        self._c = connection
        self._cache = cache
        self._wrote = False  # this transaction changed items: its reads skip the cache

    def upsert(self, items: Sequence[ItemRecord]) -> None:
        if not items:
            return
        t = tables.items
        statement = _insert(self._c, t)
        columns = [c.name for c in t.columns if c.name != "item_id"]
        statement = statement.on_conflict_do_update(
            index_elements=[t.c.item_id],
            set_={name: statement.excluded[name] for name in columns},
        )
        rows = [{name: getattr(item, name) for name in ItemRecord.__slots__} for item in items]
        self._c.execute(statement, rows)
        version = tables.catalog_version
        self._c.execute(update(version).values(version=version.c.version + 1))
        self._wrote = True

    def get(self, item_id: str) -> ItemRecord | None:
        row = self._c.execute(select(tables.items).where(tables.items.c.item_id == item_id)).first()
        return _item(row) if row else None

    def unavailable_ids(self) -> list[str]:
        t = tables.items
        return list(self._c.execute(select(t.c.item_id).where(t.c.available.is_(False))).scalars())

    def categories_for(self, item_ids: Sequence[str]) -> dict[str, list[str]]:
        cache = self._cache
        if cache is None or self._wrote or not item_ids:
            return self._read_categories(item_ids)
        version = self._c.execute(select(tables.catalog_version.c.version)).scalar()
        if version is None:  # a schema made without the migrations: no version to check
            return self._read_categories(item_ids)
        found, missing = cache.lookup(version, item_ids)
        if missing:
            read = self._read_categories(missing)
            cache.fill(version, missing, read)
            found.update(read)
        return found

    def _read_categories(self, item_ids: Sequence[str]) -> dict[str, list[str]]:
        if _is_sqlite(self._c):
            ids = json_text(list(item_ids))
            rows = _driver(self._c).execute(_SQLITE_CATEGORIES, (ids,))
            return {item_id: orjson.loads(document) for item_id, document in rows}
        t = tables.items
        found: dict[str, list[str]] = {}
        for chunk in _chunks(list(item_ids)):
            rows = self._c.execute(
                select(t.c.item_id, t.c.categories).where(t.c.item_id.in_(chunk))
            )
            found.update((row.item_id, row.categories) for row in rows)
        return found

    def list(self, *, after_id: str | None, limit: int) -> list[ItemRecord]:
        t = tables.items
        query = select(t).order_by(t.c.item_id).limit(limit)
        if after_id is not None:
            query = query.where(t.c.item_id > after_id)
        return [_item(row) for row in self._c.execute(query)]

    def count(self) -> int:
        return int(self._c.execute(select(func.count()).select_from(tables.items)).scalar_one())


def _item(row: Row[Any]) -> ItemRecord:
    m = row._mapping
    return ItemRecord(**{name: m[name] for name in ItemRecord.__slots__})


class SqlKeyStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, record: ApiKeyRecord) -> None:
        self._c.execute(
            tables.api_keys.insert().values(
                key_id=record.key_id,
                name=record.name,
                secret_hash=record.secret_hash,
                scopes=list(record.scopes),
                created_at_ms=record.created_at_ms,
                revoked_at_ms=record.revoked_at_ms,
            )
        )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        t = tables.api_keys
        row = self._c.execute(select(t).where(t.c.key_id == key_id)).first()
        return _key(row) if row else None

    def list(self) -> list[ApiKeyRecord]:
        t = tables.api_keys
        return [_key(row) for row in self._c.execute(select(t).order_by(t.c.created_at_ms))]

    def revoke(self, key_id: str, at_ms: int) -> bool:
        t = tables.api_keys
        result = self._c.execute(
            update(t)
            .where(t.c.key_id == key_id, t.c.revoked_at_ms.is_(None))
            .values(revoked_at_ms=at_ms)
        )
        return bool(result.rowcount == 1)


def _key(row: Row[Any]) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(**{name: m[name] for name in ApiKeyRecord.__slots__})


class SqlUnitOfWork:
    def __init__(self, connection: Connection, categories: CategoryCache | None = None) -> None:
        self.connection = connection  # for domains that query with their own SQL (segments)
        self.events = SqlEventLog(connection)
        self.quarantine = SqlQuarantineLog(connection)
        self.profiles = SqlProfileStore(connection)
        self.catalog = SqlCatalog(connection, categories)
        self.keys = SqlKeyStore(connection)
        self.changed_profiles: set[str] | None = None  # None: not declared, so any

    def changes_profiles(self, profile_keys: Iterable[str]) -> None:
        if self.changed_profiles is None:
            self.changed_profiles = set()
        self.changed_profiles.update(profile_keys)


class SqlStorage:
    """Storage on one SQLAlchemy engine (SQLite in WAL mode, or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._commit_listeners: list[CommitListener] = []
        self._categories = CategoryCache()
        self._beside: Engine | None = None  # see read_beside_write
        self._beside_lock = threading.Lock()

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._commit_listeners.append(listener)

    @contextmanager
    def write(self) -> Iterator[SqlUnitOfWork]:
        options = {WRITE_OPTION: True}
        with self.engine.connect().execution_options(**options) as connection, connection.begin():
            if self.dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK})
            uow = SqlUnitOfWork(connection, self._categories)
            yield uow
        # Committed (an exception would have left above): readers can now see the change.
        for listener in self._commit_listeners:
            listener(uow.changed_profiles)

    def write_statement(self, statement: str, parameters: Sequence[Any]) -> None:
        """Run one SQLite statement as a transaction of its own, committed when this returns.

        For the hottest appends (the decision log): the driver takes the write lock, runs the
        statement and commits (durably, as ``synchronous`` says) in one call, so the calling
        thread gives up the interpreter lock once instead of three times (``BEGIN``, the
        statement, ``COMMIT``). Each time, taking it back can wait a whole switch interval
        (5 ms) while the event loop is busy. The statement changes no profile.
        """
        if self.dialect != "sqlite":
            raise TypeError("write_statement is for SQLite; use write() elsewhere")
        connection = self.engine.raw_connection()
        try:
            # The driver is in autocommit mode (see ``_configure_sqlite``): no transaction is
            # open here, so SQLite wraps the statement in one of its own.
            connection.driver_connection.execute(statement, parameters)  # type: ignore[union-attr]
        finally:
            connection.close()
        for listener in self._commit_listeners:
            listener(set())

    @contextmanager
    def read(self) -> Iterator[SqlUnitOfWork]:
        with self.engine.connect() as connection, connection.begin():
            yield SqlUnitOfWork(connection, self._categories)

    @contextmanager
    def read_beside_write(self) -> Iterator[SqlUnitOfWork]:
        """A read transaction for the thread that holds the write lock, on a connection of its
        own: it never waits for the shared pool, which writers queued for the lock may hold
        entirely. One writer at a time, so one connection."""
        with self._beside_lock:
            if self._beside is None:
                url = self.engine.url.render_as_string(hide_password=False)
                self._beside = create_database_engine(url, connections=1)
            beside = self._beside
        with beside.connect() as connection, connection.begin():
            yield SqlUnitOfWork(connection, self._categories)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()
        if self._beside is not None:
            self._beside.dispose()
