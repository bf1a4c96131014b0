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
