"""Build the FastAPI application around an engine."""

from __future__ import annotations

from fastapi import FastAPI

import persona
from persona.api import operations
from persona.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from persona.api.problems import install_problem_handlers
from persona.catalog import routes as catalog_routes
from persona.engine import Engine
from persona.ingest import routes as ingest_routes
from persona.profiles import routes as profile_routes


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(
        title="persona",
        version=persona.__version__,
        description="Self-hosted engine for data-driven content personalization.",
    )
    app.state.engine = engine
    install_problem_handlers(app)
    for module in (ingest_routes, catalog_routes, profile_routes, operations):
        app.include_router(module.router)
    # Added last runs first: the request id exists before the body limit may refuse a request.
    app.add_middleware(BodyLimitMiddleware, max_bytes=engine.settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=engine.metrics)
    return app
