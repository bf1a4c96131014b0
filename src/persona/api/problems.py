"""One error shape for every failure: application/problem+json with a machine code.

The domains raise ``PersonaError`` subclasses that carry status and code; the handlers here
render them, and everything unexpected becomes a 500 that shows only a request id.
``PROBLEM_SCHEMA`` describes that shape in the OpenAPI document (``declare_problems``), and a
test validates what the handlers send against it.
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

from persona.errors import MalformedJsonError, PersonaError

log = logging.getLogger("persona.api")

MEDIA_TYPE = "application/problem+json"

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

PROBLEM_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ProblemError",
    "type": "object",
    "description": "One invalid input.",
    "properties": {
        "path": {
            "type": "string",
            "description": "Where, dot-separated: `body.items.0.title`, `query.n`,"
            " `path.item_id`; empty for the whole body.",
        },
        "message": {"type": "string", "description": "What is wrong, in English."},
        "type": {
            "type": "string",
            "description": "The kind of error: `missing`, `string_too_long`,"
            " `string_pattern_mismatch`, `invalid_document`, …",
        },
    },
    "required": ["path", "message", "type"],
    "additionalProperties": False,
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "Every error answer (RFC 9457 problem details, `application/problem+json`)."
    " Besides the fields below, a problem may carry facts of its code (`k` of `k_anonymity`,"
    " the `arms` of an unknown arm, …).",
    "properties": {
        "type": {
            "type": "string",
            "pattern": "^urn:persona:problem:",
            "description": "`urn:persona:problem:` and the code.",
        },
        "title": {"type": "string", "description": "The code in words."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string", "description": "What went wrong, for programs."},
        "detail": {
            "type": "string",
            "description": "This occurrence, for people (never the input echoed back).",
        },
        "request_id": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "The request's id (also the `x-request-id` header); quote it when"
            " reporting a problem.",
        },
        "errors": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/ProblemError"},
            "description": "`invalid_request` (the request failed validation) and"
            " `invalid_placement`: every invalid input.",
        },
        "retry_after": {
            "type": "integer",
            "minimum": 0,
            "description": "`rate_limited`: seconds until the key is admitted again (also the"
            " `Retry-After` header).",
        },
        "line": {"type": "integer", "description": "`invalid_rule`: where in the rule."},
        "column": {"type": "integer", "description": "`invalid_rule`: where in the rule."},
        "excerpt": {
            "type": "string",
            "description": "`invalid_rule`: the rule's line with a caret under the column.",
        },
    },
    "required": ["type", "title", "status", "code", "detail", "request_id"],
    "additionalProperties": True,
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
        media_type=MEDIA_TYPE,
        headers=all_headers,
    )


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_problem(exc: PersonaError, request_id: str | None, *, close: bool = False) -> Response:
    """The problem answer of a domain error (``close``: and the connection ends with it)."""
    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else {}
    headers.update(getattr(exc, "headers", None) or {})  # e.g. Retry-After of a 429
    if close:
        headers["connection"] = "close"
    return problem(exc.status, exc.code, exc.title, exc.detail, request_id, exc.extra, headers)


async def _persona_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PersonaError)
    return error_problem(exc, request_id_of(request))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    for error in exc.errors():
        if error.get("type") == "json_invalid":  # the framework read a body that is not JSON
            reason = error.get("ctx", {}).get("error", "")
            position = error.get("loc", ("body", 0))[-1]
            return await _persona_error(
                request,
                MalformedJsonError(
                    f"the body is not valid JSON ({reason} at character {position})"
                ),
            )
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
