"""Reads of many rows as Arrow columns, through the database driver's bulk path (ADBC).

Training reads every interaction of the event log: millions of rows. Through SQLAlchemy each
would become a Python tuple and then a few Python objects; ADBC's drivers for SQLite and
PostgreSQL hand over Arrow record batches built in C, which the recommenders turn into index
arrays without touching a row in Python.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import URL

END_OF_TIME_MS = 1 << 62
# SQLite's driver guesses a column's type from its first rows: a value column that starts with
# NULLs would be read as integers. The value is read as a number that is never NULL, plus a
# flag saying whether it was.
INTERACTIONS_QUERY = """
SELECT profile_key, item_id, type, occurred_at_ms,
       CASE WHEN value IS NULL THEN 1 ELSE 0 END AS no_value, COALESCE(value, 0.0) AS value
FROM events
WHERE item_id IS NOT NULL AND occurred_at_ms < :before
ORDER BY occurred_at_ms, event_id
"""
INTERACTION_COLUMNS = pa.schema(
    [
        ("profile_key", pa.string()),
        ("item_id", pa.string()),
        ("type", pa.string()),
        ("occurred_at_ms", pa.int64()),
        ("value", pa.float64()),
    ]
)


def interaction_columns(url: URL, before_ms: int | None) -> pa.Table:
    """Every event that names an item (before ``before_ms`` if given), in event-time order."""
    placeholder = "?" if url.get_backend_name() == "sqlite" else "$1"
    query = INTERACTIONS_QUERY.replace(":before", placeholder)
    with _connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(query, (END_OF_TIME_MS if before_ms is None else int(before_ms),))
        table: pa.Table = cursor.fetch_arrow_table()
    if not table.num_rows:
        return INTERACTION_COLUMNS.empty_table()
    missing = pc.equal(pc.cast(table["no_value"], pa.int64()), 1)
    value = pc.if_else(
        missing, pa.scalar(None, pa.float64()), pc.cast(table["value"], pa.float64())
    )
    return pa.table(
        [
            pc.cast(table["profile_key"], pa.string()),
            pc.cast(table["item_id"], pa.string()),
            pc.cast(table["type"], pa.string()),
            pc.cast(table["occurred_at_ms"], pa.int64()),
            value,
        ],
        schema=INTERACTION_COLUMNS,
    )


def _connect(url: URL) -> Any:
    if url.get_backend_name() == "sqlite":
        import adbc_driver_sqlite.dbapi

        # Read-only: this connection never writes, and it must not hold a lock writers wait for.
        return adbc_driver_sqlite.dbapi.connect(f"file:{quote(str(url.database))}?mode=ro")
    import adbc_driver_postgresql.dbapi

    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return adbc_driver_postgresql.dbapi.connect(plain)
