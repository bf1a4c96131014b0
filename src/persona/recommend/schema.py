"""The recommendation API's answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from persona.documents import NO_NUL, Id


class NamedItemOut(BaseModel):
    item_id: str
    title: str | None


class ExplanationOut(BaseModel):
    """Why an item is in the list, for a page to render."""

    kind: Literal[
        "history",
        "new",
        "trending_in_category",
        "trending",
        "popular",
        "segment",
        "context",
        "rule",
        "taste",
    ] = Field(
        description="`history`: the items of the person's history most alike to it (for similar"
        ' items, the item asked about): "because you watched ..."; `new`: a new item shown to'
        ' explore ("new in ..."); `trending_in_category`, `trending`, `popular`: what many'
        " people take lately; `segment`, `context`: what people of the person's segments, or on"
        " the same device and in the same country, take lately; `rule`: placed by a business"
        " rule; `taste`: the person's history as a whole, no one item standing out."
    )
    items: list[NamedItemOut] | None = Field(default=None, description="For `history`.")
    category: str | None = Field(
        default=None, description="For `new` and `trending_in_category`: the item's category."
    )


class RecommendedItemOut(BaseModel):
    item_id: str
    score: float = Field(
        ge=0.0,
        le=1.0,
        description="In [0, 1], never higher than the score of an item above it. For the "
        "pipeline's lists (`source: pipeline`): the probability that the person takes the "
        "item next, as the ranker estimates it (calibrated on people it did not learn from). "
        "Otherwise the answering source's score relative to the list's first item, or the "
        "place in the list (1, (n-1)/n, ...) where the source has no score.",
    )
    sources: list[str] = Field(description="The candidate sources that proposed the item.")
    explanation: ExplanationOut | None = None


class RecommendationParams(BaseModel):
    """The query parameters of a recommendation request (one model: one validation)."""

    n: int = Field(default=10, ge=1, le=100, description="How many items.")
    placement: str | None = Field(default=None, max_length=128, pattern=NO_NUL)
    device: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    country: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    hour: int | None = Field(default=None, ge=0, le=23, description="Hour of day (0-23).")
    category: str | None = Field(
        default=None, max_length=128, pattern=NO_NUL, description="Only this category."
    )
    exclude: list[Id] | None = Field(
        default=None, max_length=200, description="Item ids to leave out (at most 200)."
    )


class RecommendationsOut(BaseModel):
    user_id: str
    items: list[RecommendedItemOut]
    source: str = Field(
        description="`pipeline`; `context_trending` for someone without history whose device or"
        " country is known; or the fallback that answered (`trending`, `popular`)."
    )
    reason: str | None = Field(default=None, description="Why a fallback answered.")
    model_version: str | None
    request_id: str | None
    cached: bool = Field(
        default=False,
        description="Reused from an identical earlier request; the person did nothing since.",
    )


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


class SimilarParams(BaseModel):
    """The query parameters of a similar-items request."""

    n: int = Field(default=10, ge=1, le=100, description="How many items.")
    category: str | None = Field(
        default=None, max_length=128, pattern=NO_NUL, description="Only this category."
    )
    exclude: list[Id] | None = Field(
        default=None, max_length=200, description="Item ids to leave out (at most 200)."
    )
    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=NO_NUL,
        description="Leave out what this person already has.",
    )


class SimilarItemsOut(BaseModel):
    item_id: str
    items: list[RecommendedItemOut]
    source: str = Field(
        description="`similar`; `trending` for an item newer than the model set; `none` "
        "before any training."
    )
    reason: str | None = Field(default=None, description="Why the list is not `similar`.")
    model_version: str | None
    request_id: str | None


class PromotedOut(BaseModel):
    serving: str = Field(description="The model set now in service.")
    previous: str | None = Field(description="The one it replaced (what a rollback serves).")
