"""The hottest routes, answered without FastAPI's request handler.

FastAPI's handler (solving dependencies, validating parameters, wrapping the response) costs
more than an answer from a recommendation shortlist. These routes stay declared as usual, so the
OpenAPI document, the contract tests and the middlewares are unchanged; only the ASGI app of
each is replaced by Starlette's plain ``request_response`` over the endpoint, which validates its
path parameters with pydantic and raises the same ``RequestValidationError`` FastAPI would (the
endpoints read their query and check their key themselves: ``parse_query``, ``scoped``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response
from starlette.routing import request_response


def answer_directly(
    app: FastAPI, method: str, path: str, path_params: Mapping[str, TypeAdapter[Any]]
) -> None:
    """Serve ``method path`` without FastAPI's handler; ``path_params`` validate its path
    parameters, in FastAPI's place."""
    route = next(
        r
        for r in app.router.routes
        if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())
    )
    endpoint = route.endpoint

    async def call(request: Request) -> Response:
        values: dict[str, Any] = {}
        for name, adapter in path_params.items():
            try:
                values[name] = adapter.validate_python(request.path_params[name])
            except ValidationError as exc:
                errors = [
                    {**e, "loc": ("path", name, *e["loc"])} for e in exc.errors(include_url=False)
                ]
                raise RequestValidationError(errors) from None
        response: Response = await endpoint(request, **values)
        return response

    route.app = request_response(call)
