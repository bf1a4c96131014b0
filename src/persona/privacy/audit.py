"""The append-only audit log of privacy and admin actions: who (key id), what, when, on what.

Targets and details never hold personal values: a person appears only as ``subject:<keyed
hash>``. There is no update or delete path here, and the database refuses both (triggers).
"""

from __future__ import annotations

from typing import Any

from persona.clock import Clock
from persona.storage.protocols import Storage, UnitOfWork
from persona.storage.records import AuditEntry


class AuditLog:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock

    def write(
        self,
        uow: UnitOfWork,
        actor: str,
        action: str,
        target: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry inside the caller's transaction (it commits with the action)."""
        uow.audit.append(self._clock.now_ms(), actor, action, target, details or {})

    def record(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> None:
        """Append one entry in a transaction of its own."""
        with self._storage.write() as uow:
            self.write(uow, actor, action, target, details)

    def page(self, *, after_id: int, limit: int) -> list[AuditEntry]:
        with self._storage.read() as uow:
            return uow.audit.page(after_id=after_id, limit=limit)
