"""Reads of many rows as Arrow columns, without a Python object per row.

Training reads every interaction of the event log, and the lake copies every event: millions of
rows. Through SQLAlchemy each would become a Python tuple and then a few Python objects.

- PostgreSQL: ADBC's driver hands over Arrow record batches built in C from the wire protocol.
- SQLite: ADBC's SQLite driver links a SQLite of its own, and two copies of SQLite in one
  process corrupt a database they both open (each releases the other's POSIX locks). So SQLite
  itself writes each chunk of rows as one text, fields separated by the unit separator (ids hold
  no control characters, and JSON text escapes them), and pyarrow's CSV reader parses it in C:
  one Python object per chunk. Values are printed with 17 significant digits, which read back
  as the same double (SQLite's own conversion to text keeps 15).

Ties of time are ordered by event id byte by byte on both backends (``COLLATE "C"`` on
PostgreSQL, whose default collation may order text otherwise), as the lake orders them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy.engine import Engine

from persona.storage.protocols import (
    EVENT_COLUMNS,
    INTERACTION_COLUMNS,
    SHOWN_COLUMNS,
    WrittenEvents,
)
from persona.storage.records import StreamMessage
from persona.storage.sql.common import driver_connection
from persona.storage.sql.stream import outbox_after

END_OF_TIME_MS = 1 << 62
CHUNK_ROWS = 1_000_000  # SQLite builds each chunk as one string: well below its 1 GB limit
_NULL = "\x1e"  # how the SQLite texts below write SQL NULL (the record separator)

_POSTGRES_QUERY = """
SELECT profile_key, item_id, type, occurred_at_ms, value,
    nullif(context::text, 'null') AS context
