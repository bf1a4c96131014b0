"""SQLAlchemy Core storage for SQLite and PostgreSQL: a unit of work binds one store per
interface to the connection of one transaction. The two dialects differ in few places (upserts,
the write lock); those are named where they happen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property
from typing import Any

import pyarrow as pa
from sqlalchemy import JSON, Boolean, Float, Integer, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from persona.errors import WriteConflictError
from persona.storage.database import WRITE_OPTION, create_database_engine
from persona.storage.item_cache import CategoryCache
from persona.storage.protocols import CommitListener, WrittenEvents
from persona.storage.records import DecisionRecord, StreamMessage
from persona.storage.sql import coordination, decisions, stream
from persona.storage.sql.audit import SqlAuditTrail
from persona.storage.sql.bulk import events_after, interaction_columns, shown_columns
from persona.storage.sql.catalog import SqlCatalog
from persona.storage.sql.checkpoints import Checkpointer, truncate_wal
from persona.storage.sql.common import driver_connection, json_text
from persona.storage.sql.consents import SqlConsentLog
from persona.storage.sql.events import SqlEventLog
from persona.storage.sql.held_events import SqlHeldEvents
from persona.storage.sql.keys import SqlKeyStore
from persona.storage.sql.predictions import SqlPredictionStore
from persona.storage.sql.profiles import SqlProfileStore
from persona.storage.sql.quarantine import SqlQuarantineLog
from persona.storage.sql.segments import SqlSegmentStore
from persona.storage.sql.stream import SqlOutbox, SqlWebhookStore
from persona.storage.sql.subjects import SqlSubjectData
from persona.storage.sql.tombstones import SqlTombstones
from persona.storage.tables import metadata

# PostgreSQL's transaction-level advisory locks. Every write holds PG_WRITE_LOCK: a parallel
# write (ingest, the decision log) in shared mode, beside other parallel writes, and locking the
# profiles it changes itself (``lock_profiles``); every other write in exclusive mode, alone, as
# SQLite's BEGIN IMMEDIATE has every write. PG_FEED_LOCK is taken by the write's last statement
# before the commit that appends to the change feed: its rows commit in the order numbered.
PG_WRITE_LOCK = 0x70657273
PG_FEED_LOCK = 0x70657274
# What PostgreSQL answers when parallel writes met: a deadlock among their locks (found after
# ``deadlock_timeout``), or a serialization failure. The write is rolled back; its caller may
# run it again (``WriteConflictError``).
_RETRYABLE = {"40P01", "40001"}
BESIDE_CONNECTIONS = 4  # PostgreSQL: reads beside parallel writes at once (read_beside_write)
# A profile's lock is its key's 64-bit hash; the keys of a write are locked in one statement, in
# the order of their hashes, so two writes never each wait for a lock the other holds. Event ids
# are locked the same way, hashed with another seed: a write takes its events' locks first and
# its profiles' last, each set at once and in hash order, so no two writes wait in a circle.
_PG_LOCK_KEYS = """
SELECT count(pg_advisory_xact_lock(h)) FROM (
    SELECT DISTINCT hashtextextended(k, CAST(:seed AS bigint)) AS h
    FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h
) AS wanted
"""
_PROFILE_LOCKS, _EVENT_LOCKS = 0, 1  # the hash seeds


class SqlUnitOfWork:
    """The stores of one transaction, each made on first use: a transaction pays only for the
    stores it touches (a profile read uses three of thirteen)."""

    def __init__(
        self,
        connection: Connection,
        categories: CategoryCache | None = None,
        *,
        locks_profiles: bool = False,
        publishes: bool = False,
    ) -> None:
        self.connection = connection
        self._categories = categories
        self._locks_profiles = locks_profiles  # a parallel write on PostgreSQL
        self._publishes = publishes  # a change stream reads the outbox
        self._locked: set[str] = set()
        self.changed_profiles: set[str] | None = None  # None: not declared, so any
        self.erased_profiles: set[str] = set()

    @cached_property
    def events(self) -> SqlEventLog:
        return SqlEventLog(self.connection)

    @cached_property
    def quarantine(self) -> SqlQuarantineLog:
        return SqlQuarantineLog(self.connection)

    @cached_property
    def profiles(self) -> SqlProfileStore:
        return SqlProfileStore(self.connection)

    @cached_property
    def catalog(self) -> SqlCatalog:
        return SqlCatalog(self.connection, self._categories)

    @cached_property
    def keys(self) -> SqlKeyStore:
        return SqlKeyStore(self.connection)

    @cached_property
    def segments(self) -> SqlSegmentStore:
        return SqlSegmentStore(self.connection, self.outbox)

    @cached_property
    def predictions(self) -> SqlPredictionStore:
        return SqlPredictionStore(self.connection)

    @cached_property
    def decisions(self) -> decisions.SqlDecisionStore:
        return decisions.SqlDecisionStore(self.connection, self.outbox)

    @cached_property
    def outbox(self) -> SqlOutbox:
        return SqlOutbox(self.connection, self.events.write_number, self._publishes)

    @cached_property
    def webhooks(self) -> SqlWebhookStore:
        return SqlWebhookStore(self.connection)

    @cached_property
    def audit(self) -> SqlAuditTrail:
        return SqlAuditTrail(self.connection)

    @cached_property
    def consents(self) -> SqlConsentLog:
        return SqlConsentLog(self.connection)

    @cached_property
    def tombstones(self) -> SqlTombstones:
        return SqlTombstones(self.connection)

    @cached_property
    def held_events(self) -> SqlHeldEvents:
        return SqlHeldEvents(self.connection)

    @cached_property
    def subjects(self) -> SqlSubjectData:
        return SqlSubjectData(self.connection)

    @property
    def locks_profiles(self) -> bool:
        return self._locks_profiles

    def lock_profiles(self, profile_keys: Iterable[str]) -> None:
        wanted = set(profile_keys) - self._locked
        if self._locks_profiles and wanted:
            self.connection.execute(
                text(_PG_LOCK_KEYS), {"keys": list(wanted), "seed": _PROFILE_LOCKS}
            )
            self._locked |= wanted

    def lock_events(self, event_ids: Iterable[str]) -> None:
        wanted = list(event_ids)
        if self._locks_profiles and wanted:
            self.connection.execute(text(_PG_LOCK_KEYS), {"keys": wanted, "seed": _EVENT_LOCKS})

    def changes_profiles(self, profile_keys: Iterable[str]) -> None:
        if self.changed_profiles is None:
            self.changed_profiles = set()
        self.changed_profiles.update(profile_keys)

    def erases_profiles(self, profile_keys: Iterable[str]) -> None:
        self.erased_profiles.update(profile_keys)


class SqlStorage:
    """Storage on one SQLAlchemy engine (SQLite in WAL mode, or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._commit_listeners: list[CommitListener] = []
        self._categories = CategoryCache()
        self._beside: Engine | None = None  # see read_beside_write
        self._beside_lock = threading.Lock()
        self._own_changes: set[int] = set()  # changes this process wrote, not yet followed
        self._followed: int | None = None  # the last change of the feed this process saw
        self._reset_listeners: list[Callable[[], None]] = []
        self._checkpointer = Checkpointer(engine) if self.dialect == "sqlite" else None
        # Whether writes add their messages to the outbox (a change stream publishes it:
        # ``persona.stream``); off, no write pays for rows no one would read.
        self.publishes = False

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._commit_listeners.append(listener)

    def add_reset_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when this process may have missed other processes' changes
        (it fell behind the change feed): caches forget everything."""
        self._reset_listeners.append(listener)

    def follow_changes(self, limit: int = 1_000) -> int:
        """Tell the commit listeners what other processes committed since the last call (the
        first call only notes where the feed stands); returns how many changes were read."""
        with self.engine.connect() as connection:
            if self._followed is None:
                self._followed = coordination.latest(connection)
                return 0
            found, missed = coordination.after(connection, self._followed, limit)
        if missed:
            self._reset()
        for change in found:
            self._followed = change.seq
            if change.seq in self._own_changes:
                self._own_changes.discard(change.seq)
            elif change.profile_keys is None:
                self._reset()
            else:
                for listener in self._commit_listeners:
                    listener(set(change.profile_keys))
        return len(found)

    def _reset(self) -> None:
        for reset in self._reset_listeners:
            reset()

    def take_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew the lease ``name`` (see ``coordination``); True while ``holder``
        holds it."""
        with self.engine.connect() as connection, connection.begin():
            return coordination.take_lease(connection, name, holder, int(ttl_seconds * 1000))

    def release_lease(self, name: str, holder: str) -> None:
        with self.engine.connect() as connection, connection.begin():
            coordination.release_lease(connection, name, holder)

    def lease_holders(self, names: Sequence[str]) -> dict[str, str]:
        with self.engine.connect() as connection:
            return coordination.holders(connection, names)

    @contextmanager
    def write(self, *, parallel: bool = False) -> Iterator[SqlUnitOfWork]:
        options = {WRITE_OPTION: True}
        postgres = self.dialect == "postgresql"
        try:
            with (
                self.engine.connect().execution_options(**options) as connection,
                connection.begin(),
            ):
                if postgres:
                    lock = "pg_advisory_xact_lock_shared" if parallel else "pg_advisory_xact_lock"
                    connection.execute(text(f"SELECT {lock}(:k)"), {"k": PG_WRITE_LOCK})
                uow = SqlUnitOfWork(
                    connection,
                    self._categories,
                    locks_profiles=postgres and parallel,
                    publishes=self.publishes,
                )
                yield uow
                self._publish(connection, uow)
        except DBAPIError as exc:
            if postgres and getattr(exc.orig, "sqlstate", None) in _RETRYABLE:
                raise WriteConflictError("a concurrent write held what this one needed") from exc
            raise
        # Committed (an exception would have left above): readers can now see the change.
        self._committed(uow.changed_profiles)

    def _committed(self, changed_profiles: set[str] | None) -> None:
        if self._checkpointer is not None:
            self._checkpointer.committed()
        for listener in self._commit_listeners:
            listener(changed_profiles)

    def _publish(self, connection: Connection, uow: SqlUnitOfWork) -> None:
        """Tell other processes, in the write's transaction, which people it changed (an
        undeclared write tells nothing: it changed no profile they cache, or says so itself)."""
        if self.dialect == "postgresql" and (uow.erased_profiles or uow.changed_profiles):
            # Held to the commit, just after: the feed's numbers follow the commit order.
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_FEED_LOCK})
        if uow.erased_profiles:
            # The feed must not keep an erased person's ids: their rows go, and a reset
            # (no keys) takes their place. The erasure deleted the person's unpublished messages
            # (the outbox is among the tables holding people); the stream hears of the erasure.
            now = coordination.now_ms()
            uow.outbox.add(
                [
                    StreamMessage(
                        f"erasure:{key}:{now}", "erasure", {"profile_key": key, "at_ms": now}
                    )
                    for key in sorted(uow.erased_profiles)
                ]
            )
            coordination.forget(connection, uow.erased_profiles)
            seq = coordination.record(connection, None)
        elif uow.changed_profiles:
            seq = coordination.record(connection, uow.changed_profiles)
        else:
            return
        if self._followed is not None:  # this process follows the feed: it skips its own
            self._own_changes.add(seq)

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
        self._committed(set())

    def log_decisions(self, records: Sequence[DecisionRecord]) -> None:
        if not records:
            return
        if self.dialect == "sqlite" and not self.publishes:
            # The hot path of every decisions request: one statement straight to the driver,
            # as the ingest fast paths do (tests/decide checks both paths read back alike).
            self.write_statement(decisions.SQLITE_LOG, (decisions.log_rows(records),))
            return
        with self.write(parallel=True) as uow:  # appends only
            uow.decisions.log(records)
            uow.changes_profiles(())  # the log is not part of any profile

    @contextmanager
    def read(self) -> Iterator[SqlUnitOfWork]:
        with self.engine.connect() as connection, connection.begin():
            yield SqlUnitOfWork(connection, self._categories)

    def interaction_columns(self, before_ms: int | None = None) -> pa.Table:
        return interaction_columns(self.engine, before_ms)

    def shown_columns(self, before_ms: int | None = None) -> pa.Table:
        return shown_columns(self.engine, before_ms)

    def events_after(
        self, write_seq: int, chunk_rows: int = 250_000, *, messages: bool = False
    ) -> AbstractContextManager[WrittenEvents]:
        return events_after(self.engine, write_seq, chunk_rows, messages=messages)

    def snapshot(self, table_names: Sequence[str]) -> dict[str, pa.Table]:
        """Every row of these tables from one snapshot, as Arrow tables with the tables'
        columns; JSON documents as their JSON text (what another engine, Spark, reads)."""
        found: dict[str, pa.Table] = {}
        with self.read() as uow:
            for name in table_names:
                table = metadata.tables[name]
                rows = uow.connection.execute(table.select()).all()
                columns: dict[str, list[Any]] = {}
                for position, column in enumerate(table.columns):
                    values = [row[position] for row in rows]
                    if isinstance(column.type, JSON):
                        values = [None if v is None else json_text(v) for v in values]
                    columns[column.name] = pa.array(values, _arrow_type(column.type))
                found[name] = pa.table(columns)
        return found

    def stream_position(self, name: str) -> int | None:
        with self.engine.connect() as connection:
            return stream.position(connection, name)

    def set_stream_position(self, name: str, value: int, *, if_absent: bool = False) -> None:
        with self.engine.connect() as connection, connection.begin():
            stream.set_position(connection, name, value, if_absent=if_absent)

    @contextmanager
    def read_beside_write(self) -> Iterator[SqlUnitOfWork]:
        """A read transaction for the thread that holds the write lock, on a connection of its
        own: it never waits for the shared pool, which writers queued for the lock may hold
        entirely. On SQLite one writer at a time, so one connection; on PostgreSQL one for
        each parallel writer the pool lets in."""
        with self._beside_lock:
            if self._beside is None:
                url = self.engine.url.render_as_string(hide_password=False)
                size = 1 if self.dialect == "sqlite" else BESIDE_CONNECTIONS
                self._beside = create_database_engine(url, connections=size)
            beside = self._beside
        with beside.connect() as connection, connection.begin():
            yield SqlUnitOfWork(connection, self._categories)

    def forget_deleted(self, table_names: Collection[str]) -> None:
        """SQLite runs with ``secure_delete`` (deleted content is overwritten in the database
        file): checkpoint its write-ahead log and truncate it. PostgreSQL: vacuum the tables."""
        if self.dialect == "sqlite":
            with self.engine.connect() as connection:
                truncate_wal(driver_connection(connection), self._checkpointer)
            return
        names = [name for name in table_names if name in metadata.tables]  # never other text
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for name in names:
                connection.execute(text(f'VACUUM "{name}"'))

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()
        if self._beside is not None:
            self._beside.dispose()


def _arrow_type(column_type: Any) -> pa.DataType:
    """The Arrow type of a column of the schema (its rows may all be null, or be none)."""
    if isinstance(column_type, Boolean):
        return pa.bool_()
    if isinstance(column_type, Integer):  # BigInteger too
        return pa.int64()
    if isinstance(column_type, Float):
        return pa.float64()
    return pa.string()  # text, and JSON documents as their text
