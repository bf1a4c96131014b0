"""Errors that carry their HTTP status and a machine-readable code.

One handler in the web layer renders every ``PersonaError`` as the same problem+json shape, so
the domains raise meaning, never HTTP.
"""

from __future__ import annotations

from typing import Any


class PersonaError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class MalformedJsonError(PersonaError):
    status, code, title = 400, "malformed_json", "Malformed JSON"


class InvalidRequestError(PersonaError):
    status, code, title = 422, "invalid_request", "Invalid request"


class PayloadTooLargeError(PersonaError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class HeadersTooLargeError(PersonaError):
    """The request's headers are over their size limit."""

    status, code, title = 431, "headers_too_large", "Request headers too large"


class RequestTimeoutError(PersonaError):
    """The request's body did not arrive in time."""

    status, code, title = 408, "request_timeout", "Request timeout"


class BatchTooLargeError(PersonaError):
    status, code, title = 413, "batch_too_large", "Batch too large"


class NotFoundError(PersonaError):
    status, code, title = 404, "not_found", "Not found"


class ConflictError(PersonaError):
    status, code, title = 409, "conflict", "Conflict"


class UnauthorizedError(PersonaError):
    status, code, title = 401, "unauthorized", "Missing or invalid API key"


class ForbiddenError(PersonaError):
    status, code, title = 403, "not_enough_permissions", "Not enough permissions"


class NothingToLearnError(PersonaError):
    """A model with no data, or too little, to learn from: training reports it and skips that
    model; it is not a failure. Each model family's subclass names its own code."""

    status, code, title = 409, "not_enough_data", "Not enough data"


class InvalidRuleError(PersonaError):
    """A segment rule that cannot be used: unknown field or segment, wrong types, a cycle."""

    status, code, title = 422, "invalid_rule", "Invalid segment rule"


class RuleSyntaxError(InvalidRuleError):
    """A rule that does not parse; ``extra`` carries the line, column and a caret excerpt."""


class InvalidExperimentError(PersonaError):
    """An experiment or bandit set-up that cannot be used: bad weights, shares, arms or rewards."""

    status, code, title = 422, "invalid_experiment", "Invalid experiment"


class InsufficientDataError(PersonaError):
    """A statistic that cannot be computed yet: too few units in an arm, or no variance at all."""

    status, code, title = 422, "insufficient_data", "Not enough data"


class UnknownPlacementError(NotFoundError):
    """A placement name (or experiment id) that names no placement."""

    status, code, title = 404, "unknown_placement", "Unknown placement"


class InvalidPlacementError(PersonaError):
    """A placement configuration that cannot be used: variants, fallback, policy settings."""

    status, code, title = 422, "invalid_placement", "Invalid placement"


class AmbiguousSubjectError(PersonaError):
    """An id that is both a user id and an unrelated anonymous id, with no word on which."""

    status, code, title = 409, "ambiguous_subject", "Ambiguous subject"


class SubjectErasedError(PersonaError):
    """Data about a person who was erased (their ids are in the tombstones)."""

    status, code, title = 409, "subject_erased", "Subject erased"


class RateLimitedError(PersonaError):
    """Too many requests from one key; ``retry_after`` says when the next one is admitted."""

    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.headers = {"retry-after": str(retry_after)}


class BusyError(PersonaError):
    """An expensive operation refused for now: as many as may run at once are running, or it
    ran past its time limit. ``Retry-After`` says when to try again."""

    status, code, title = 503, "busy", "Busy"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, extra={"retry_after": retry_after})
        self.headers = {"retry-after": str(retry_after)}


class WriteConflictError(BusyError):
    """Writes in parallel met on the same data and the database gave up one of them (a deadlock
    among their locks): nothing of it was stored, and sending it again is safe."""

    code, title = "write_conflict", "Concurrent write conflict"


class KAnonymityError(PersonaError):
    """An export of fewer people than the k-anonymity threshold."""

    status, code, title = 422, "k_anonymity", "Too few people to export"
