"""Request dependencies: the engine, and authorization by scope."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection
from starlette.types import Scope as ASGIScope

from persona.access.keys import DEV_PRINCIPAL, AnyScope, Principal, Scope
from persona.api.contract import declare_problems
from persona.api.query import body_schemas
from persona.engine import Engine
from persona.errors import UnauthorizedError

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer psk_…`",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key in a header.",
    },
}
SCOPE_ATTRIBUTE = "persona_scope"
PRINCIPAL = "principal"  # request state: the caller, once authenticated


def presented_key(request: HTTPConnection) -> str | None:
    """The key a request carries, as a bearer token or in ``X-API-Key``."""
    authorization = request.headers.get("authorization")
    if authorization:
        kind, _, credentials = authorization.partition(" ")
        if kind.lower() == "bearer" and credentials:
            return credentials.strip()
    return request.headers.get("x-api-key")


# The one route where a key may travel in the URL (``?key=``): a page's last events may leave
# through ``navigator.sendBeacon``, which cannot set a header (docs/browser.md). Only a public
# key is taken there: it is in the page anyway, and URLs end up in proxies' logs.
KEY_IN_URL_ROUTES = frozenset({("POST", "/v1/events")})
KEY_PARAMETER = "key"


def key_in_url(connection: HTTPConnection) -> str | None:
    """The key a request carries as ``?key=``, on the routes that take one there."""
    if (connection.scope.get("method"), connection.scope.get("path")) not in KEY_IN_URL_ROUTES:
        return None
    return connection.query_params.get(KEY_PARAMETER)


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_engine(request: Request) -> Engine:
    """The engine, as a dependency (async: FastAPI runs a plain function in a worker thread)."""
    return engine_of(request)


def authorize_request(request: Request, scope: Scope | AnyScope) -> Principal:
    """The caller of ``request`` if its key has ``scope`` (or ``admin``); 401, 403 or 429."""
    engine = engine_of(request)
    if engine.settings.dev_mode:
        return DEV_PRINCIPAL
    # a request with a body was authenticated before its body was read (``key_check``)
    principal = getattr(request.state, PRINCIPAL, None) or authenticate(engine, request)
    engine.rate_limits.check(principal.key_id)  # 429 with Retry-After when over the limit
    principal.require(scope)
    request.state.key_id = principal.key_id
    return principal


def authenticate(engine: Engine, connection: HTTPConnection) -> Principal:
    """The principal of the key a request presents. Requests without a valid key are limited
    per client address: past its budget an address is answered 429 before any key lookup."""
    address = f"ip:{connection.client.host}" if connection.client else "ip:unknown"
    failures = engine.failed_auth
    failures.refuse_if_empty(address, "too many requests without a valid key from this address")
    try:
        presented = presented_key(connection)
        in_url = key_in_url(connection) if presented is None else None
        principal = engine.keys.authenticate(presented or in_url)
        if in_url is not None and not principal.public:
            raise UnauthorizedError("only a public key may be given in the URL")
        return principal
    except UnauthorizedError:
        failures.spend(address)
        raise


def key_check(engine: Engine) -> Callable[[ASGIScope], object]:
    """For the request-limits middleware: raise unless the request carries a valid key (any
    scope: the route checks its own), before its body is read, and keep the caller for the
    route. Nothing in development mode."""

    def check(scope: ASGIScope) -> object:
        if engine.settings.dev_mode:
            return None
        principal = authenticate(engine, HTTPConnection(scope))
        scope.setdefault("state", {})[PRINCIPAL] = principal
        return principal

    return check


Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Any]])


def scoped(scope: Scope | AnyScope) -> Callable[[Endpoint], Endpoint]:
    """``require`` for the hottest routes: the check runs inside the endpoint.

    The endpoint must take ``request: Request`` first. Same check, same errors, same OpenAPI
    declaration; what it saves is FastAPI resolving a dependency on every request (about a
    fifth of a cached recommendation's cost).
    """

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request, *args: Any, **kwargs: Any) -> Any:
            authorize_request(request, scope)
            return await endpoint(request, *args, **kwargs)

        setattr(checked, SCOPE_ATTRIBUTE, scope)
        return cast(Endpoint, checked)

    return decorate


def require(scope: Scope | AnyScope) -> Any:
    """A dependency that admits a caller whose key has ``scope`` (or ``admin``); with an
    ``AnyScope``, a key with any of its scopes.

    One dependency reading the headers itself, rather than FastAPI's security classes as
    sub-dependencies: every resolved dependency costs tens of microseconds on each request.
    The OpenAPI document still declares the schemes and each operation's scope
    (``install_security_docs``), found through the attribute set on this function.
    """

    async def authorize(request: Request) -> Principal:
        return authorize_request(request, scope)

    setattr(authorize, SCOPE_ATTRIBUTE, scope)
    dependency: Callable[..., Awaitable[Principal]] = authorize
    return Depends(dependency)


def actor(request: Request) -> str:
    """Who is acting, for the audit log: the key id (``dev`` in development mode)."""
    return str(getattr(request.state, "key_id", DEV_PRINCIPAL.key_id))


def install_security_docs(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Declare the key schemes in the OpenAPI document, on the operations of ``routers`` the
    scope each needs, and on every operation the problems it can answer (``contract``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = document.setdefault("components", {})
        components["securitySchemes"] = SECURITY_SCHEMES
        for name, schema in body_schemas().items():
            components.setdefault("schemas", {}).setdefault(name, schema)
        for route in (route for router in routers for route in router.routes):
            if not isinstance(route, APIRoute):
                continue
            scopes = [  # route dependencies and parameters that take the caller
                getattr(d.call, SCOPE_ATTRIBUTE)
                for d in route.dependant.dependencies
                if hasattr(d.call, SCOPE_ATTRIBUTE)
            ]
            if hasattr(route.endpoint, SCOPE_ATTRIBUTE):
                scopes.append(getattr(route.endpoint, SCOPE_ATTRIBUTE))
            if not scopes:
                continue
            for method in route.methods or ():
                operation = document["paths"][route.path_format].get(method.lower())
                if operation is None:
                    continue
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
                needed = ", ".join(f"`{scope.value}`" for scope in scopes)
                note = f"Needs an API key with scope {needed} (or `admin`)."
                operation["description"] = (
                    f"{operation['description']}\n\n{note}"
                    if operation.get("description")
                    else note
                )
        declare_problems(document)  # after the scopes: a scoped operation answers 401/403/429
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


EngineDep = Depends(get_engine)
# As a route's parameter, the caller (``Principal``) for routes whose answer depends on its
# scopes; the OpenAPI note of the scope is found through them as through ``dependencies``.
IngestKey = require(Scope.INGEST)
ReadKey = require(Scope.READ)
AdminKey = require(Scope.ADMIN)
