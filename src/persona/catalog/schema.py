"""Items as clients write and read them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from persona.documents import Identifier, check_json_document

Label = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class ItemFields(BaseModel):
    """The writable fields of an item (``PUT /v1/items/{item_id}``)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")] | None = None
    categories: list[Label] = Field(default_factory=list, max_length=100)
    tags: list[Label] = Field(default_factory=list, max_length=200)
    price: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)
    available: bool = True
    created_at: datetime | None = Field(
        default=None, description="When the item was published; defaults to now."
    )
    attributes: dict[str, Any] = Field(default_factory=dict)

    @field_validator("attributes")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json_document(value)


class ItemIn(ItemFields):
    """An item in a batch upsert (``POST /v1/items``)."""

    item_id: Identifier


class Item(BaseModel):
    item_id: str
    title: str | None
    categories: list[str]
    tags: list[str]
    price: float | None
    available: bool
    created_at: datetime
    attributes: dict[str, Any]
    updated_at: datetime


class ItemBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[ItemIn] = Field(min_length=1, max_length=1000)


class UpsertResult(BaseModel):
    upserted: int


class ItemPage(BaseModel):
    items: list[Item]
    next_after: str | None
