"""The decision log's writer: group commit, so concurrent requests share one transaction.

Every decision must be committed before its answer leaves, and a commit costs a disk flush
(SQLite) or a round trip under the write lock (PostgreSQL). Requests that arrive while a commit
is in flight therefore wait and go together in the next one: the first of them leads, writes
every pending record in one transaction, wakes the requests it wrote, and hands the lead to the
first request that arrived meanwhile. No thread of its own, no timer, and no added delay when
the server is idle. A failed commit fails every request of its batch (nothing is acknowledged).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from persona.decide.store import DecisionRecord, SqlDecisionStore
from persona.storage.sql import SqlStorage


@dataclass(eq=False, slots=True)
class _Waiter:
    records: Sequence[DecisionRecord]
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False
    error: BaseException | None = None


class DecisionLogWriter:
    def __init__(self, storage: SqlStorage) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        self._pending: list[_Waiter] = []
        self._writing = False

    def write(self, records: Sequence[DecisionRecord]) -> None:
        """Return once ``records`` are committed; raise when their transaction failed."""
        me = _Waiter(records)
        with self._lock:
            self._pending.append(me)
            leading = not self._writing
            self._writing = True
        if not leading:
            me.done.wait()
            if not me.lead:
                if me.error is not None:
                    raise me.error
                return
        self._lead()
        if me.error is not None:
            raise me.error

    def _lead(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        error: BaseException | None = None
        try:
            with self._storage.write() as uow:
                SqlDecisionStore(uow.connection).log([r for w in batch for r in w.records])
                uow.changes_profiles(())  # the log is not part of any profile
        except BaseException as exc:  # handed to every request of the batch, then re-raised
            error = exc
        successor: _Waiter | None = None
        with self._lock:
            if self._pending:
                successor = self._pending[0]
                successor.lead = True
            else:
                self._writing = False
        for waiter in batch:
            waiter.error = error
            waiter.lead = False
            waiter.done.set()
        if successor is not None:
            successor.done.set()
