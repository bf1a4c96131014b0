"""Build the FastAPI application around an engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import persona
from persona.api import operations
from persona.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from persona.api.problems import install_problem_handlers
from persona.catalog import routes as catalog_routes
from persona.engine import Engine
from persona.ingest import routes as ingest_routes
from persona.jobs import PeriodicJob, start_all, stop_all
from persona.profiles import routes as profile_routes
from persona.recommend import routes as recommend_routes
from persona.recommend.scheduler import retrain_job
from persona.segments import routes as segment_routes
from persona.segments.scheduler import segment_refresh_job


def background_jobs_of(engine: Engine) -> list[PeriodicJob]:
    """The scheduled work of `persona serve`; each job's interval 0 switches it off."""
    return [
        retrain_job(engine),
        segment_refresh_job(engine.segments, engine.settings.segment_refresh_seconds),
    ]


def create_app(engine: Engine, *, background_jobs: bool = False) -> FastAPI:
    """The API around ``engine``; ``background_jobs`` starts scheduled work (retraining)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        jobs = start_all(background_jobs_of(engine)) if background_jobs else []
        try:
            yield
        finally:
            stop_all(jobs)

    app = FastAPI(
        lifespan=lifespan,
        title="persona",
        version=persona.__version__,
        description="Self-hosted engine for data-driven content personalization.",
    )
    app.state.engine = engine
    install_problem_handlers(app)
    modules = (
        ingest_routes,
        catalog_routes,
        profile_routes,
        recommend_routes,
        segment_routes,
        operations,
    )
    for module in modules:
        app.include_router(module.router)
    # Added last runs first: the request id exists before the body limit may refuse a request.
    app.add_middleware(BodyLimitMiddleware, max_bytes=engine.settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=engine.metrics)
    return app
