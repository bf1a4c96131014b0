"""Catalog upserts and reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from persona.catalog.schema import Item, ItemFields, ItemIn
from persona.clock import Clock, epoch_ms, utc
from persona.errors import NotFoundError
from persona.storage.protocols import Storage
from persona.storage.records import ItemRecord


class CatalogService:
    def __init__(self, storage: Storage, clock: Clock) -> None:
        self._storage = storage
        self._clock = clock
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each committed catalog change (caches drop what they hold)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def upsert(self, items: Sequence[ItemIn]) -> int:
        now = self._clock.now_ms()
        records = [self._record(item.item_id, item, now) for item in items]
        with self._storage.write() as uow:
            uow.catalog.upsert(records)
        self._changed()
        return len(records)

    def put(self, item_id: str, fields: ItemFields) -> Item:
        now = self._clock.now_ms()
        record = self._record(item_id, fields, now)
        with self._storage.write() as uow:
            uow.catalog.upsert([record])
        self._changed()
        return self.view(record)

    def get(self, item_id: str) -> Item:
        with self._storage.read() as uow:
            record = uow.catalog.get(item_id)
        if record is None:
            raise NotFoundError(f"no item {item_id!r}")
        return self.view(record)

    def list(self, *, after: str | None, limit: int) -> list[Item]:
        with self._storage.read() as uow:
            return [self.view(r) for r in uow.catalog.list(after_id=after, limit=limit)]

    @staticmethod
    def _record(item_id: str, fields: ItemFields, now_ms: int) -> ItemRecord:
        return ItemRecord(
            item_id=item_id,
            title=fields.title,
            categories=list(dict.fromkeys(fields.categories)),
            tags=list(dict.fromkeys(fields.tags)),
            price=fields.price,
            available=fields.available,
            created_at_ms=epoch_ms(fields.created_at) if fields.created_at else now_ms,
            attributes=fields.attributes,
            updated_at_ms=now_ms,
        )

    @staticmethod
    def view(record: ItemRecord) -> Item:
        return Item(
            item_id=record.item_id,
            title=record.title,
            categories=record.categories,
            tags=record.tags,
            price=record.price,
            available=record.available,
            created_at=utc(record.created_at_ms),
            attributes=record.attributes,
            updated_at=utc(record.updated_at_ms),
        )
