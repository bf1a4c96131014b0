"""One error shape for every failure: application/problem+json with a machine code.

The domains raise ``PersonaError`` subclasses that carry status and code; the handlers here
render them, and everything unexpected becomes a 500 that shows only a request id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from persona.errors import PersonaError

log = logging.getLogger("persona.api")

STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("not_enough_permissions", "Not enough permissions"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("invalid_request", "Invalid request"),
    429: ("rate_limited", "Too many requests"),
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    request_id: str | None,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:persona:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        "request_id": request_id,
    }
    if extra:
        body.update(extra)
    all_headers = {"x-request-id": request_id} if request_id else {}
    all_headers.update(headers or {})
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=all_headers,
    )


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def _persona_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PersonaError)
    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else {}
    headers.update(getattr(exc, "headers", None) or {})  # e.g. Retry-After of a 429
    return problem(
        exc.status, exc.code, exc.title, exc.detail, request_id_of(request), exc.extra, headers
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "path": ".".join(str(p) for p in e.get("loc", ())),
            "message": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5])
    return problem(
        422,
        "invalid_request",
        "Invalid request",
        detail,
        request_id_of(request),
        {"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, title = STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem(
        exc.status_code, code, title, detail, request_id_of(request), headers=exc.headers
    )


async def _unhandled(request: Request, exc: Exception) -> Response:
    request_id = request_id_of(request)
    log.error(
        "unhandled error",
        exc_info=(type(exc), exc, exc.__traceback__),
        extra={"request_id": request_id, "path": request.url.path},
    )
    return problem(
        500,
        "internal_error",
        "Internal error",
        "the server failed; quote the request id when reporting it",
        request_id,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PersonaError, _persona_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
