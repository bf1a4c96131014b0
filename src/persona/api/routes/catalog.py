"""HTTP routes of the catalog."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query

from persona.access.keys import Scope
from persona.api.deps import EngineDep, require
from persona.catalog.schema import Item, ItemBatch, ItemFields, ItemPage, UpsertResult
from persona.documents import NO_NUL
from persona.engine import Engine

router = APIRouter(prefix="/v1/items", tags=["catalog"])

ItemId = Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")


@router.put(
    "/{item_id}", operation_id="put_item", response_model=Item, dependencies=[require(Scope.INGEST)]
)
def put_item(fields: ItemFields, item_id: str = ItemId, engine: Engine = EngineDep) -> Item:
    """Create or replace one item."""
    return engine.catalog.put(item_id, fields)


@router.post(
    "",
    operation_id="upsert_items",
    response_model=UpsertResult,
    dependencies=[require(Scope.INGEST)],
)
def upsert_items(batch: ItemBatch, engine: Engine = EngineDep) -> UpsertResult:
    """Create or replace up to 1000 items in one transaction."""
    return UpsertResult(upserted=engine.catalog.upsert(batch.items))


@router.get(
    "/{item_id}", operation_id="get_item", response_model=Item, dependencies=[require(Scope.READ)]
)
def get_item(item_id: str = ItemId, engine: Engine = EngineDep) -> Item:
    return engine.catalog.get(item_id)


@router.get(
    "", operation_id="list_items", response_model=ItemPage, dependencies=[require(Scope.READ)]
)
def list_items(
    after: str | None = Query(
        None, max_length=128, pattern=NO_NUL, description="Return items with a greater id."
    ),
    limit: int = Query(100, ge=1, le=1000),
    engine: Engine = EngineDep,
) -> ItemPage:
    items = engine.catalog.list(after=after, limit=limit)
    return ItemPage(items=items, next_after=items[-1].item_id if len(items) == limit else None)
