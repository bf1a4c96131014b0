"""The decision log's writer: group commit, so concurrent requests share one transaction.

Every decision must be committed before its answer leaves, and a commit costs a disk flush
(SQLite) or a round trip under the write lock (PostgreSQL). Requests therefore hand their
records to one writer thread and wait: while it commits, the records of the requests that
arrive meanwhile pile up, and it writes all of them in its next transaction. A request is
answered only once its own records are committed; a failed commit fails every request of its
batch (nothing of it is acknowledged). No timer: an idle server commits a lone request at once.

A thread of its own, rather than a leader chosen among the waiting requests, so that an
``async`` route waits on a future without holding a worker thread, and the records of a whole
batch are resolved in one pass instead of by waking each waiter's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from persona.decide.store import DecisionRecord, SqlDecisionStore
from persona.storage.sql import SqlStorage

_Pending = tuple[Sequence[DecisionRecord], "Future[None]"]


class DecisionLogWriter:
    def __init__(self, storage: SqlStorage) -> None:
        self._storage = storage
        self._wake = threading.Condition()
        self._pending: list[_Pending] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, records: Sequence[DecisionRecord]) -> Future[None]:
        """A future that completes once ``records`` are committed (or fails with the error)."""
        future: Future[None] = Future()
        with self._wake:
            if self._closed:
                raise RuntimeError("the decision log is closed")
            self._pending.append((records, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
                self._thread.start()
            self._wake.notify()
        return future

    def write(self, records: Sequence[DecisionRecord]) -> None:
        """Return once ``records`` are committed; raise when their transaction failed."""
        self.submit(records).result()

    async def write_async(self, records: Sequence[DecisionRecord]) -> None:
        """``write`` for the event loop: waits without holding a thread."""
        await asyncio.wrap_future(self.submit(records))

    def close(self) -> None:
        """Commit what is pending, then stop the writer thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, []
            try:
                with self._storage.write() as uow:
                    SqlDecisionStore(uow.connection).log([r for rs, _ in batch for r in rs])
                    uow.changes_profiles(())  # the log is not part of any profile
            except BaseException as exc:  # handed to every request of the batch
                for _, future in batch:
                    future.set_exception(exc)
            else:
                for _, future in batch:
                    future.set_result(None)
