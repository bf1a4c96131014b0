"""The append-only audit log. The database refuses updates and deletes too (triggers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from persona.storage.records import AuditEntry
from persona.storage.tables.privacy import audit_log


class SqlAuditTrail:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def append(
        self, at_ms: int, actor: str, action: str, target: str, details: dict[str, Any]
    ) -> None:
        self._c.execute(
            insert(audit_log).values(
                at_ms=at_ms, actor=actor, action=action, target=target, details=details
            )
        )

    def page(self, *, after_id: int, limit: int) -> list[AuditEntry]:
        t = audit_log
        rows = self._c.execute(
            select(t).where(t.c.audit_id > after_id).order_by(t.c.audit_id).limit(limit)
        )
        return [AuditEntry(**row._mapping) for row in rows]
