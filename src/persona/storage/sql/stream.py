"""The change stream's side of the store: the outbox a write adds its messages to, the relay's
position, webhooks and their deliveries (see ``tables.stream``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import orjson
from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from persona.storage.records import DeadLetter, StreamMessage, WebhookRecord
from persona.storage.sql.common import chunks, json_text
from persona.storage.tables.stream import outbox, stream_positions, webhook_deliveries, webhooks


class SqlOutbox:
    """The messages of one write, numbered with the write's number. Without a stream (the
    store's ``publishes`` off) it keeps nothing: no row is written that no one would read."""

    def __init__(
        self, connection: Connection, write_number: Callable[[], int], enabled: bool
    ) -> None:
        self._c = connection
        self._write_number = write_number
        self.enabled = enabled

    def add(self, messages: Sequence[StreamMessage]) -> None:
        if not self.enabled or not messages:
            return
        number = self._write_number()
        self._c.execute(
            insert(outbox),
            [
                {
                    "write_seq": number,
                    "kind": m.kind,
                    "message_id": m.message_id,
                    "profile_key": m.profile_key,
                    "body": json_text(m.body),
                }
                for m in messages
            ],
        )


def outbox_after(connection: Connection, after: int, upto: int) -> list[StreamMessage]:
    """The outbox's messages of the writes numbered in (after, upto], in write order."""
    rows = connection.execute(
        select(outbox.c.message_id, outbox.c.kind, outbox.c.body, outbox.c.profile_key)
        .where(outbox.c.write_seq > after, outbox.c.write_seq <= upto)
        .order_by(outbox.c.write_seq, outbox.c.seq)
    )
    return [StreamMessage(str(i), str(k), orjson.loads(b), p) for i, k, b, p in rows]


def position(connection: Connection, name: str) -> int | None:
    found = connection.execute(
        select(stream_positions.c.position).where(stream_positions.c.name == name)
    ).scalar_one_or_none()
    return None if found is None else int(found)


def set_position(connection: Connection, name: str, value: int, *, if_absent: bool) -> None:
    """Note ``value`` as published and delete the outbox rows up to it (they are in the
    stream now); ``if_absent``: only where no position is noted yet (a stream's start)."""
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(stream_positions).values(name=name, position=value)
    if if_absent:
        connection.execute(statement.on_conflict_do_nothing())
        return
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[stream_positions.c.name], set_={"position": value}
        )
    )
    connection.execute(delete(outbox).where(outbox.c.write_seq <= value))


class SqlWebhookStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, record: WebhookRecord) -> None:
        self._c.execute(insert(webhooks).values(**_webhook_row(record)))

    def all(self) -> list[WebhookRecord]:
        rows = self._c.execute(select(webhooks).order_by(webhooks.c.created_at_ms))
        return [_webhook(row) for row in rows]

    def get(self, webhook_id: str) -> WebhookRecord | None:
        row = self._c.execute(select(webhooks).where(webhooks.c.webhook_id == webhook_id)).first()
        return None if row is None else _webhook(row)

    def deactivate(self, webhook_id: str) -> bool:
        result = self._c.execute(
            update(webhooks)
            .where(webhooks.c.webhook_id == webhook_id, webhooks.c.active.is_(True))
            .values(active=False)
        )
        return bool(result.rowcount)

    def handled(self, webhook_id: str, message_ids: Collection[str]) -> set[str]:
        """Which of these messages the webhook was already given (or gave up on)."""
        d = webhook_deliveries
        found: set[str] = set()
        for chunk in chunks(message_ids):
            rows = self._c.execute(
                select(d.c.message_id).where(
                    d.c.webhook_id == webhook_id, d.c.message_id.in_(chunk)
                )
            )
            found.update(str(r[0]) for r in rows)
        return found

    def record(
        self,
        webhook_id: str,
        message_ids: Sequence[str],
        *,
        status: str,
        attempts: int,
        at_ms: int,
        error: str | None = None,
        bodies: Sequence[str] | None = None,
    ) -> None:
        if not message_ids:
            return
        rows: list[dict[str, Any]] = [
            {
                "webhook_id": webhook_id,
                "message_id": message_id,
                "status": status,
                "attempts": attempts,
                "at_ms": at_ms,
                "error": error,
                "body": None if bodies is None else bodies[index],
            }
            for index, message_id in enumerate(message_ids)
        ]
        dialect = sqlite if self._c.dialect.name == "sqlite" else postgresql
        self._c.execute(dialect.insert(webhook_deliveries).on_conflict_do_nothing(), rows)

    def dead_letters(self, webhook_id: str, limit: int) -> list[DeadLetter]:
        d = webhook_deliveries
        rows = self._c.execute(
            select(d.c.webhook_id, d.c.message_id, d.c.attempts, d.c.at_ms, d.c.error, d.c.body)
            .where(d.c.webhook_id == webhook_id, d.c.status == "dead")
            .order_by(d.c.at_ms.desc())
            .limit(limit)
        )
        return [
            DeadLetter(str(w), str(m), int(a), int(t), str(e or ""), str(b))
            for w, m, a, t, e, b in rows
        ]

    def prune(self, before_ms: int) -> int:
        """Forget deliveries older than ``before_ms`` (dead letters stay until replayed)."""
        d = webhook_deliveries
        result = self._c.execute(delete(d).where(d.c.status == "delivered", d.c.at_ms < before_ms))
        return int(result.rowcount or 0)


def _webhook_row(record: WebhookRecord) -> dict[str, Any]:
    return {
        "webhook_id": record.webhook_id,
        "url": record.url,
        "kinds": json_text(list(record.kinds)),
        "secret": record.secret,
        "created_at_ms": record.created_at_ms,
        "active": record.active,
    }


def _webhook(row: Any) -> WebhookRecord:
    return WebhookRecord(
        str(row.webhook_id),
        str(row.url),
        tuple(orjson.loads(row.kinds)),
        str(row.secret),
        int(row.created_at_ms),
        bool(row.active),
    )
