"""The event log: appends (on SQLite one JSONB statement beside the caller's Python), reads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Row

from persona.storage import tables
from persona.storage.protocols import Appended
from persona.storage.records import (
    EventRecord,
    RecentEvent,
)
from persona.storage.sql.common import (
    IN_CHUNK,
    bucket_start,
    chunks,
    driver_connection,
    has_jsonb,
    is_sqlite,
    json_text,
)

# Profiles merged by identify events: one statement the driver runs per merged key.
_SQLITE_REASSIGN = "UPDATE events SET profile_key = ?, write_seq = ? WHERE profile_key = ?"

_SQLITE_APPEND = """
INSERT INTO events (
    event_id, type, profile_key, user_id, anonymous_id, item_id, occurred_at_ms, received_at_ms,
    value, properties, context, decision_id, payload_hash, source, write_seq
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING
"""
# The same rows as one JSON array of arrays, read as JSONB (SQLite 3.45 and later): one call into
# SQLite for the whole batch, which parses the text once and runs without the interpreter lock.
# The parameter is text: a blob would be taken for JSONB if its first bytes happened to fit.
# ("WHERE true" tells the parser that ON CONFLICT is not a join constraint.) The write's number
# is one parameter for every row.
_SQLITE_APPEND_JSONB = """
INSERT INTO events (
    event_id, type, profile_key, user_id, anonymous_id, item_id, occurred_at_ms, received_at_ms,
    value, properties, context, decision_id, payload_hash, source, write_seq
)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, value ->> 6,
    value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11, value ->> 12, value ->> 13,
    ?2
FROM jsonb_each(jsonb(?1)) WHERE true
ON CONFLICT (event_id) DO NOTHING
"""
_SQLITE_NEXT_WRITE = "UPDATE event_sequence SET last = last + 1 WHERE id = 1 RETURNING last"
_POSTGRES_WRITE_NUMBER = "SELECT pg_current_xact_id()::text::bigint"
# PostgreSQL: the batch as one JSON array of arrays, as SQLite's JSONB statement takes it.
# SQLAlchemy's many-row INSERT has the driver parse a statement of 15 parameters a row anew for
# every batch, and arrays a column have it escape every string with a regular expression (each
# a quarter to a third of an ingest process's time, measured); orjson writes the text in one
# call and the server parses it. Documents stay JSON inside it (JSON null for none, as the JSON
# type stores them).
_POSTGRES_APPEND = """
INSERT INTO events (
    event_id, type, profile_key, user_id, anonymous_id, item_id, occurred_at_ms, received_at_ms,
    value, properties, context, decision_id, payload_hash, source, write_seq
)
SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, r ->> 4, r ->> 5, (r ->> 6)::bigint,
    (r ->> 7)::bigint, (r ->> 8)::float8, r -> 9, r -> 10, r ->> 11, r ->> 12, r ->> 13, %s
FROM jsonb_array_elements(%s::jsonb) AS r
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
_POSTGRES_PAYLOAD_HASHES = "SELECT event_id, payload_hash FROM events WHERE event_id = ANY(%s)"
_POSTGRES_REASSIGN = """
UPDATE events SET profile_key = m.to_key, write_seq = %s
FROM unnest(%s::text[], %s::text[]) AS m (from_key, to_key)
WHERE events.profile_key = m.from_key
"""
_SQLITE_PAYLOAD_HASHES = (
    "SELECT event_id, payload_hash FROM events WHERE event_id IN (SELECT value FROM json_each(?))"
)


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
    driver: Any, rows: list[tuple[Any, ...]], write_seq: int, started: threading.Event | None = None
) -> int:
    """Store event rows by ``_SQLITE_APPEND_JSONB``; returns how many were stored."""
    if started is not None:
        started.set()  # for a caller on another thread, waiting until this one runs
    text = orjson.dumps(rows).decode()
    return int(driver.execute(_SQLITE_APPEND_JSONB, (text, write_seq)).rowcount)


def _event_row(e: EventRecord, document: Callable[[Any], Any] = json_text) -> tuple[Any, ...]:
    """The parameters of ``_SQLITE_APPEND``, in its column order; ``document`` writes the
    properties and context (JSON text by default; as they are for a JSON array of rows,
    ``_POSTGRES_APPEND``)."""
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
        document(e.properties),
        document(e.context),
        e.decision_id,
        e.payload_hash,
        e.source,
    )


