"""HTTP routes of recommendations and the model registry."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request, Response
from pydantic import StringConstraints, TypeAdapter
from starlette.concurrency import run_in_threadpool

from persona.access.keys import AnyScope, Scope
from persona.api.deps import EngineDep, actor, engine_of, require, scoped
from persona.api.problems import request_id_of
from persona.api.query import parse_query, query_parameters
from persona.engine import Engine
from persona.errors import NotFoundError
from persona.recommend.answer import RecommendationQuery
from persona.recommend.schema import (
    ModelsOut,
    ModelVersionOut,
    PromotedOut,
    RecommendationParams,
    RecommendationsOut,
    RecommendedItemOut,
    SimilarItemsOut,
    SimilarParams,
)

router = APIRouter(prefix="/v1", tags=["recommendations"])

PERSON_ID: dict[str, Any] = {"min_length": 1, "max_length": 128, "pattern": r"^[^\x00-\x1f\x7f]+$"}
PersonId = Path(**PERSON_ID)
ItemId = Path(**PERSON_ID)  # the same rule as the catalog's
# The same rule for ``answer_directly``, which validates the path without FastAPI.
PERSON_ID_TEXT: TypeAdapter[str] = TypeAdapter(Annotated[str, StringConstraints(**PERSON_ID)])


@router.get(
    "/users/{user_id}/recommendations",
    operation_id="get_recommendations",
    response_model=RecommendationsOut,
    openapi_extra=query_parameters(RecommendationParams),
)
@scoped(AnyScope((Scope.READ, Scope.DECIDE)))  # a read, and what placements decide with
async def get_recommendations(request: Request, user_id: str = PersonId) -> Response:
    """Ranked items for a person (known, anonymous, or never seen before)."""
    engine = engine_of(request)
    params = parse_query(RecommendationParams, request)
    query = RecommendationQuery(
        person_id=user_id,
        n=params.n,
        placement=params.placement,
        device=params.device,
        country=params.country,
        hour=params.hour,
        category=params.category,
        exclude=tuple(params.exclude or ()),
        rules=engine.decisions.recommendation_rules(params.placement) if params.placement else (),
    )
    # A cached answer is served from the event loop; ranking goes to a worker thread.
    service = engine.recommendations
    result = service.lookup(query)
    if result is None:
        result = await run_in_threadpool(partial(service.recommend, query, looked_up=True))
    engine.metrics.recommendation_answered(result.source, result.cached)
    # The answer is written straight to JSON, in the shape of ``RecommendationsOut`` (a test
    # checks it against the model): validating it again would cost more than the cache hit.
    answer = {
        "user_id": user_id,
        "items": [
            {
                "item_id": i.item_id,
                "score": i.score,
                "sources": i.sources,
                "explanation": i.explanation,
            }
            for i in result.items
        ],
        "source": result.source,
        "reason": result.reason,
        "model_version": result.model_version,
        "request_id": request_id_of(request),
        "cached": result.cached,
    }
    return Response(orjson.dumps(answer), media_type="application/json")


@router.get(
    "/items/{item_id}/similar",
    operation_id="get_similar_items",
    response_model=SimilarItemsOut,
    openapi_extra=query_parameters(SimilarParams),
    dependencies=[require(AnyScope((Scope.READ, Scope.DECIDE)))],
)
def get_similar_items(request: Request, item_id: str = ItemId) -> SimilarItemsOut:
    """Items like this one ("more like this", for item pages), from co-occurrence, factors
    and content, fused; filtered as recommendations are."""
    engine = engine_of(request)
    params = parse_query(SimilarParams, request)
    if engine.catalog.get(item_id) is None:
        raise NotFoundError(f"no item {item_id!r} in the catalog")
    result = engine.recommendations.similar(
        item_id,
        params.n,
        exclude=params.exclude or (),
        category=params.category,
        person_id=params.user_id,
    )
    return SimilarItemsOut(
        item_id=item_id,
        items=[
            RecommendedItemOut.model_validate(
                {
                    "item_id": i.item_id,
                    "score": i.score,
                    "sources": i.sources,
                    "explanation": i.explanation,
                }
            )
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


VersionName = Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")


@router.post(
    "/models/{version}/promote",
    operation_id="promote_model",
    response_model=PromotedOut,
    dependencies=[require(Scope.ADMIN)],
)
def promote_model(request: Request, version: str = VersionName) -> PromotedOut:
    """Serve a stored model set, whatever its metrics: this process at once, the others within
    a second. Audited; the next scheduled training compares its challenger with it."""
    engine = engine_of(request)
    chosen, before = engine.recommendations.promote(version)
    return _promoted(request, engine, chosen.version, before.version if before else None)


@router.post(
    "/models/rollback",
    operation_id="rollback_model",
    response_model=PromotedOut,
    dependencies=[require(Scope.ADMIN)],
)
def rollback_model(request: Request) -> PromotedOut:
    """Serve again the champion before the present one (404 when none is stored)."""
    engine = engine_of(request)
    chosen, before = engine.recommendations.rollback()
    return _promoted(request, engine, chosen.version, before.version if before else None)


def _promoted(request: Request, engine: Engine, serving: str, previous: str | None) -> PromotedOut:
    details = {"previous": previous}
    engine.privacy.audit.record(actor(request), "model.promote", f"model:{serving}", details)
    return PromotedOut(serving=serving, previous=previous)
