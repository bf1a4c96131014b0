"""Erasure tombstones: keyed hashes of erased ids, looked up once per ingest batch."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from persona.storage.sql.common import driver_connection, is_sqlite, json_text
from persona.storage.tables.privacy import subject_tombstones

# Once per ingest batch, as soon as a store holds a tombstone: plain SQL through the driver, the
# hashes as one parameter, as the other ingest statements. On PostgreSQL one array instead of
# IN lists of 900 through SQLAlchemy: 2,000 hashes against 10,000 tombstones in 5.4 ms instead
# of 15 (medians of 100, 2026-12-07).
_SQLITE_ERASED = (
    "SELECT id_hash FROM subject_tombstones WHERE id_hash IN (SELECT value FROM json_each(?))"
)
_POSTGRES_ERASED = "SELECT id_hash FROM subject_tombstones WHERE id_hash = ANY(%s)"


class SqlTombstones:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, id_hashes: Collection[str], at_ms: int) -> None:
        hashes = set(id_hashes)
        fresh = [
            {"id_hash": h, "erased_at_ms": at_ms} for h in sorted(hashes - self.erased(hashes))
        ]
        if fresh:
            self._c.execute(insert(subject_tombstones), fresh)

    def any(self) -> bool:
        return self._c.execute(select(subject_tombstones.c.id_hash).limit(1)).first() is not None

    def erased(self, id_hashes: Collection[str]) -> set[str]:
        if not id_hashes:
            return set()
        if is_sqlite(self._c):
            found = driver_connection(self._c).execute(
                _SQLITE_ERASED, (json_text(list(id_hashes)),)
            )
            return {h for (h,) in found}
        with driver_connection(self._c).cursor() as cursor:
            cursor.execute(_POSTGRES_ERASED, (list(id_hashes),))
            return {h for (h,) in cursor}
