"""What a failed call raises: the server's problem+json answer as a typed exception.

Every error answer of persona has one shape (``type``, ``title``, ``status``, ``code``,
``detail``, ``request_id``; README, Errors). The class is chosen by the machine ``code``
where a code has a meaning of its own, else by the status, so that ``except NotFoundError``
also catches ``unknown_placement`` and the exact reason stays in ``code``. A call that got no
answer at all raises ``TransportError`` (status None).
"""

from __future__ import annotations

import builtins
import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # the models raise EventsRejectedError, so they import this module
    from persona.client.models import EventOutcome


class ProblemError(BaseModel):
    """One invalid input of a 422 answer: where (``body.items.0.title``, ``query.n``), what."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    path: str
    message: str
    type: str


class PersonaError(Exception):
    """A call that failed. ``status`` is None when no answer came back (``TransportError``)."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str = "error",
        title: str = "Error",
        request_id: str | None = None,
        retry_after: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body or {}

    def __str__(self) -> str:
        where = f"{self.status} {self.code}" if self.status is not None else self.code
        request = f" (request {self.request_id})" if self.request_id else ""
        return f"{where}: {self.detail}{request}"


class BadRequestError(PersonaError):
    """400: the request itself is wrong (``malformed_json``)."""


class InvalidRequestError(BadRequestError):
    """422: the request failed validation; ``errors`` lists every invalid input."""

    @property
    def errors(self) -> list[ProblemError]:
        return [ProblemError.model_validate(e) for e in self.body.get("errors", [])]


class PayloadTooLargeError(BadRequestError):
    """413 (``payload_too_large``, ``batch_too_large``) and 431: send less at once."""


class UnauthorizedError(PersonaError):
    """401: no API key, or one the server does not know (revoked, mistyped)."""


class ForbiddenError(PersonaError):
    """403 ``not_enough_permissions``: the key lacks the scope the route needs."""


class NotFoundError(PersonaError):
    """404: ``not_found``, ``unknown_placement`` ..."""


class ConflictError(PersonaError):
    """409: ``conflict``, ``subject_erased``, ``ambiguous_subject`` ..."""


class RateLimitedError(PersonaError):
    """429: the key sent too much; ``retry_after`` (seconds) says when it is admitted again."""


class ServerError(PersonaError):
    """5xx: the server failed (``internal_error``: quote ``request_id`` when reporting it)."""


class ServerBusyError(ServerError):
    """503 ``busy`` or ``write_conflict``: nothing was done, and the same call may be sent
    again after ``retry_after``."""


class TransportError(PersonaError):
    """No answer: the connection failed or broke. Whether the server acted is unknown, which is
    why events carry ids: sending them again cannot count them twice."""


class TimedOutError(TransportError, builtins.TimeoutError):
    """No answer within the client's timeout (also a built-in ``TimeoutError``)."""


class EventsRejectedError(PersonaError):
    """Events the server answered for with ``rejected`` (``IngestResult.raise_for_rejections``):
    the rest of their batch was stored."""

    def __init__(self, rejections: list[EventOutcome]) -> None:
        first = rejections[0]
        super().__init__(
            f"{len(rejections)} event(s) rejected; first at index {first.index}:"
            f" {first.code}: {first.message}",
            status=200,
            code="events_rejected",
            title="Events rejected",
        )
        self.rejections = rejections


# Codes whose meaning is not their status's family (the server's codes: persona/errors.py).
_BY_CODE: dict[str, type[PersonaError]] = {
    "payload_too_large": PayloadTooLargeError,
    "batch_too_large": PayloadTooLargeError,
    "headers_too_large": PayloadTooLargeError,
    "busy": ServerBusyError,
    "write_conflict": ServerBusyError,
}
_BY_STATUS: dict[int, type[PersonaError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
    429: RateLimitedError,
    431: PayloadTooLargeError,
}


def error_class(status: int, code: str) -> type[PersonaError]:
    """The exception class for an answer's status and code."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else PersonaError


def retry_after_of(response: httpx.Response) -> float | None:
    """Seconds the ``Retry-After`` header asks to wait (delay-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    moment = _http_date(value)
    if moment is None:
        return None
    # measured against the server's own clock when it sent one: the two clocks may differ
    now = _http_date(response.headers.get("date", "")) or datetime.now(UTC)
    return max(0.0, (moment - now).total_seconds())


def _http_date(text: str) -> datetime | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def error_from_response(response: httpx.Response) -> PersonaError:
    """The typed exception of an error answer. Bodies that are not a problem (a proxy's HTML
    page, an empty 502) still give the class of their status, with code ``http_<status>``."""
    body: dict[str, Any] = {}
    try:
        parsed = json.loads(response.content) if response.content else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        body = parsed
    status = response.status_code
    code = body.get("code")
    if not isinstance(code, str):
        code = f"http_{status}"
    detail = body.get("detail")
    if not isinstance(detail, str):
        detail = response.reason_phrase or f"HTTP {status}"
    title = body.get("title")
    request_id = body.get("request_id") or response.headers.get("x-request-id")
    return error_class(status, code)(
        detail,
        status=status,
        code=code,
        title=title if isinstance(title, str) else response.reason_phrase,
        request_id=request_id if isinstance(request_id, str) else None,
        retry_after=retry_after_of(response),
        body=body,
    )
