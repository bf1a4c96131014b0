"""API keys, stored as hashes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from persona.storage import tables
from persona.storage.records import (
    ApiKeyRecord,
)


class SqlKeyStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, record: ApiKeyRecord) -> None:
        self._c.execute(
            tables.api_keys.insert().values(
                key_id=record.key_id,
                name=record.name,
                secret_hash=record.secret_hash,
                scopes=list(record.scopes),
                created_at_ms=record.created_at_ms,
                revoked_at_ms=record.revoked_at_ms,
            )
        )

    def get(self, key_id: str) -> ApiKeyRecord | None:
        t = tables.api_keys
        row = self._c.execute(select(t).where(t.c.key_id == key_id)).first()
        return _key(row) if row else None

    def list(self) -> list[ApiKeyRecord]:
        t = tables.api_keys
        return [_key(row) for row in self._c.execute(select(t).order_by(t.c.created_at_ms))]

    def revoke(self, key_id: str, at_ms: int) -> bool:
        t = tables.api_keys
        result = self._c.execute(
            update(t)
            .where(t.c.key_id == key_id, t.c.revoked_at_ms.is_(None))
            .values(revoked_at_ms=at_ms)
        )
        return bool(result.rowcount == 1)


def _key(row: Row[Any]) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(**{name: m[name] for name in ApiKeyRecord.__slots__})
