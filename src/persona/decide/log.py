"""The decision log's writer: group commit, so concurrent requests share one transaction.

Every decision must be committed before its answer leaves, and a commit costs a disk flush
(SQLite) or a round trip under the write lock (PostgreSQL). Requests therefore hand their
records to one writer thread and wait: while it commits, the records of the requests that
arrive meanwhile pile up, and it writes all of them in its next transaction. A request is
answered only once its own records are committed; a failed commit fails every request of its
batch (nothing of it is acknowledged). No timer: an idle server commits a lone request at once.

A thread of its own, rather than a leader chosen among the waiting requests, so that an
``async`` route waits on a future without holding a worker thread, and the records of a whole
batch are resolved in one pass instead of by waking each waiter's thread. The requests of an
event loop are settled by one callback per batch: waking a loop from another thread writes to
its self-pipe, a system call, and a batch of sixteen requests made sixteen of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from persona.storage.protocols import Storage
from persona.storage.records import DecisionRecord

# The records and who waits for them: a thread's future, or an event loop's future and its loop.
_Pending = tuple[
    Sequence[DecisionRecord],
    "Future[None] | asyncio.Future[None]",
    asyncio.AbstractEventLoop | None,
]


class DecisionLogWriter:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._wake = threading.Condition()
        self._pending: list[_Pending] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, records: Sequence[DecisionRecord]) -> Future[None]:
        """A future that completes once ``records`` are committed (or fails with the error)."""
        future: Future[None] = Future()
        self._enqueue((records, future, None))
        return future

    def write(self, records: Sequence[DecisionRecord]) -> None:
        """Return once ``records`` are committed; raise when their transaction failed."""
        self.submit(records).result()

    async def write_async(self, records: Sequence[DecisionRecord]) -> None:
        """``write`` for the event loop: waits without holding a thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._enqueue((records, future, loop))
        await future

    def _enqueue(self, pending: _Pending) -> None:
        with self._wake:
            if self._closed:
                raise RuntimeError("the decision log is closed")
            self._pending.append(pending)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
                self._thread.start()
            self._wake.notify()

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
            error: BaseException | None = None
            try:
                self._storage.log_decisions([r for rs, _, _ in batch for r in rs])
            except BaseException as exc:  # handed to every request of the batch
                error = exc
            _settle_all(batch, error)


def _settle_all(batch: list[_Pending], error: BaseException | None) -> None:
    """Complete every future of ``batch``: threads' at once, each loop's in one callback."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    of_threads: list[Future[None]] = []
    for _, future, loop in batch:
        if loop is None:
            assert isinstance(future, Future)
            of_threads.append(future)
        else:
            assert isinstance(future, asyncio.Future)
            by_loop.setdefault(loop, []).append(future)
    _settle(of_threads, error)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, futures, error)


def _settle(
    futures: Sequence[Future[None] | asyncio.Future[None]], error: BaseException | None
) -> None:
    for future in futures:
        if future.done():  # cancelled: the request went away
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
