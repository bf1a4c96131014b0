"""Items, with their categories cached between transactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Row

from persona.storage import tables
from persona.storage.item_cache import CategoryCache
from persona.storage.records import (
    ItemRecord,
)
from persona.storage.sql.common import (
    chunks,
    driver_connection,
    is_sqlite,
    json_text,
    upsert_insert,
)

_SQLITE_CATEGORIES = (
    "SELECT item_id, categories FROM items WHERE item_id IN (SELECT value FROM json_each(?))"
)


class SqlCatalog:
    def __init__(self, connection: Connection, cache: CategoryCache | None = None) -> None:
        self._c = connection
        self._cache = cache
        self._wrote = False  # this transaction changed items: its reads skip the cache

    def upsert(self, items: Sequence[ItemRecord]) -> None:
        if not items:
            return
        t = tables.items
        statement = upsert_insert(self._c, t)
        columns = [c.name for c in t.columns if c.name != "item_id"]
        statement = statement.on_conflict_do_update(
            index_elements=[t.c.item_id],
            set_={name: statement.excluded[name] for name in columns},
        )
        rows = [{name: getattr(item, name) for name in ItemRecord.__slots__} for item in items]
        self._c.execute(statement, rows)
        version = tables.catalog_version
        self._c.execute(update(version).values(version=version.c.version + 1))
        self._wrote = True

    def get(self, item_id: str) -> ItemRecord | None:
        row = self._c.execute(select(tables.items).where(tables.items.c.item_id == item_id)).first()
        return _item(row) if row else None

    def unavailable_ids(self) -> list[str]:
        t = tables.items
        return list(self._c.execute(select(t.c.item_id).where(t.c.available.is_(False))).scalars())

    def all_categories(self) -> dict[str, list[str]]:
        items = tables.items
        rows = self._c.execute(select(items.c.item_id, items.c.categories))
        return {item_id: list(categories) for item_id, categories in rows}

    def categories_for(self, item_ids: Sequence[str]) -> dict[str, list[str]]:
        cache = self._cache
        if cache is None or self._wrote or not item_ids:
            return self._read_categories(item_ids)
        version = self._c.execute(select(tables.catalog_version.c.version)).scalar()
        if version is None:  # a schema made without the migrations: no version to check
            return self._read_categories(item_ids)
        found, missing = cache.lookup(version, item_ids)
        if missing:
            read = self._read_categories(missing)
            cache.fill(version, missing, read)
            found.update(read)
        return found

    def _read_categories(self, item_ids: Sequence[str]) -> dict[str, list[str]]:
        if is_sqlite(self._c):
            ids = json_text(list(item_ids))
            rows = driver_connection(self._c).execute(_SQLITE_CATEGORIES, (ids,))
            return {item_id: orjson.loads(document) for item_id, document in rows}
        t = tables.items
        found: dict[str, list[str]] = {}
        for chunk in chunks(list(item_ids)):
            rows = self._c.execute(
                select(t.c.item_id, t.c.categories).where(t.c.item_id.in_(chunk))
            )
            found.update((row.item_id, row.categories) for row in rows)
        return found

    def written_since(self, since_ms: int, limit: int) -> list[ItemRecord]:
        t = tables.items
        query = (
            select(t)
            .where(t.c.updated_at_ms > since_ms)
            .order_by(t.c.updated_at_ms.desc(), t.c.item_id)
            .limit(limit)
        )
        return [_item(row) for row in self._c.execute(query)]

    def list(self, *, after_id: str | None, limit: int) -> list[ItemRecord]:
        t = tables.items
        query = select(t).order_by(t.c.item_id).limit(limit)
        if after_id is not None:
            query = query.where(t.c.item_id > after_id)
        return [_item(row) for row in self._c.execute(query)]

    def count(self) -> int:
        return int(self._c.execute(select(func.count()).select_from(tables.items)).scalar_one())


def _item(row: Row[Any]) -> ItemRecord:
    m = row._mapping
    return ItemRecord(**{name: m[name] for name in ItemRecord.__slots__})
