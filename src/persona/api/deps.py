"""Request dependencies: the engine, and authorization by scope."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from persona.access.keys import DEV_PRINCIPAL, Principal, Scope
from persona.engine import Engine

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer psk_…`")
_header_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key in a header."
)


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_engine(request: Request) -> Engine:
    """The engine, as a dependency (async: FastAPI runs a plain function in a worker thread)."""
    return engine_of(request)


def require(scope: Scope) -> Any:
    """A dependency that admits a caller whose key has ``scope`` (or ``admin``)."""

    async def authorize(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
        header_key: str | None = Security(_header_key),
    ) -> Principal:
        engine = engine_of(request)
        if engine.settings.dev_mode:
            return DEV_PRINCIPAL
        presented = bearer.credentials if bearer else header_key
        principal = engine.keys.authenticate(presented)
        principal.require(scope)
        request.state.key_id = principal.key_id
        return principal

    dependency: Callable[..., Awaitable[Principal]] = authorize
    return Depends(dependency)


EngineDep = Depends(get_engine)
