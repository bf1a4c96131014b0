"""Reads of many rows as Arrow columns, without a Python object per row.

Training reads every interaction of the event log: millions of rows. Through SQLAlchemy each
would become a Python tuple and then a few Python objects.

- PostgreSQL: ADBC's driver hands over Arrow record batches built in C from the wire protocol.
- SQLite: ADBC's SQLite driver links a SQLite of its own, and two copies of SQLite in one
  process corrupt a database they both open (each releases the other's POSIX locks). So SQLite
  itself writes each chunk of rows as one text, fields separated by the unit separator (ids hold
  no control characters), and pyarrow's CSV reader parses it in C: one Python object per chunk.
"""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy.engine import Engine

from persona.storage.sql.common import driver_connection

END_OF_TIME_MS = 1 << 62
CHUNK_ROWS = 1_000_000  # SQLite builds each chunk as one string: well below its 1 GB limit
INTERACTION_COLUMNS = pa.schema(
    [
        ("profile_key", pa.string()),
        ("item_id", pa.string()),
        ("type", pa.string()),
        ("occurred_at_ms", pa.int64()),
        ("value", pa.float64()),
    ]
)

_POSTGRES_QUERY = """
SELECT profile_key, item_id, type, occurred_at_ms, value
FROM events
WHERE item_id IS NOT NULL AND occurred_at_ms < $1
ORDER BY occurred_at_ms, event_id
"""

# One chunk in event-time order after the (time, event id) of the last row of the one before.
_SQLITE_CHUNK = """
SELECT group_concat(
    profile_key || char(31) || item_id || char(31) || type || char(31) || occurred_at_ms
    || char(31) || coalesce(value, '') || char(31) || event_id, char(10)
)
FROM (
    SELECT profile_key, item_id, type, occurred_at_ms, value, event_id FROM events
    WHERE item_id IS NOT NULL AND occurred_at_ms < ? AND (occurred_at_ms, event_id) > (?, ?)
    ORDER BY occurred_at_ms, event_id
    LIMIT ?
)
"""
_SQLITE_FIELDS = [*INTERACTION_COLUMNS.names, "event_id"]


def interaction_columns(engine: Engine, before_ms: int | None) -> pa.Table:
    """Every event that names an item (before ``before_ms`` if given), in event-time order."""
    before = END_OF_TIME_MS if before_ms is None else int(before_ms)
    if engine.dialect.name == "sqlite":
        return _sqlite_interactions(engine, before)
    return _postgres_interactions(engine, before)


def _sqlite_interactions(engine: Engine, before_ms: int) -> pa.Table:
    chunks: list[pa.Table] = []
    after: tuple[int, str] = (-(1 << 62), "")
    with engine.connect() as connection, connection.begin():  # one snapshot for every chunk
        cursor = driver_connection(connection).cursor()
        while True:
            (text,) = cursor.execute(_SQLITE_CHUNK, (before_ms, *after, CHUNK_ROWS)).fetchone()
            if not text:
                break
            chunk = _parse_fields(text.encode())
            chunks.append(chunk.drop_columns(["event_id"]))
            if chunk.num_rows < CHUNK_ROWS:
                break
            last = chunk.slice(chunk.num_rows - 1)
            after = (last["occurred_at_ms"][0].as_py(), last["event_id"][0].as_py())
    if not chunks:
        return INTERACTION_COLUMNS.empty_table()
    return pa.concat_tables(chunks).cast(INTERACTION_COLUMNS)


def _parse_fields(data: bytes) -> pa.Table:
    types = {name: INTERACTION_COLUMNS.field(name).type for name in INTERACTION_COLUMNS.names}
    return pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(column_names=_SQLITE_FIELDS),
        parse_options=pa_csv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={**types, "event_id": pa.string()},
            strings_can_be_null=False,  # an empty text field stays text; a value may be empty
        ),
    )


def _postgres_interactions(engine: Engine, before_ms: int) -> pa.Table:
    with _postgres_connection(engine) as connection, connection.cursor() as cursor:
        cursor.execute(_POSTGRES_QUERY, (before_ms,))
        table: pa.Table = cursor.fetch_arrow_table()
    if not table.num_rows:
        return INTERACTION_COLUMNS.empty_table()
    return table.cast(INTERACTION_COLUMNS)


def _postgres_connection(engine: Engine) -> Any:
    import adbc_driver_postgresql.dbapi

    plain = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(plain)
