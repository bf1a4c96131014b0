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
from persona.profiles import routes as profile_routes
from persona.recommend import routes as recommend_routes
from persona.recommend.scheduler import RetrainScheduler


def create_app(engine: Engine, *, background_jobs: bool = False) -> FastAPI:
    """The API around ``engine``; ``background_jobs`` starts scheduled work (retraining)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        scheduler = RetrainScheduler(engine) if background_jobs else None
        if scheduler:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler:
                scheduler.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="persona",
        version=persona.__version__,
        description="Self-hosted engine for data-driven content personalization.",
    )
    app.state.engine = engine
    install_problem_handlers(app)
    modules = (ingest_routes, catalog_routes, profile_routes, recommend_routes, operations)
    for module in modules:
        app.include_router(module.router)
    # Added last runs first: the request id exists before the body limit may refuse a request.
    app.add_middleware(BodyLimitMiddleware, max_bytes=engine.settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=engine.metrics)
    return app
