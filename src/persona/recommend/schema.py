"""The recommendation API's answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RecommendedItemOut(BaseModel):
    item_id: str
    score: float
    sources: list[str] = Field(description="The candidate sources that proposed the item.")


class RecommendationsOut(BaseModel):
    user_id: str
    items: list[RecommendedItemOut]
    source: str = Field(
        description="`pipeline`, or the fallback that answered (`trending`, `popular`)."
    )
    reason: str | None = Field(default=None, description="Why a fallback answered.")
    model_version: str | None
    request_id: str | None


class ModelVersionOut(BaseModel):
    version: str
    champion: bool
    created_at: str | None
    metrics: dict[str, float]
    sources: list[str]
    people: int | None = None
    items: int | None = None
    interactions: int | None = None
    ranker: dict[str, Any] | None = None


class ModelsOut(BaseModel):
    serving: str | None
    versions: list[ModelVersionOut]
