"""Health, readiness and metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from persona.access.keys import Scope
from persona.api.deps import EngineDep, require
from persona.engine import Engine

router = APIRouter(tags=["operations"])


@router.get("/healthz", operation_id="healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Literal["up", "down"]]


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="The process can reach its store",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The store cannot be reached."}},
)
async def readyz(engine: Engine = EngineDep) -> Response:
    try:
        await run_in_threadpool(engine.storage.ping)
    except Exception:  # any failure to reach the store means not ready
        return JSONResponse(
            {"status": "unavailable", "checks": {"database": "down"}}, status_code=503
        )
    return JSONResponse({"status": "ok", "checks": {"database": "up"}})


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    dependencies=[require(Scope.READ)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(engine: Engine = EngineDep) -> Response:
    return Response(engine.metrics.render(), media_type="text/plain; version=0.0.4")
