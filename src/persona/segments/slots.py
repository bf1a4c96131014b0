"""A bound on how many expensive operations run at once.

A preview evaluates any rule over every profile; the worker threads that run it are the same
that answer cheap reads. Past the bound a caller is refused at once (``BusyError``, 503 with
``Retry-After``) rather than queued, so a burst of expensive requests cannot hold every thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from persona.errors import BusyError


class Slots:
    def __init__(self, count: int, what: str) -> None:
        self.count = count
        self._what = what
        self._semaphore = threading.BoundedSemaphore(count)

    @contextmanager
    def taken(self) -> Iterator[None]:
        """Hold a slot for the block; ``BusyError`` at once when none is free."""
        if not self._semaphore.acquire(blocking=False):
            raise BusyError(f"{self.count} {self._what} are running; try again shortly")
        try:
            yield
        finally:
            self._semaphore.release()
