"""Catalog: items, their attributes and availability.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.catalog.schema import (
    Item,
    ItemBatch,
    ItemFields,
    ItemIn,
    ItemPage,
    UpsertResult,
)
from persona.catalog.service import (
    CatalogService,
)

__all__ = [
    "CatalogService",
    "Item",
    "ItemBatch",
    "ItemFields",
    "ItemIn",
    "ItemPage",
    "UpsertResult",
]
