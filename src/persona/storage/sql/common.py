"""What every SQL store shares: chunked IN lists, dialect tests, the driver under a connection,
and JSON as the engine's serializer writes it.

On SQLite the hottest statements (every ingest batch, every profile read) go to the driver as
plain SQL with tuples: SQLAlchemy's per-statement and per-row work costs about as much as
SQLite's own (see BENCHMARKS.md). PostgreSQL keeps the Core statements. A list of ids then
travels as one JSON parameter read by ``json_each``, instead of a 900-value IN list;
tests/storage/test_sqlite_fast_paths.py checks both paths store the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import Any, TypeVar

import orjson
from sqlalchemy import BigInteger, ColumnElement, Table, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from persona.errors import BusyError

T = TypeVar("T")
IN_CHUNK = 900  # stay below every SQLite build's bound on bound parameters
UpsertInsert = sqlite.Insert | postgresql.Insert


def chunks(values: Iterable[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """``values`` in lists of at most ``size``: the pieces of a long IN list."""
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk


def bucket_start(column: ColumnElement[int], bucket_ms: int) -> ColumnElement[int]:
    """The start of the ``bucket_ms`` bucket (counted from the epoch) a time column falls in.

    The width is written into the statement as a number, not bound: PostgreSQL matches a
    GROUP BY expression to the selected one by text, and two bound copies of a parameter are
    two expressions to it."""
    if bucket_ms <= 0:
        raise ValueError("a bucket is at least a millisecond")
    width = literal_column(str(int(bucket_ms)), BigInteger)
    return column - column % width


def is_sqlite(connection: Connection) -> bool:
    return connection.dialect.name == "sqlite"


def driver_connection(connection: Connection) -> Any:
    """The driver's connection under ``connection``, inside the transaction it has open.

    Hot paths on SQLite (ingest batches, profile reads) call the driver directly: for statements
    this small, SQLAlchemy's per-execution work costs several times the query itself.
    """
    return connection.connection.driver_connection


def has_jsonb(connection: Connection) -> bool:
    """Whether the SQLite under ``connection`` reads JSONB (3.45 and later; see sqlite_module)."""
    version: tuple[int, ...] = connection.dialect.dbapi.sqlite_version_info  # type: ignore[union-attr]
    return version >= (3, 45)


def json_text(value: Any) -> str:
    """A JSON document as the engine's serializer writes it (so both paths store the same);
    also a list of ids as the one parameter a statement reads with ``json_each``."""
    return "null" if value is None else orjson.dumps(value).decode()


def document(text: str | None) -> Any:
    """A JSON column as SQLAlchemy's JSON type reads it: SQL NULL and JSON null are None."""
    return None if text is None else orjson.loads(text)


def upsert_insert(connection: Connection, table: Table) -> UpsertInsert:
    """An INSERT with the dialect's ON CONFLICT clauses (both dialects spell them the same)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@contextmanager
def statement_deadline(connection: Connection, timeout_ms: int | None) -> Iterator[None]:
    """Stop the statements run inside after ``timeout_ms`` (``BusyError``); None: no limit.

    SQLite checks a deadline every thousand virtual-machine steps (a progress handler);
    PostgreSQL gets ``statement_timeout`` for the rest of the transaction."""
    if timeout_ms is None:
        yield
        return
    if is_sqlite(connection):
        raw = driver_connection(connection)
        deadline = time.monotonic() + timeout_ms / 1000
        raw.set_progress_handler(lambda: int(time.monotonic() >= deadline), 1000)
        try:
            yield
        except OperationalError as exc:
            if "interrupted" in str(exc):
                raise BusyError(f"the query took longer than {timeout_ms} ms") from None
            raise
        finally:
            raw.set_progress_handler(None, 0)
        return
    connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(timeout_ms))}")
    try:
        yield
    except OperationalError as exc:
        if "statement timeout" in str(exc) or "canceling statement" in str(exc):
            raise BusyError(f"the query took longer than {timeout_ms} ms") from None
        raise
