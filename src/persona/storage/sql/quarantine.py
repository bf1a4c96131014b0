"""The quarantine: rejected events with their reason, listed and replayed once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Row

from persona.storage import tables
from persona.storage.records import (
    QuarantineRecord,
)
from persona.storage.sql.common import bucket_start


class SqlQuarantineLog:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, records: Sequence[QuarantineRecord]) -> None:
        if not records:
            return
        rows = [
            {
                "event_id": r.event_id,
                "code": r.code,
                "message": r.message,
                "path": r.path,
                "batch_index": r.batch_index,
                "raw": r.raw,
                "source": r.source,
                "received_at_ms": r.received_at_ms,
            }
            for r in records
        ]
        self._c.execute(tables.quarantine.insert(), rows)

    def code_counts(self) -> list[tuple[str, int, int]]:
        t = tables.quarantine
        entries = func.count().label("entries")
        query = (
            select(t.c.code, entries, func.count(t.c.replayed_at_ms))
            .group_by(t.c.code)
            .order_by(entries.desc(), t.c.code)
        )
        return [(str(code), int(n), int(replayed)) for code, n, replayed in self._c.execute(query)]

    def code_counts_over_time(self, since_ms: int, bucket_ms: int) -> list[tuple[int, str, int]]:
        t = tables.quarantine
        bucket = bucket_start(t.c.received_at_ms, bucket_ms)
        query = (
            select(bucket, t.c.code, func.count())
            .where(t.c.received_at_ms >= since_ms)
            .group_by(bucket, t.c.code)
            .order_by(bucket, t.c.code)
        )
        return [(int(at), str(code), int(n)) for at, code, n in self._c.execute(query)]

    def list(self, *, after_id: int, limit: int, code: str | None = None) -> list[QuarantineRecord]:
        t = tables.quarantine
        query = select(t).where(t.c.quarantine_id > after_id)
        if code is not None:
            query = query.where(t.c.code == code)
        rows = self._c.execute(query.order_by(t.c.quarantine_id).limit(limit))
        return [_quarantine(row) for row in rows]

    def get(self, quarantine_id: int) -> QuarantineRecord | None:
        t = tables.quarantine
        row = self._c.execute(select(t).where(t.c.quarantine_id == quarantine_id)).first()
        return _quarantine(row) if row else None

    def mark_replayed(self, quarantine_id: int, event_id: str, at_ms: int) -> bool:
        t = tables.quarantine
        result = self._c.execute(
            update(t)
            .where(t.c.quarantine_id == quarantine_id, t.c.replayed_at_ms.is_(None))
            .values(replayed_at_ms=at_ms, replayed_event_id=event_id)
        )
        return bool(result.rowcount == 1)

    def count(self) -> int:
        return int(
            self._c.execute(select(func.count()).select_from(tables.quarantine)).scalar_one()
        )


def _quarantine(row: Row[Any]) -> QuarantineRecord:
    m = row._mapping
    return QuarantineRecord(**{name: m[name] for name in QuarantineRecord.__slots__})