FROM events
WHERE item_id IS NOT NULL AND occurred_at_ms < $1
ORDER BY occurred_at_ms, event_id COLLATE "C"
"""

# One chunk in event-time order after the (time, event id) of the last row of the one before.
_SQLITE_CHUNK = """
SELECT group_concat(
    profile_key || char(31) || item_id || char(31) || type || char(31) || occurred_at_ms
    || char(31) || CASE WHEN value IS NULL THEN char(30) ELSE printf('%!.17g', value) END
    || char(31) || coalesce(nullif(context, 'null'), char(30)) || char(31) || event_id,
    char(10)
)
FROM (
    SELECT profile_key, item_id, type, occurred_at_ms, value, context, event_id FROM events
    WHERE item_id IS NOT NULL AND occurred_at_ms < ? AND (occurred_at_ms, event_id) > (?, ?)
    ORDER BY occurred_at_ms, event_id
    LIMIT ?
)
"""
_SQLITE_FIELDS = pa.schema([*INTERACTION_COLUMNS, ("event_id", pa.string())])

# The list an impression or a click was in: the decision's id, or the ``list_id`` property a
# page sends for a list it got otherwise; ids of printable ASCII only (the texts above are
# split on control characters). The position: the ``position`` property, when an integer.
_SQLITE_SHOWN_CHUNK = """
SELECT group_concat(
    profile_key || char(31) || item_id || char(31) || type || char(31) || occurred_at_ms
    || char(31) || list_id || char(31) || coalesce(position, char(30)) || char(31) || event_id,
    char(10)
)
FROM (
    SELECT * FROM (
        SELECT profile_key, item_id, type, occurred_at_ms, event_id,
            coalesce(decision_id, json_extract(properties, '$.list_id')) AS list_id,
            CASE WHEN json_type(properties, '$.position') = 'integer'
                THEN json_extract(properties, '$.position') END AS position
        FROM events
        WHERE item_id IS NOT NULL AND type IN ('impression', 'click') AND occurred_at_ms < ?
            AND (occurred_at_ms, event_id) > (?, ?)
    )
    WHERE list_id != '' AND list_id NOT GLOB '*[^ -~]*'
    ORDER BY occurred_at_ms, event_id
    LIMIT ?
)
"""
_SQLITE_SHOWN_FIELDS = pa.schema([*SHOWN_COLUMNS, ("event_id", pa.string())])
_POSTGRES_SHOWN = """
SELECT profile_key, item_id, type, occurred_at_ms, list_id, position FROM (
    SELECT profile_key, item_id, type, occurred_at_ms,
        coalesce(decision_id, properties->>'list_id') AS list_id,
        CASE WHEN jsonb_typeof(properties->'position') = 'number'
            AND (properties->>'position') ~ '^-?[0-9]+$'
            THEN (properties->>'position')::bigint END AS position,
        event_id
    FROM events
    WHERE item_id IS NOT NULL AND type IN ('impression', 'click') AND occurred_at_ms < $1
) AS shown
WHERE list_id ~ '^[ -~]+$'
ORDER BY occurred_at_ms, event_id COLLATE "C"
"""


def interaction_columns(engine: Engine, before_ms: int | None) -> pa.Table:
    """Every event that names an item (before ``before_ms`` if given), in event-time order."""
    before = END_OF_TIME_MS if before_ms is None else int(before_ms)
    if engine.dialect.name == "sqlite":
        return _sqlite_in_chunks(engine, _SQLITE_CHUNK, _SQLITE_FIELDS, before)
    return _postgres_table(engine, _POSTGRES_QUERY, before, INTERACTION_COLUMNS)


def shown_columns(engine: Engine, before_ms: int | None) -> pa.Table:
    """Every impression and click of an item in a list (before ``before_ms`` if given), in
    event-time order: ``Storage.shown_columns``."""
    before = END_OF_TIME_MS if before_ms is None else int(before_ms)
    if engine.dialect.name == "sqlite":
        return _sqlite_in_chunks(engine, _SQLITE_SHOWN_CHUNK, _SQLITE_SHOWN_FIELDS, before)
    return _postgres_table(engine, _POSTGRES_SHOWN, before, SHOWN_COLUMNS)


def _sqlite_in_chunks(engine: Engine, query: str, fields: pa.Schema, before_ms: int) -> pa.Table:
    """The rows of ``query`` (a chunk after a (time, event id), see ``_SQLITE_CHUNK``) as
    ``fields``, without the event id that orders them."""
    chunks: list[pa.Table] = []
    after: tuple[int, str] = (-(1 << 62), "")
    with engine.connect() as connection, connection.begin():  # one snapshot for every chunk
        cursor = driver_connection(connection).cursor()
        while True:
            (text,) = cursor.execute(query, (before_ms, *after, CHUNK_ROWS)).fetchone()
            if not text:
                break
            chunk = _parse(text.encode(), fields)
            chunks.append(chunk.drop_columns(["event_id"]))
            if chunk.num_rows < CHUNK_ROWS:
                break
            last = chunk.slice(chunk.num_rows - 1)
            after = (last["occurred_at_ms"][0].as_py(), last["event_id"][0].as_py())
    schema = pa.schema([f for f in fields if f.name != "event_id"])
    if not chunks:
        return schema.empty_table()
    return pa.concat_tables(chunks).cast(schema)


def _parse(data: bytes, fields: pa.Schema) -> pa.Table:
    """Rows of ``data`` (fields separated by the unit separator, rows by newlines) as columns
    of ``fields``; a field that is the record separator alone is null."""
    convert = pa_csv.ConvertOptions(
        column_types=fields, null_values=[_NULL], strings_can_be_null=True
    )
    return pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(column_names=fields.names),
        parse_options=pa_csv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False),
        convert_options=convert,
    )


def _postgres_table(engine: Engine, query: str, before_ms: int, schema: pa.Schema) -> pa.Table:
    with _postgres_connection(engine) as connection, connection.cursor() as cursor:
        cursor.execute(query, (before_ms,))
        table: pa.Table = cursor.fetch_arrow_table()
    if not table.num_rows:
        return schema.empty_table()
    return table.cast(schema)


_SEQUENCE = "SELECT log_id, last FROM event_sequence WHERE id = 1"
# PostgreSQL numbers a write by its transaction id (``SqlEventLog.write_number``), and writes
# commit side by side, not in the order of their ids. Every transaction older than the
# snapshot's oldest running one has ended: the writes up to just below it are all in the
# snapshot, and a later copy finds none older. The rows of younger writes wait for that copy.
# Transactions ids are the server's, shared by all its databases: one running in another
# database (pg_stat_activity says so, after the snapshot was taken) writes nothing here and
# does not hold the copy back. One that ended meanwhile, or that this role may not see, does
# (it is taken for one of this database's, which is always safe). Ids compare modulo 2^32:
# pg_stat_activity shows them without their epoch.
_POSTGRES_SEQUENCE = """
WITH snapshot AS (SELECT pg_current_snapshot() AS s),
elsewhere AS (
    SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
)
SELECT log_id, coalesce(
    (SELECT min(running::text::bigint) FROM snapshot, pg_snapshot_xip(snapshot.s) AS running
     WHERE running::text::bigint % 4294967296 NOT IN (SELECT xid FROM elsewhere)),
    (SELECT pg_snapshot_xmax(s)::text::bigint FROM snapshot)
) - 1
FROM event_sequence WHERE id = 1
"""
_POSTGRES_EVENTS = """
SELECT event_id, type, profile_key, user_id, anonymous_id, item_id, occurred_at_ms,
    received_at_ms, value, nullif(properties::text, 'null') AS properties,
    nullif(context::text, 'null') AS context, decision_id, source
