"""SQLite's write-ahead log reaches the database file after commits, without the committing
thread copying it (persona.storage.sql.checkpoints)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from persona.storage.database import create_database_engine, migrate
from persona.storage.sql import SqlStorage
from persona.storage.sql.checkpoints import BACKSTOP_PAGES
from tests.storage.test_contract import event


def _storage(path: Path) -> SqlStorage:
    engine = create_database_engine(f"sqlite:///{path}", sqlite_autocheckpoint_pages=BACKSTOP_PAGES)
    migrate(engine)
    return SqlStorage(engine)


def test_commits_are_copied_into_the_database_file_by_the_storage_thread(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    storage = _storage(path)
    try:
        before = path.stat().st_size
        with storage.write() as uow:
            uow.events.append([event(f"e{i}", properties={"pad": "x" * 500}) for i in range(2000)])
        # Far below the backstop: only the storage's thread can have copied these pages.
        deadline = time.monotonic() + 10
        while path.stat().st_size <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.stat().st_size > before + 1_000_000
        # The file alone (read as immutable: without the log) holds them all.
        with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as connection:
            rows = connection.execute("SELECT count(*) FROM events").fetchone()[0]
        assert rows == 2000
    finally:
        storage.close()


def test_close_stops_the_thread(tmp_path: Path) -> None:
    storage = _storage(tmp_path / "p.db")
    with storage.write() as uow:
        uow.events.append([event("e1")])
    checkpointer = storage._checkpointer
    assert checkpointer is not None
    storage.close()
    assert not checkpointer._thread.is_alive()


def test_a_fork_waits_until_the_thread_is_out_of_sqlite(tmp_path: Path) -> None:
    """A child forked while the thread checkpoints would inherit SQLite's global mutexes
    locked, and hang on its first connection: the fork waits for the checkpoint to end."""
    import os
    import threading

    storage = _storage(tmp_path / "p.db")
    checkpointer = storage._checkpointer
    assert checkpointer is not None
    inside, leaving = threading.Event(), threading.Event()

    def checkpoint() -> None:  # stands for the thread inside SQLite (it holds the same lock)
        with checkpointer.paused():
            inside.set()
            time.sleep(0.2)
            leaving.set()

    holder = threading.Thread(target=checkpoint)
    holder.start()
    try:
        inside.wait()
        pid = os.fork()
        if pid == 0:  # the child: a connection of its own opens, and the lock is free
            with sqlite3.connect(tmp_path / "child.db") as connection:
                connection.execute("SELECT 1").fetchall()
            os._exit(0 if checkpointer._running.acquire(timeout=5) else 1)
        assert leaving.is_set()  # the fork returned only after the checkpoint had ended
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        holder.join()
        storage.close()
