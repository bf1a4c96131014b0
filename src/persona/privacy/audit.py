"""The append-only audit log of privacy and admin actions: who (key id), what, when, on what.

Targets and details never hold personal values: a person appears only as ``subject:<keyed
hash>``. There is no update or delete path here, and the database refuses both (triggers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from persona.clock import Clock
from persona.storage.protocols import UnitOfWork
from persona.storage.sql import SqlStorage, SqlUnitOfWork
from persona.storage.tables.privacy import audit_log


def connection_of(uow: UnitOfWork | SqlUnitOfWork) -> Connection:
    if not isinstance(uow, SqlUnitOfWork):
        raise TypeError("privacy needs the SQL storage")
    return uow.connection


@dataclass(frozen=True, slots=True)
class AuditEntry:
    audit_id: int
    at_ms: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]


class AuditLog:
    def __init__(self, storage: SqlStorage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    def write(
        self,
        connection: Connection,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry inside the caller's transaction (it commits with the action)."""
        connection.execute(
            insert(audit_log).values(
                at_ms=self._clock.now_ms(),
                actor=actor,
                action=action,
                target=target,
                details=details or {},
            )
        )

    def record(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> None:
        """Append one entry in a transaction of its own."""
        with self._storage.write() as uow:
            self.write(connection_of(uow), actor, action, target, details)

    def page(self, *, after_id: int, limit: int) -> list[AuditEntry]:
        t = audit_log
        with self._storage.read() as uow:
            rows = connection_of(uow).execute(
                select(t).where(t.c.audit_id > after_id).order_by(t.c.audit_id).limit(limit)
            )
            return [AuditEntry(**row._mapping) for row in rows]
