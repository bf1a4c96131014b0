"""HTTP routes of placements (admin to change, read to list) and decisions (decide)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Body, Path, Request, Response

from persona.access.keys import AnyScope, Scope
from persona.api.deps import EngineDep, actor, engine_of, require, scoped
from persona.api.query import json_body, parse_body
from persona.clock import utc
from persona.decide.schema import (
    EXPERIMENT_POLICIES,
    NAME_PATTERN,
    DecisionRequest,
    DecisionsOut,
    Placement,
    PlacementBody,
    PlacementIn,
    PlacementList,
    PlacementVersion,
    PlacementVersions,
    experiment_id,
    parse_placement,
)
from persona.engine import Engine
from persona.errors import InvalidPlacementError
from persona.storage.records import PlacementRecord

router = APIRouter(prefix="/v1", tags=["decisions"])

PlacementName = Path(pattern=NAME_PATTERN)
ConfigBody = Body(
    description="A placement configuration (docs/experiments.md, Placements). Invalid"
    " configurations get 422 `invalid_placement` with every error listed.",
    examples=[
        {
            "name": "home_hero",
            "policy": "ab",
            "variants": [
                {"id": "control", "payload": {"title": "Welcome"}},
                {"id": "bold", "payload": {"title": "Deals for you"}},
            ],
        }
    ],
)


# The bodies are validated by the service (so that errors carry `invalid_placement`); the
# OpenAPI document still shows their shape, the schema of a placement's `config`.
_BODY_SCHEMA = {"$ref": "#/components/schemas/PlacementBody"}
CREATE_DOCS = json_body(PlacementIn)  # the configuration and its name
UPDATE_DOCS = {
    "requestBody": {"content": {"application/json": {"schema": {"allOf": [_BODY_SCHEMA]}}}}
}


def public(record: PlacementRecord, config: PlacementBody) -> Placement:
    return Placement(
        name=record.name,
        version=record.version,
        status="paused" if record.status == "paused" else "active",
        experiment_id=(
            experiment_id(record.name, record.version)
            if record.policy in EXPERIMENT_POLICIES
            else None
        ),
        config=config,
        created_at=utc(record.created_at_ms),
        updated_at=utc(record.updated_at_ms),
    )


def _view(engine: Engine, record: PlacementRecord) -> Placement:
    return public(
        record, engine.decisions.configs.config_of(record.name, record.version, record.config)
    )


@router.post(
    "/placements",
    operation_id="create_placement",
    response_model=Placement,
    status_code=201,
    openapi_extra=CREATE_DOCS,
    dependencies=[require(Scope.ADMIN)],
)
def create_placement(
    request: Request, body: dict[str, Any] = ConfigBody, engine: Engine = EngineDep
) -> Placement:
    """Create a placement at version 1 (409 when the name is taken)."""
    config = parse_placement(body, named=True)
    assert isinstance(config, PlacementIn)
    record = engine.decisions.create(config.name, config.body(), actor=actor(request))
    return _view(engine, record)


@router.get(
    "/placements",
    operation_id="list_placements",
    response_model=PlacementList,
    dependencies=[require(Scope.READ)],
)
def list_placements(engine: Engine = EngineDep) -> PlacementList:
    return PlacementList(placements=[_view(engine, r) for r in engine.decisions.all()])


@router.get(
    "/placements/{name}",
    operation_id="get_placement",
    response_model=Placement,
    dependencies=[require(Scope.READ)],
)
def get_placement(name: str = PlacementName, engine: Engine = EngineDep) -> Placement:
    return _view(engine, engine.decisions.get(name))


@router.put(
    "/placements/{name}",
    operation_id="update_placement",
    response_model=Placement,
    openapi_extra=UPDATE_DOCS,
    dependencies=[require(Scope.ADMIN)],
)
def update_placement(
    request: Request,
    name: str = PlacementName,
    body: dict[str, Any] = ConfigBody,
    engine: Engine = EngineDep,
) -> Placement:
    """Replace the configuration: a new version, which decides from now on."""
    if body.get("name", name) != name:
        raise InvalidPlacementError(
            "the body's name differs from the placement's; rename by creating"
        )
    body = {k: v for k, v in body.items() if k != "name"}
    config = parse_placement(body, named=False)
    return _view(engine, engine.decisions.update(name, config, actor=actor(request)))


@router.post(
    "/placements/{name}/pause",
    operation_id="pause_placement",
    response_model=Placement,
    dependencies=[require(Scope.ADMIN)],
)
def pause_placement(
    request: Request, name: str = PlacementName, engine: Engine = EngineDep
) -> Placement:
    """Serve the fallback to everyone (not logged as part of any experiment) until resumed."""
    return _view(engine, engine.decisions.set_status(name, "paused", actor=actor(request)))


@router.post(
    "/placements/{name}/resume",
    operation_id="resume_placement",
    response_model=Placement,
    dependencies=[require(Scope.ADMIN)],
)
def resume_placement(
    request: Request, name: str = PlacementName, engine: Engine = EngineDep
) -> Placement:
    return _view(engine, engine.decisions.set_status(name, "active", actor=actor(request)))


@router.get(
    "/placements/{name}/versions",
    operation_id="list_placement_versions",
    response_model=PlacementVersions,
    dependencies=[require(Scope.READ)],
)
def list_versions(name: str = PlacementName, engine: Engine = EngineDep) -> PlacementVersions:
    """Every configuration the placement has had, oldest first."""
    record, versions = engine.decisions.versions(name)
    return PlacementVersions(
        name=name,
        current_version=record.version,
        versions=[
            PlacementVersion(
                version=v.version,
                policy=v.policy,
                config=engine.decisions.configs.config_of(name, v.version, v.config),
                created_at=utc(v.created_at_ms),
            )
            for v in versions
        ],
    )


@router.post(
    "/decisions",
    operation_id="decide",
    response_model=DecisionsOut,
    openapi_extra=json_body(DecisionRequest),
)
@scoped(AnyScope((Scope.DECIDE, Scope.PUBLIC)))  # a web page's key too
async def decide(request: Request) -> Response:
    """Choose a variant for each placement; every decision is logged before the answer.

    Send the `decision_id` back on `impression`, `click` and `purchase` events to attribute
    them to the variant.
    """
    # Async: the choices run on the event loop, an uncached pipeline in a worker thread, the
    # log commit on the log's writer thread. Written straight to JSON in the shape of
    # ``DecisionsOut`` (a test validates it): the framework's second validation of the
    # payloads would cost more than choosing them.
    body = await parse_body(DecisionRequest, request)
    decisions = await engine_of(request).decisions.decide_async(body)
    answer = {
        "decisions": [
            {
                "placement": d.placement,
                "decision_id": d.decision_id,
                "variant": d.variant,
                "payload": d.payload,
                "policy": d.policy,
                "version": d.version,
                "reason": d.reason,
                "holdout": d.holdout,
            }
            for d in decisions
        ]
    }
    return Response(orjson.dumps(answer), media_type="application/json")