FROM events
WHERE write_seq > $1 AND write_seq <= $2
ORDER BY occurred_at_ms
"""
# SQLite: how many rows a read of the writes after a number finds (the covering index on
# write_seq counts them), then chunks in event-time order after the (time, rowid) of the last
# row of the chunk before. A few rows among many: found by write_seq, then sorted. Otherwise the
# scan of the time index is in order already, with no sort of every row per chunk (a sort costs
# about as much as the rest). Each chunk says how many rows it holds, so that a stray separator
# inside a value could not go unnoticed.
_SQLITE_COUNT_WRITTEN = (
    "SELECT (SELECT count(*) FROM events WHERE write_seq > ?), (SELECT max(rowid) FROM events)"
)
_SQLITE_WRITTEN_FIELDS = (
    "event_id",
    "type",
    "profile_key",
    "coalesce(user_id, char(30))",
    "coalesce(anonymous_id, char(30))",
    "coalesce(item_id, char(30))",
    "occurred_at_ms",
    "received_at_ms",
    "CASE WHEN value IS NULL THEN char(30) ELSE printf('%!.17g', value) END",
    "coalesce(nullif(properties, 'null'), char(30))",
    "coalesce(nullif(context, 'null'), char(30))",
    "coalesce(decision_id, char(30))",
    "source",
    "row_id",
)
_SQLITE_WRITTEN_CHUNK = """
SELECT count(*), group_concat({row}, char(10))
FROM (
    SELECT rowid AS row_id, * FROM events INDEXED BY {index}
    WHERE write_seq > ? AND (occurred_at_ms, rowid) > (?, ?)
    ORDER BY occurred_at_ms, rowid
    LIMIT ?
)
"""


def _sqlite_row_text(version: tuple[int, ...]) -> str:
    """The SQL text of one row: ``concat_ws`` where SQLite has it (3.44), which builds the row
    in one allocation; ``||`` copies it once per field (1.9 against 1.1 µs a row)."""
    if version >= (3, 44):
        return f"concat_ws(char(31), {', '.join(_SQLITE_WRITTEN_FIELDS)})"
    return " || char(31) || ".join(_SQLITE_WRITTEN_FIELDS)


_WRITTEN_FIELDS = pa.schema([*EVENT_COLUMNS, ("row_id", pa.int64())])


_POSTGRES_MESSAGES = """
SELECT message_id, kind, body, profile_key FROM outbox
WHERE write_seq > $1 AND write_seq <= $2
ORDER BY write_seq, seq
"""


@contextmanager
def events_after(
    engine: Engine, write_seq: int, chunk_rows: int, *, messages: bool = False
) -> Iterator[WrittenEvents]:
    """The events of the writes after ``write_seq`` (see ``Storage.events_after``), and with
    ``messages`` the outbox's messages of the same writes, read first from the same snapshot."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection, connection.begin():  # one snapshot throughout
            cursor = driver_connection(connection).cursor()
            log_id, last = cursor.execute(_SEQUENCE).fetchone()
            found = outbox_after(connection, write_seq, last) if messages else []
            version = engine.dialect.dbapi.sqlite_version_info  # type: ignore[union-attr]
            chunks = _sqlite_written(cursor, _sqlite_row_text(version), write_seq, chunk_rows)
            yield WrittenEvents(str(log_id), int(last), chunks, found)
        return
    with _postgres_few_after(engine, write_seq, chunk_rows, messages=messages) as few:
        if few is not None:
            yield few
            return
    with _postgres_connection(engine) as connection, connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot
        cursor.execute(_POSTGRES_SEQUENCE)
        log_id, last = cursor.fetchone()
        found = []
        if messages:
            cursor.execute(_POSTGRES_MESSAGES, (write_seq, last))
            found = [
                StreamMessage(str(i), str(k), orjson.loads(b), p)
                for i, k, b, p in cursor.fetchall()
            ]
        cursor.execute(_POSTGRES_EVENTS, (write_seq, last))
        reader = cursor.fetch_record_batch()
        yield WrittenEvents(str(log_id), int(last), _postgres_written(reader, chunk_rows), found)
        connection.rollback()  # it only read


