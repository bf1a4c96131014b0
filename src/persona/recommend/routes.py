"""HTTP routes of recommendations and the model registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from persona.access.keys import Scope
from persona.api.deps import EngineDep, require
from persona.api.problems import request_id_of
from persona.engine import Engine
from persona.recommend.schema import (
    ModelsOut,
    ModelVersionOut,
    RecommendationsOut,
    RecommendedItemOut,
)
from persona.recommend.service import RecommendationQuery

router = APIRouter(prefix="/v1", tags=["recommendations"])

PersonId = Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")


@router.get(
    "/users/{user_id}/recommendations",
    operation_id="get_recommendations",
    response_model=RecommendationsOut,
    dependencies=[require(Scope.DECIDE)],
)
def get_recommendations(
    request: Request,
    user_id: str = PersonId,
    n: Annotated[int, Query(ge=1, le=100, description="How many items.")] = 10,
    placement: Annotated[str | None, Query(max_length=128)] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    country: Annotated[str | None, Query(max_length=64)] = None,
    hour: Annotated[int | None, Query(ge=0, le=23, description="Hour of day (0-23).")] = None,
    category: Annotated[
        str | None, Query(max_length=128, description="Only this category.")
    ] = None,
    exclude: Annotated[
        list[str] | None, Query(max_length=500, description="Item ids to leave out.")
    ] = None,
    engine: Engine = EngineDep,
) -> RecommendationsOut:
    """Ranked items for a person (known, anonymous, or never seen before)."""
    result = engine.recommendations.recommend(
        RecommendationQuery(
            person_id=user_id,
            n=n,
            placement=placement,
            device=device,
            country=country,
            hour=hour,
            category=category,
            exclude=tuple(exclude or ()),
        )
    )
    return RecommendationsOut(
        user_id=user_id,
        items=[
            RecommendedItemOut(item_id=i.item_id, score=i.score, sources=i.sources)
            for i in result.items
        ],
        source=result.source,
        reason=result.reason,
        model_version=result.model_version,
        request_id=request_id_of(request),
    )


@router.get(
    "/models",
    operation_id="list_models",
    response_model=ModelsOut,
    dependencies=[require(Scope.READ)],
)
def list_models(engine: Engine = EngineDep) -> ModelsOut:
    """Every trained model set with its offline metrics; which one serves."""
    registry = engine.recommendations.registry
    champion = registry.champion()
    versions = [
        ModelVersionOut(
            version=v.version,
            champion=champion is not None and champion.version == v.version,
            created_at=v.manifest.get("created_at"),
            metrics={k: float(x) for k, x in v.metrics.items()},
            sources=list(v.manifest.get("sources", [])),
            people=v.manifest.get("people"),
            items=v.manifest.get("items"),
            interactions=v.manifest.get("interactions"),
            ranker=v.manifest.get("ranker"),
        )
        for v in reversed(registry.versions())
    ]
    return ModelsOut(serving=champion.version if champion else None, versions=versions)
