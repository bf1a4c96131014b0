"""Events queued in the caller's process and sent in batches: ``EventBatcher`` (a thread) and
``AsyncEventBatcher`` (a task).

A site that sends each event as it happens pays a request per event; queued, a thousand
events cost one request and one transaction on the server. An event gets its id and its time
when it is queued, so a batch sent late still says when each event happened, and a batch
tried again (the client's retry policy) is the same ids and the same bytes: the server
answers ``duplicate`` for what an earlier try stored, and counts nothing twice.

A batch is sent when ``max_events`` are queued, when the oldest has waited ``max_wait``
seconds, on ``flush()`` and on close. What became of each batch (the server's result, with
its rejected events, or the error of its last try) goes to ``on_result``; without one,
rejections and failures are logged (logger ``persona.client``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, Unpack

import anyio
from anyio.abc import TaskGroup

from persona.client import calls
from persona.client.async_ import AsyncPersona
from persona.client.calls import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, QueuedEvent
from persona.client.errors import PersonaError
from persona.client.models import Event, EventFields, EventOutcome, IngestResult
from persona.client.sync import Persona

log = logging.getLogger("persona.client")

AnyEvent = Event | Mapping[str, Any] | QueuedEvent


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One batch sent: the server's ``result``, or the ``error`` of its last try (then none
    of its events is known to be stored; sending ``events`` again is safe, they keep their
    ids)."""

    events: list[QueuedEvent]
    result: IngestResult | None = None
    error: PersonaError | None = None

    @property
    def rejected(self) -> list[tuple[QueuedEvent, EventOutcome]]:
        """The events the server rejected, each with its code and message."""
        if self.result is None:
            return []
        return [(self.events[o.index], o) for o in self.result.rejections]


ResultHandler = Callable[[BatchResult], None]


def log_result(batch: BatchResult) -> None:
    """What happens to a batch's result without an ``on_result``: problems are logged."""
    if batch.error is not None:
        log.warning("%d event(s) not sent: %s", len(batch.events), batch.error)
    for event, outcome in batch.rejected:
        log.warning("event %s rejected: %s: %s", event.event_id, outcome.code, outcome.message)


class PendingEvents:
    """The queue both batchers share: events in order, cut into batches the server takes."""

    def __init__(self, max_events: int, max_bytes: int, max_wait: float) -> None:
        if not 1 <= max_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"max_events must be 1 to {MAX_BATCH_EVENTS}")
        if max_wait <= 0:
            raise ValueError("max_wait must be positive")
        self.max_events = max_events
        self.max_bytes = min(max_bytes, MAX_BATCH_BYTES)
        self.max_wait = max_wait
        self._events: deque[QueuedEvent] = deque()
        self._bytes = 0
        self._oldest_at = 0.0  # monotonic time the oldest queued event was added

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: QueuedEvent, now: float) -> None:
        if not self._events:
            self._oldest_at = now
        self._events.append(event)
        self._bytes += len(event.body) + 1

    def full(self) -> bool:
        return len(self._events) >= self.max_events or self._bytes >= self.max_bytes

    def wait(self, now: float) -> float | None:
        """Seconds until the oldest event is due (0: now), None when nothing is queued."""
        if not self._events:
            return None
        return max(0.0, self._oldest_at + self.max_wait - now)

    def take(self, now: float) -> list[QueuedEvent]:
        """The next batch, oldest first (empty when nothing is queued)."""
        batch = next(calls.batches(self._events, self.max_events, self.max_bytes), [])
        for _ in batch:
            self._events.popleft()
        self._bytes -= sum(len(e.body) + 1 for e in batch)
        # what is left came after the batch filled up: its wait starts now
        self._oldest_at = now
        return batch

    def take_all(self) -> list[QueuedEvent]:
        batch = list(self._events)
        self._events.clear()
        self._bytes = 0
        return batch


def _stamped(event: AnyEvent) -> QueuedEvent:
    return calls.queue_event(event, stamp=datetime.now(UTC))


