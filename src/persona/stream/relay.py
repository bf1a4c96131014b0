"""The relay: what the store committed, published on the change stream, at least once.

A write adds its messages (segment changes, decisions, erasures) to the outbox in its own
transaction, numbered with the write's number; the events it stores carry the same number.
The relay reads, from one snapshot, the events and the outbox rows of the writes after the last
number it published and up to one that no running write can still commit below
(``Storage.events_after``), publishes them, then notes that number in the store (which deletes
those outbox rows). A crash before the note publishes them again: each message keeps its id, so
consumers drop the copies. One process relays at a time (a lease, ``jobs.Leadership``).

An event a profile merge moved to the person's known id is published again under its id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import orjson
import pyarrow as pa

from persona.storage.protocols import Storage
from persona.storage.records import StreamMessage

log = logging.getLogger(__name__)

POSITION = "relay"
NOTHING = 1 << 62  # a write number past every write: reads none, tells where the store stands
CHUNK_ROWS = 10_000


class Publisher(Protocol):
    def publish(self, messages: list[StreamMessage]) -> None: ...


class Relay:
    def __init__(
        self,
        storage: Storage,
        stream: Publisher,
        counted: Callable[[int], None] = lambda messages: None,
    ) -> None:
        self._storage = storage
        self._stream = stream
        self._counted = counted  # messages published (metrics)

    def start(self) -> None:
        """Where the stream starts on a store that never had one: after the writes made so far
        (the store's history is not replayed). Called by every process that publishes as it
        opens, before it writes; the first one's position holds."""
        if self._storage.stream_position(POSITION) is None:
            with self._storage.events_after(NOTHING, 1) as written:
                start = written.write_seq
            self._storage.set_stream_position(POSITION, start, if_absent=True)
            log.info("the change stream starts after write %d", start)

    def run_once(self) -> int:
        """Publish what committed since the last run; returns how many messages."""
        position = self._storage.stream_position(POSITION)
        if position is None:
            self.start()
            return 0
        sent = 0
        with self._storage.events_after(position, CHUNK_ROWS, messages=True) as written:
            if written.write_seq <= position:
                return 0
            if written.messages:
                self._stream.publish(written.messages)
                sent += len(written.messages)
            for chunk in written.chunks:
                events = list(event_messages(chunk))
                self._stream.publish(events)
                sent += len(events)
            last = written.write_seq
        self._storage.set_stream_position(POSITION, last)
        self._counted(sent)
        return sent


def event_messages(chunk: pa.Table) -> Iterator[StreamMessage]:
    """Each stored event as a message (its properties and context as JSON, not text)."""
    for row in chunk.to_pylist():
        body: dict[str, Any] = dict(row)
        for name in ("properties", "context"):
            if body[name] is not None:
                body[name] = orjson.loads(body[name])
        yield StreamMessage(f"event:{row['event_id']}", "event", body, row["profile_key"])
