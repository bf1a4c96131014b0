"""The change stream in Redis Streams: one stream, trimmed to about ``max_messages``; each
consumer (the lake writer, each webhook) is a consumer group, so every group sees every message
and the workers of one group share them.

A message received and not acknowledged stays pending in its group; when its consumer has been
silent for ``claim_idle_seconds`` (it died), the next ``receive`` of any consumer of the group
claims it (``XAUTOCLAIM``): a crash between receipt and acknowledgement redelivers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from persona.storage.records import StreamMessage

PUBLISH_CHUNK = 1_000  # messages sent in one round trip


@dataclass(frozen=True, slots=True)
class Received:
    entry_id: str  # Redis's id of the entry, what an acknowledgement names
    message: StreamMessage


class RedisStream:
    def __init__(self, client: Any, name: str, max_messages: int) -> None:
        self._client = client
        self.name = name
        self._max = max_messages

    def publish(self, messages: Sequence[StreamMessage]) -> None:
        for start in range(0, len(messages), PUBLISH_CHUNK):
            pipe = self._client.pipeline(transaction=False)
            for m in messages[start : start + PUBLISH_CHUNK]:
                fields = {"id": m.message_id, "kind": m.kind, "body": orjson.dumps(m.body)}
                pipe.xadd(self.name, fields, maxlen=self._max, approximate=True)
            pipe.execute()

    def join(self, group: str) -> None:
        """Create the consumer group if it is new: it receives the messages added from now on."""
        try:
            self._client.xgroup_create(self.name, group, id="$", mkstream=True)
        except Exception as exc:  # redis.ResponseError; the module is imported only with Redis
            if "BUSYGROUP" not in str(exc):
                raise

    def leave(self, group: str) -> None:
        self._client.xgroup_destroy(self.name, group)

    def receive(
        self, group: str, consumer: str, count: int, block_ms: int, claim_idle_ms: int
    ) -> list[Received]:
        """Messages for ``consumer``: first those of the group that a silent consumer left
        pending, then new ones (waiting up to ``block_ms`` for some)."""
        claimed = self._client.xautoclaim(
            self.name, group, consumer, min_idle_time=claim_idle_ms, start_id="0-0", count=count
        )
        entries = [(entry_id, fields) for entry_id, fields in claimed[1] if fields]
        stale = claimed[2] if len(claimed) > 2 else []  # pending, but trimmed from the stream
        if stale:
            self._client.xack(self.name, group, *stale)
        if not entries:
            answer = self._client.xreadgroup(
                group, consumer, {self.name: ">"}, count=count, block=block_ms
            )
            entries = answer[0][1] if answer else []
        return [_received(entry_id, fields) for entry_id, fields in entries]

    def ack(self, group: str, entries: Sequence[Received]) -> None:
        if entries:
            self._client.xack(self.name, group, *[r.entry_id for r in entries])

    def lags(self) -> dict[str, int]:
        """Messages each consumer group has yet to receive, and received but not acknowledged."""
        try:
            groups = self._client.xinfo_groups(self.name)
        except Exception as exc:  # no stream yet
            if "no such key" in str(exc).lower():
                return {}
            raise
        return {
            _text(g["name"]): int(g.get("lag") or 0) + int(g.get("pending") or 0) for g in groups
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _received(entry_id: Any, fields: dict[Any, Any]) -> Received:
    get = {_text(k): v for k, v in fields.items()}
    message = StreamMessage(_text(get["id"]), _text(get["kind"]), orjson.loads(get["body"]))
    return Received(_text(entry_id), message)