_POSTGRES_COUNT_WRITTEN = "SELECT count(*) FROM events WHERE write_seq > %s AND write_seq <= %s"


@contextmanager
def _postgres_few_after(
    engine: Engine, write_seq: int, chunk_rows: int, *, messages: bool
) -> Iterator[WrittenEvents | None]:
    """``events_after`` through a pooled connection when the writes after ``write_seq`` hold at
    most ``chunk_rows`` events (None otherwise): the relay asks twenty times a second, mostly
    for a few rows, and a new connection each time costs more than the rows (the server starts
    a process for each)."""
    repeatable = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with repeatable as connection, connection.begin():  # one snapshot
        raw = driver_connection(connection)
        log_id, last = raw.execute(_POSTGRES_SEQUENCE).fetchone()
        (count,) = raw.execute(_POSTGRES_COUNT_WRITTEN, (write_seq, last)).fetchone()
        if count > chunk_rows:
            yield None
            return
        found = outbox_after(connection, write_seq, last) if messages else []
        query = _POSTGRES_EVENTS.replace("$1", "%s").replace("$2", "%s")
        rows = raw.execute(query, (write_seq, last)).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(EVENT_COLUMNS)
        table = pa.table(
            [
                pa.array(values, field.type)
                for values, field in zip(columns, EVENT_COLUMNS, strict=True)
            ],
            schema=EVENT_COLUMNS,
        )
        yield WrittenEvents(str(log_id), int(last), iter([table] if rows else []), found)


def _sqlite_written(cursor: Any, row: str, write_seq: int, chunk_rows: int) -> Iterator[pa.Table]:
    found, newest_row = cursor.execute(_SQLITE_COUNT_WRITTEN, (write_seq,)).fetchone()
    few = found <= chunk_rows and found * 4 <= (newest_row or 0)  # rowids: about the rows held
    index = "ix_events_write_seq" if few else "ix_events_occurred_at"
    query = _SQLITE_WRITTEN_CHUNK.format(row=row, index=index)
    after: tuple[int, int] = (-(1 << 62), -(1 << 62))
    while True:
        rows, text = cursor.execute(query, (write_seq, *after, chunk_rows)).fetchone()
        if not rows:
            return
        try:
            chunk = _parse(text.encode(), _WRITTEN_FIELDS)
        except pa.ArrowInvalid:  # (its message would quote the row: say less)
            raise ValueError("an event's text holds a separator (a control character)") from None
        if chunk.num_rows != rows:
            raise ValueError(f"an event's text holds a separator ({chunk.num_rows} != {rows})")
        yield chunk.drop_columns(["row_id"])
        if rows < chunk_rows:
            return
        after = (chunk["occurred_at_ms"][-1].as_py(), chunk["row_id"][-1].as_py())


def _postgres_written(reader: pa.RecordBatchReader, chunk_rows: int) -> Iterator[pa.Table]:
    """The driver's batches (of its own size) regrouped into chunks of ``chunk_rows``."""
    held = EVENT_COLUMNS.empty_table()
    for batch in reader:
        held = pa.concat_tables([held, pa.Table.from_batches([batch]).cast(EVENT_COLUMNS)])
        while held.num_rows >= chunk_rows:
            yield held.slice(0, chunk_rows)
            held = held.slice(chunk_rows)
    if held.num_rows:
        yield held


def _postgres_connection(engine: Engine) -> Any:
    import adbc_driver_postgresql.dbapi

    plain = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(plain)
