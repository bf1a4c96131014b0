"""SQLite's write-ahead log copied into the database file on a thread of its own.

In WAL mode a commit appends pages to the log; a checkpoint copies them into the database file
so that the log can start again. SQLite runs one itself in the committing thread, before the
commit returns, whenever the log has grown past ``wal_autocheckpoint`` pages (1,000 by
default). A bulk import's transaction (50,000 events and the profiles they change) writes tens
of thousands of pages, so every one of its commits also wrote them all a second time and
synced the database file: 8.5% of the time of a 10M-event import, on the only thread doing
the work.

``Checkpointer`` does that copy after commits on a thread of its own (SQLite releases the
interpreter lock while it copies), so the next transaction is prepared meanwhile; at most once
a second (``INTERVAL_SECONDS``), so that a server's many small commits share one copy and one
sync of the database file instead of paying one each. It is a
``PASSIVE`` checkpoint: it waits for no reader or writer and copies what it can, the same
kind SQLite's automatic one is. The engine's own automatic checkpoint is kept as a backstop
(``BACKSTOP_PAGES``, about 400 MB of log): if this thread ever falls behind, a commit
checkpoints as before. Durability is unchanged: a commit is durable once its log pages are
synced, which the commit still does itself.

A process that forks while this thread is inside SQLite would hand the child SQLite's global
mutexes (its memory allocator's, its file locks' table) locked by a thread the child does not
have, and the child's first connection would wait for them forever. So a fork waits until every
checkpointer of the process is between checkpoints (``os.register_at_fork``), as it does for
the interpreter's own locks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy.engine import Engine

from persona.storage.database import create_database_engine
from persona.storage.sql.common import driver_connection

BACKSTOP_PAGES = 100_000  # wal_autocheckpoint of engines whose storage runs a Checkpointer
INTERVAL_SECONDS = 1.0

log = logging.getLogger(__name__)


class Checkpointer:
    """One thread that checkpoints ``engine``'s database after commits (``committed``), on a
    connection of its own (not one of the shared pool's, which writers may hold entirely), and
    that keeps out of the way of a checkpoint that must complete (``paused``)."""

    def __init__(self, engine: Engine) -> None:
        url = engine.url.render_as_string(hide_password=False)
        self._engine = create_database_engine(url, connections=1)
        self._running = threading.Lock()  # held while this thread is inside SQLite
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="persona-checkpoint", daemon=True)
        self._thread.start()
        _LIVE.add(self)

    def committed(self) -> None:
        """A write transaction committed: checkpoint soon (commits that come while one runs,
        or within the interval after it, are covered by the next)."""
        self._wake.set()

    def close(self) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join()
        self._engine.dispose()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No checkpoint of this thread runs in the block (SQLite runs one checkpoint at a
        time and refuses a second)."""
        with self._running:
            yield

    def _run(self) -> None:
        with self._running:
            connection = self._engine.connect()
        try:
            driver = driver_connection(connection)
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing.is_set():
                    return
                try:
                    with self._running:
                        driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception:  # the next commit tries again; commits checkpoint if need be
                    log.exception("checkpoint of the write-ahead log failed")
                if self._closing.wait(INTERVAL_SECONDS):
                    return
        finally:
            with self._running:
                connection.close()


_LIVE: weakref.WeakSet[Checkpointer] = weakref.WeakSet()
_held: list[Checkpointer] = []  # the checkpointers a fork in progress holds still


def _hold_before_fork() -> None:
    _held[:] = list(_LIVE)
    for checkpointer in _held:
        checkpointer._running.acquire()


def _release_after_fork() -> None:
    """In the parent: the checkpointers go on. In the child, which has none of their threads,
    their locks are released too, so that ``truncate_wal`` there does not wait on them."""
    for checkpointer in _held:
        checkpointer._running.release()
    _held.clear()


os.register_at_fork(
    before=_hold_before_fork,
    after_in_parent=_release_after_fork,
    after_in_child=_release_after_fork,
)


def truncate_wal(driver: Any, checkpointer: Checkpointer | None, patience_s: float = 30.0) -> None:
    """Copy the whole write-ahead log into the database file and truncate it to nothing (what
    erasure needs: no old page image of a deleted row left in the log). SQLite refuses while
    another connection checkpoints (this process's thread is paused; another process's is
    waited for) or a reader still uses the log: tried again for ``patience_s``."""
    deadline = time.monotonic() + patience_s
    while True:
        with checkpointer.paused() if checkpointer is not None else nullcontext():
            busy = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if not busy:
            return
        if time.monotonic() > deadline:
            log.error("the write-ahead log could not be truncated within %.0f s", patience_s)
            return
        time.sleep(0.05)
