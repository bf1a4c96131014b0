"""Items as clients write and read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from persona.documents import NO_NUL, Identifier, check_json_document

# The creation times a store holds and reads back as a date: the years 1 to 9999 in UTC, to
# the millisecond (an offset can carry a date in those years outside them).
EARLIEST_CREATED_AT = datetime(1, 1, 1, tzinfo=UTC)
LATEST_CREATED_AT = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)

Label = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class ItemFields(BaseModel):
    """The writable fields of an item (``PUT /v1/items/{item_id}``)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(max_length=1000, pattern=NO_NUL)] | None = None
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

    @field_validator("created_at")
    @classmethod
    def _representable(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        if not EARLIEST_CREATED_AT <= moment <= LATEST_CREATED_AT:
            raise PydanticCustomError(
                "invalid_timestamp", "created_at must be in the years 1 to 9999 (UTC)"
            )
        return value


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
