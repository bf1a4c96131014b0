"""Every status an operation can answer, declared in the OpenAPI document.

Most of them follow from the operation itself, so a new route cannot forget them:

- every operation: 500 (``internal_error``), 413 and 431 (the body and header limits apply to
  every request);
- an operation that needs a key: 401, 403 and 429;
- an operation with parameters or a body: 422 (``invalid_request`` with its ``errors`` list);
- an operation with a body: 400 (``malformed_json``) and 408 (``request_timeout``);
- an operation with a path parameter: 404 (nothing of that id; also an id with a ``/``).

What a domain refuses beyond these (a name that is taken, an erased person, too little data) is
listed in ``DOMAIN_STATUSES`` by operation id. Every one of these answers is a problem
(``application/problem+json``) of the one ``Problem`` schema, which replaces the framework's
``HTTPValidationError``: the 422 body is a problem too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from persona.api.problems import (
    MEDIA_TYPE,
    PROBLEM_ERROR_SCHEMA,
    PROBLEM_SCHEMA,
    STATUS_CODES,
)
from persona.errors import MalformedJsonError, PersonaError, RequestTimeoutError

# Statuses an operation answers besides those its shape implies (see the module's docstring).
DOMAIN_STATUSES: Mapping[str, frozenset[int]] = {
    "decide": frozenset({404}),  # unknown_placement
    "create_placement": frozenset({409}),  # the name is taken
    "create_segment": frozenset({409}),  # the name is taken
    "delete_segment": frozenset({409}),  # another segment refers to it
    "create_prediction": frozenset({409}),  # the name is taken
    "train_prediction": frozenset({409}),  # not_enough_history, not_enough_people
    "replay_quarantined_event": frozenset({409}),  # already replayed
    "put_traits": frozenset({409}),  # subject_erased
    "put_consent": frozenset({409}),  # subject_erased
    "preview_segment": frozenset({503}),  # busy: previews running, or too slow
    "erase_subject": frozenset({409}),  # ambiguous_subject
    "export_subject": frozenset({409}),  # ambiguous_subject
    "rollback_model": frozenset({404}),  # no earlier champion stored
}

# What the framework's own validation answer is replaced by.
_FRAMEWORK_SCHEMAS = ("HTTPValidationError", "ValidationError")

_SUMMARIES = {
    400: "The body is not JSON, or cannot be read.",
    401: "No API key, or not a valid one (`WWW-Authenticate: Bearer`).",
    403: "The key lacks the scope this operation needs.",
    404: "Nothing of that id or name.",
    408: "The body did not arrive in time; the connection is closed.",
    409: "The request conflicts with what is stored.",
    413: "The body is over the size limit, or a batch over its count limit.",
    431: "The request headers are over their size limit.",
    503: "Busy: as many expensive operations as may run at once are running, or this one ran"
    " past its time limit (`Retry-After`).",
    422: "The request is well-formed but invalid; `errors` lists each invalid input when the"
    " code is `invalid_request`.",
    429: "Too many requests from this key (`Retry-After`).",
    500: "The server failed; only a request id is shown, the details go to its log.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`."}},
    429: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "Seconds until the key is admitted again.",
        }
    },
    503: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "Seconds until trying again is worthwhile.",
        }
    },
}


def statuses_of(operation: Mapping[str, Any]) -> set[int]:
    """The problem statuses of one operation of the OpenAPI document."""
    statuses = {413, 431, 500}
    if operation.get("security"):
        statuses |= {401, 403, 429}
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    if parameters or has_body:
        statuses.add(422)
    if has_body:
        statuses |= {MalformedJsonError.status, RequestTimeoutError.status}
    if any(parameter.get("in") == "path" for parameter in parameters):
        statuses.add(404)
    statuses |= DOMAIN_STATUSES.get(str(operation.get("operationId")), frozenset())
    return statuses


def problem_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of a problem answer with ``status``."""
    codes = ", ".join(f"`{code}`" for code in codes_by_status().get(status, ()))
    response: dict[str, Any] = {
        "description": f"{_SUMMARIES.get(status, 'A problem.')} Codes: {codes}.",
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def declare_problems(document: dict[str, Any]) -> None:
    """Declare each operation's problem answers and the ``Problem`` schema, in place."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in _FRAMEWORK_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ProblemError"] = PROBLEM_ERROR_SCHEMA
    for operation in operations_of(document):
        responses = operation.setdefault("responses", {})
        for status in sorted(statuses_of(operation)):
            responses[str(status)] = problem_response(status)


def operations_of(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method in methods:
                yield operation


def codes_by_status() -> dict[int, list[str]]:
    """Every problem code the API can send, by status (for the documentation)."""
    codes: dict[int, set[str]] = {500: {"internal_error"}}
    for status, (code, _) in STATUS_CODES.items():
        codes.setdefault(status, set()).add(code)
    pending: list[type[PersonaError]] = [PersonaError]
    while pending:
        error = pending.pop()
        codes.setdefault(error.status, set()).add(error.code)
        pending.extend(error.__subclasses__())
    return {status: sorted(found) for status, found in codes.items()}
