"""Engine creation and schema migration for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

MIGRATIONS = Path(__file__).parent / "migrations"
# The revisions a database is at once every migration has run (a test checks them against
# Alembic's heads): such a database is recognised without importing Alembic, which is a tenth
# of a second of every command's start.
HEADS = frozenset(
    {
        "0002_segments",
        "0003_decisions",
        "0004_privacy",
        "0005_predictions",
        "0006_catalog_version",
        "0007_coordination",
        "0008_event_sequence",
        "0009_stream",
        "0010_items_written",
        "0011_events_shown",
    }
)
WRITE_OPTION = "persona_write"


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3, the driver persona ships with."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def sqlite_module() -> Any | None:
    """The SQLite binding to use: ``pysqlite3`` where its wheel exists (Linux on x86-64), else
    None for the standard library's ``sqlite3``.

    The wheel carries a recent SQLite (3.51 against the 3.40 of this machine's Python) with
    JSONB, which stores an ingest batch in one statement at about 60% of the cost of
    ``executemany``, without holding the interpreter lock (see ``SqlEventLog.append``). The
    binding has the standard module's interface, and the file format is the same.
    """
    try:
        from pysqlite3 import dbapi2  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    return dbapi2


def create_database_engine(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    connections: int = 48,
    sqlite_autocheckpoint_pages: int = 1000,
) -> Engine:
    """An engine whose pool holds up to ``connections`` (a third kept open).

    SQLite: a commit that finds its write-ahead log longer than
    ``sqlite_autocheckpoint_pages`` copies the log into the database file before it returns
    (1,000 pages is SQLite's own default; ``SqlStorage`` checkpoints on a thread of its own
    and raises it, see ``storage.sql.checkpoints``)."""
    url = normalize_url(url)
    kept_open = max(1, connections // 3)
    options: dict[str, Any] = {
        "json_serializer": _dumps,
        "json_deserializer": orjson.loads,
        "pool_size": kept_open,
        "max_overflow": connections - kept_open,
        "pool_pre_ping": not url.startswith("sqlite"),
    }
    if url.startswith("sqlite"):
        if url in ("sqlite://", "sqlite:///:memory:"):
            raise ValueError("an in-memory SQLite database cannot be shared; use a file")
        options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        module = sqlite_module()
        if module is not None:
            options["module"] = module
    engine = create_engine(url, **options)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine, sqlite_synchronous, sqlite_autocheckpoint_pages)
    return engine


def _configure_sqlite(engine: Engine, synchronous: str, autocheckpoint_pages: int) -> None:
    """WAL, durable commits, and write transactions that take the lock up front.

    The stdlib driver opens transactions lazily and never as IMMEDIATE, so two writers could both
    read a profile and then race to update it. We turn off its transaction handling and issue
    ``BEGIN IMMEDIATE`` ourselves for write units of work (the recipe in SQLAlchemy's SQLite notes).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint_pages)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Deleted rows are overwritten, not just unlinked: erasure must not leave them readable.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        # Straight to the driver: every unit of work begins here, reads included.
        driver: Any = conn.connection.driver_connection
        driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` with Alembic (idempotent)."""
    if revision == "heads" and revisions(engine) == HEADS:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


def revisions(engine: Engine) -> frozenset[str]:
    """The revisions the database's schema is at (none for a new database)."""
    with engine.connect() as connection:
        try:
            result = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        except DBAPIError:  # no such table: nothing has run
            return frozenset()
        return frozenset(result.scalars())
