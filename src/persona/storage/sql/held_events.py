"""Events held back for lack of consent (the shape of ``events``, plus why they were held)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from persona.storage.records import HeldEventRecord
from persona.storage.sql.common import chunks
from persona.storage.tables.privacy import held_events


class SqlHeldEvents:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def hold(self, records: Sequence[HeldEventRecord]) -> None:
        if records:
            self._c.execute(insert(held_events), [asdict(r) for r in records])

    def held(self, event_ids: Collection[str]) -> set[str]:
        t = held_events
        found: set[str] = set()
        for chunk in chunks(event_ids):
            found.update(
                self._c.execute(select(t.c.event_id).where(t.c.event_id.in_(chunk))).scalars()
            )
        return found