class EventBatcher:
    """Queues events and sends them in batches from a background thread, through ``client``
    (its timeout and retry policy).

    ``add`` and ``track`` return at once with the event's id, from any thread. ``flush()``
    sends what is queued and returns the results; ``close()`` (or leaving the ``with``
    block) sends the rest and stops the thread. Events still queued when the process ends
    without ``close()`` are lost.
    """

    def __init__(
        self,
        client: Persona,
        *,
        max_events: int = 500,
        max_wait: float = 1.0,
        max_bytes: int = MAX_BATCH_BYTES,
        on_result: ResultHandler | None = None,
    ) -> None:
        self._client = client
        self._pending = PendingEvents(max_events, max_bytes, max_wait)
        self._on_result = on_result or log_result
        self._changed = threading.Condition()
        # Held while a batch is taken and sent, so that ``flush`` returns only after the
        # batch the thread took before it was sent too; reentrant for an ``on_result`` that
        # flushes.
        self._sending = threading.RLock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="persona-event-batcher", daemon=True)
        self._thread.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def add(self, event: AnyEvent) -> str:
        """Queue an event; its id (the one it had, or a new UUID)."""
        queued = _stamped(event)
        with self._changed:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._pending.add(queued, time.monotonic())
            # the first event starts the clock of its batch; a full batch goes now
            if len(self._pending) == 1 or self._pending.full():
                self._changed.notify()
        return queued.event_id

    def track(self, type: str, **fields: Unpack[EventFields]) -> str:
        """Queue one event: ``track("view", user_id="42", item_id="1")``; its id."""
        return self.add(Event(type=type, **fields))

    def __len__(self) -> int:
        with self._changed:
            return len(self._pending)

    def flush(self) -> list[BatchResult]:
        """Send everything queued now; the result of each batch (also given to
        ``on_result``)."""
        with self._sending:
            with self._changed:
                events = self._pending.take_all()
            return [self._send(batch) for batch in calls.batches(events)]

    def close(self) -> None:
        """Send what is queued and stop the thread; adding afterwards raises."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._closed and not self._pending.full():
                    wait = self._pending.wait(time.monotonic())
                    if wait == 0:
                        break
                    self._changed.wait(wait)
                closed = self._closed
            if closed:
                self.flush()
                return
            with self._sending:
                with self._changed:
                    batch = self._pending.take(time.monotonic())
                if batch:
                    self._send(batch)

    def _send(self, events: list[QueuedEvent]) -> BatchResult:
        try:
            outcome = BatchResult(events, result=self._client.send_events(events))
        except Exception as exc:  # reported, not raised: the thread must live on
            outcome = BatchResult(events, error=_as_persona_error(exc))
        _deliver(self._on_result, outcome)
        return outcome


class AsyncEventBatcher:
    """``EventBatcher`` for async code: the batches are sent by a task of the ``async with``
    block, which sends the rest when the block ends. ``add`` and ``track`` do not wait."""

    def __init__(
        self,
        client: AsyncPersona,
        *,
        max_events: int = 500,
        max_wait: float = 1.0,
        max_bytes: int = MAX_BATCH_BYTES,
        on_result: ResultHandler | None = None,
    ) -> None:
        self._client = client
        self._pending = PendingEvents(max_events, max_bytes, max_wait)
        self._on_result = on_result or log_result
        self._changed = anyio.Event()
        self._sending = anyio.Lock()
        self._closed = False
        self._tasks: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        self._tasks.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._closed = True
        self._changed.set()
        assert self._tasks is not None
        if kind is None or issubclass(kind, Exception):
            # the block failed, not the task: the queued events are still sent (a
            # cancellation, by contrast, stops the sending)
            await self._tasks.__aexit__(None, None, None)
        else:
            await self._tasks.__aexit__(kind, error, traceback)

    def add(self, event: AnyEvent) -> str:
        """Queue an event; its id (the one it had, or a new UUID)."""
        if self._closed or self._tasks is None:
            raise RuntimeError("the batcher runs inside its `async with` block")
        queued = _stamped(event)
        self._pending.add(queued, time.monotonic())
        # the first event starts the clock of its batch; a full batch goes now
        if len(self._pending) == 1 or self._pending.full():
            self._changed.set()
        return queued.event_id

    def track(self, type: str, **fields: Unpack[EventFields]) -> str:
        """Queue one event: ``track("view", user_id="42", item_id="1")``; its id."""
        return self.add(Event(type=type, **fields))

    def __len__(self) -> int:
        return len(self._pending)

    async def flush(self) -> list[BatchResult]:
        """Send everything queued now; the result of each batch (also given to
        ``on_result``)."""
        async with self._sending:
            events = self._pending.take_all()
            return [await self._send(batch) for batch in calls.batches(events)]

    async def _run(self) -> None:
        while not self._closed:
            if not self._pending.full():
                with anyio.move_on_after(self._pending.wait(time.monotonic())):
                    await self._changed.wait()
                self._changed = anyio.Event()  # anyio's events cannot be cleared
            if self._closed:
                break
            if self._pending.full() or self._pending.wait(time.monotonic()) == 0:
                async with self._sending:
                    batch = self._pending.take(time.monotonic())
                    if batch:
                        await self._send(batch)
        await self.flush()

    async def _send(self, events: list[QueuedEvent]) -> BatchResult:
        try:
            outcome = BatchResult(events, result=await self._client.send_events(events))
        except Exception as exc:  # reported, not raised: the task must live on
            outcome = BatchResult(events, error=_as_persona_error(exc))
        _deliver(self._on_result, outcome)
        return outcome


def _as_persona_error(exc: Exception) -> PersonaError:
    """A failure of a batch as the error its result carries (a closed client, a bug: not an
    answer of the server, so ``unexpected_error`` with the original as its cause)."""
    if isinstance(exc, PersonaError):
        return exc
    error = PersonaError(f"{type(exc).__name__}: {exc}", code="unexpected_error")
    error.__cause__ = exc
    return error


def _deliver(handler: ResultHandler, outcome: BatchResult) -> None:
    try:
        handler(outcome)
    except Exception:  # a failing handler must not stop the sending of later batches
        log.exception("on_result failed")