def _as_is(value: Any) -> Any:
    return value


class SqlEventLog:
    def __init__(self, connection: Connection) -> None:
        self._c = connection
        # SQLite: ids this transaction looked up and did not find. Its snapshot cannot change
        # under it, so they stay absent until it appends them itself.
        self._absent: set[str] = set()
        self._write_seq: int | None = None

    def write_number(self) -> int:
        """This transaction's write number, taken on its first change of an event.

        SQLite: the next in ``event_sequence`` (one statement per write transaction, under the
        write lock, so the numbers follow the commit order). PostgreSQL, whose writes may
        commit side by side: the transaction's own id, which needs no lock; the lake copies
        only the writes older than every transaction still running (``bulk.events_after``)."""
        if self._write_seq is None:
            if is_sqlite(self._c):
                rows = driver_connection(self._c).execute(_SQLITE_NEXT_WRITE).fetchall()
            else:
                rows = self._c.execute(text(_POSTGRES_WRITE_NUMBER)).all()
            self._write_seq = int(rows[0][0])
        return self._write_seq

    def payload_hashes(self, event_ids: Sequence[str]) -> dict[str, str]:
        if is_sqlite(self._c):
            ids = json_text(list(event_ids))
            hashes = dict(
                driver_connection(self._c).execute(_SQLITE_PAYLOAD_HASHES, (ids,)).fetchall()
            )
            self._absent.update(i for i in event_ids if i not in hashes)
            return hashes
        with driver_connection(self._c).cursor() as cursor:  # the ids as one array
            cursor.execute(_POSTGRES_PAYLOAD_HASHES, (list(event_ids),))
            return dict(cursor.fetchall())

    def append(self, events: Sequence[EventRecord]) -> set[str]:
        if not events:
            return set()
        if is_sqlite(self._c):
            return self._append_sqlite(events)
        write_seq = self.write_number()
        rows = orjson.dumps([_event_row(e, _as_is) for e in events]).decode()
        with driver_connection(self._c).cursor() as cursor:
            cursor.execute(_POSTGRES_APPEND, (write_seq, rows))
            return {row[0] for row in cursor.fetchall()}

    def _append_sqlite(self, events: Sequence[EventRecord]) -> set[str]:
        rows, fresh_ids = self._new_rows(events)
        if not rows:
            return fresh_ids
        driver = driver_connection(self._c)
        write_seq = self.write_number()
        if has_jsonb(self._c):
            stored = _insert_jsonb(driver, rows, write_seq)
        else:
            numbered = [(*row, write_seq) for row in rows]
            stored = driver.executemany(_SQLITE_APPEND, numbered).rowcount
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
        if not events or not is_sqlite(self._c) or not has_jsonb(self._c):
            appended.ids = self.append(events)
            yield appended
            return
        rows, fresh_ids = self._new_rows(events)
        write_seq = self.write_number() if rows else 0  # no number for a write of nothing
        started = threading.Event()
        stored = _HELPER.submit(_insert_jsonb, driver_connection(self._c), rows, write_seq, started)
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

    def reassign_profiles(self, moves: Mapping[str, str]) -> int:
        if not moves:
            return 0
        write_seq = self.write_number()  # the lake copies them again
        if is_sqlite(self._c):  # one statement run per move by the driver, as ingest's others
            rows = [(to_key, write_seq, from_key) for from_key, to_key in moves.items()]
            return int(driver_connection(self._c).executemany(_SQLITE_REASSIGN, rows).rowcount)
        with driver_connection(self._c).cursor() as cursor:  # every move in one statement
            cursor.execute(_POSTGRES_REASSIGN, (write_seq, list(moves), list(moves.values())))
            return int(cursor.rowcount)

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
        if is_sqlite(self._c):
            rows = driver_connection(self._c).execute(_ITEM_HISTORY_QMARK, (profile_key, limit))
        else:
            rows = self._c.exec_driver_sql(_ITEM_HISTORY, (profile_key, limit))
        return [(item, kind, at) for item, kind, at in rows]

    def item_signature(self, profile_key: str, not_types: Sequence[str]) -> tuple[int, int]:
        # Read per recommendation request: straight to the driver, as ``item_history``.
        statement = _ITEM_SIGNATURE
        if not_types:
            statement += f" AND type NOT IN ({', '.join('?' for _ in not_types)})"
        parameters = (profile_key, *not_types)
        if is_sqlite(self._c):
            row = driver_connection(self._c).execute(statement, parameters).fetchone()
        else:
            row = self._c.exec_driver_sql(statement.replace("?", "%s"), parameters).fetchone()
        count, latest = row if row else (0, None)
        return int(count), -1 if latest is None else int(latest)

    def get(self, event_id: str) -> EventRecord | None:
        row = self._c.execute(
            select(tables.events).where(tables.events.c.event_id == event_id)
        ).first()
        return _event(row) if row else None

    def count(self) -> int:
        return int(self._c.execute(select(func.count()).select_from(tables.events)).scalar_one())

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

    def value_totals(
        self, profile_keys: Collection[str], types: Collection[str], before_ms: int
    ) -> dict[str, float]:
        e = tables.events
        found: dict[str, float] = {}
        for chunk in chunks(profile_keys):
            rows = self._c.execute(
                select(e.c.profile_key, func.coalesce(func.sum(e.c.value), 0.0))
                .where(
                    e.c.profile_key.in_(chunk),
                    e.c.type.in_(list(types)),
                    e.c.occurred_at_ms < before_ms,
                )
                .group_by(e.c.profile_key)
            )
            found.update((key, float(total)) for key, total in rows)
        return found

    def scan(
        self,
        fields: Sequence[str],
        *,
        before_ms: int | None = None,
        order_by: Sequence[str] = ("occurred_at_ms", "event_id"),
        batch_size: int = 50_000,
    ) -> Iterator[tuple[Any, ...]]:
        t = tables.events
        unknown = {*fields, *order_by} - set(EventRecord.__slots__)
        if unknown:
            raise ValueError(f"not fields of an event: {sorted(unknown)}")
        query = select(*(t.c[f] for f in fields)).order_by(*(t.c[f] for f in order_by))
        if before_ms is not None:
            query = query.where(t.c.occurred_at_ms < before_ms)
        for row in self._c.execution_options(yield_per=batch_size).execute(query):
            yield tuple(row)

    def recent_events(
        self, profile_keys: Collection[str], since_ms: int | None, types: Sequence[str]
    ) -> dict[str, list[RecentEvent]]:
        e = tables.events
        found: dict[str, list[RecentEvent]] = {}
        for chunk in chunks(profile_keys, IN_CHUNK - len(types) - 1):
            query = select(e.c.profile_key, e.c.type, e.c.item_id, e.c.occurred_at_ms).where(
                e.c.profile_key.in_(chunk), e.c.type.in_(types)
            )
            if since_ms is not None:
                query = query.where(e.c.occurred_at_ms >= since_ms)
            for key, event_type, item_id, at in self._c.execute(query):
                found.setdefault(key, []).append(RecentEvent(event_type, item_id, at))
        return found

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

    def type_counts(
        self, since_ms: int, until_ms: int, bucket_ms: int
    ) -> list[tuple[int, str, int]]:
        t = tables.events
        bucket = bucket_start(t.c.occurred_at_ms, bucket_ms)
        query = (
            select(bucket, t.c.type, func.count())
            .where(t.c.occurred_at_ms >= since_ms, t.c.occurred_at_ms < until_ms)
            .group_by(bucket, t.c.type)
            .order_by(bucket, t.c.type)
        )
        return [(int(at), str(kind), int(n)) for at, kind, n in self._c.execute(query)]


_ITEM_HISTORY = (
    "SELECT item_id, type, occurred_at_ms FROM events"
    " WHERE profile_key = %s AND item_id IS NOT NULL"
    " ORDER BY occurred_at_ms DESC, event_id DESC LIMIT %s"
)
_ITEM_HISTORY_QMARK = _ITEM_HISTORY.replace("%s", "?")
_ITEM_SIGNATURE = (
    "SELECT count(*), max(occurred_at_ms) FROM events WHERE profile_key = ? AND item_id IS NOT NULL"
)


def _event(row: Row[Any]) -> EventRecord:
    m = row._mapping
    return EventRecord(**{name: m[name] for name in EventRecord.__slots__})
