"""The retry decisions of the client, answer by answer (no server: the answers are made here,
as persona sends them)."""

from __future__ import annotations

import httpx
import pytest

from persona.client import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PersonaError,
    RateLimitedError,
    RetryPolicy,
    ServerBusyError,
    ServerError,
    TimedOutError,
    TransportError,
)
from persona.client.errors import error_from_response
from persona.client.retry import Attempts

POLICY = RetryPolicy(attempts=4, base_delay=0.1, max_delay=1.0, max_retry_after=30, seed=7)
REQUEST = httpx.Request("POST", "http://persona.test/v1/events")


def _problem(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {
        "type": f"urn:persona:problem:{code}",
        "title": code,
        "status": status,
        "code": code,
        "detail": f"a {code}",
        "request_id": "r-1",
    }
    return httpx.Response(status, json=body, headers=headers, request=REQUEST)


def _attempts(*, idempotent: bool = True) -> Attempts:
    return POLICY.start(idempotent=idempotent, rng=POLICY.jitter_source())


def test_retry_after_of_a_429_is_the_wait() -> None:
    attempts = _attempts(idempotent=False)  # a 429 did nothing: even a decision is repeated
    assert attempts.after_answer(_problem(429, "rate_limited", {"retry-after": "3"})) == 3.0


def test_a_retry_after_beyond_the_policys_patience_is_raised_with_it() -> None:
    with pytest.raises(RateLimitedError) as raised:
        _attempts().after_answer(_problem(429, "rate_limited", {"retry-after": "120"}))
    assert raised.value.retry_after == 120.0


def test_waits_grow_exponentially_with_jitter_and_the_attempts_are_bounded() -> None:
    attempts = _attempts()
    waits = [attempts.after_answer(_problem(500, "internal_error")) for _ in range(3)]
    for wait, ceiling in zip(waits, [0.1, 0.2, 0.4], strict=True):
        assert ceiling / 2 <= wait <= ceiling
    with pytest.raises(ServerError):
        attempts.after_answer(_problem(500, "internal_error"))  # the fourth try was the last


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "malformed_json", BadRequestError),
        (404, "not_found", NotFoundError),
        (409, "subject_erased", ConflictError),
        (413, "batch_too_large", PayloadTooLargeError),
        (405, "method_not_allowed", PersonaError),
    ],
)
def test_a_client_error_is_raised_at_once(
    status: int, code: str, error: type[PersonaError]
) -> None:
    with pytest.raises(error) as raised:
        _attempts().after_answer(_problem(status, code))
    assert (raised.value.status, raised.value.code, raised.value.request_id) == (
        status,
        code,
        "r-1",
    )


def test_a_decision_is_not_repeated_after_a_failure_that_may_have_come_after_it_acted() -> None:
    with pytest.raises(ServerError):
        _attempts(idempotent=False).after_answer(_problem(500, "internal_error"))
    with pytest.raises(TransportError):
        _attempts(idempotent=False).after_failure(httpx.ReadError("reset", request=REQUEST))
    # but a busy server did nothing, and a refused connection sent nothing
    busy = _problem(503, "busy", {"retry-after": "1"})
    assert _attempts(idempotent=False).after_answer(busy) == 1.0
    refused = httpx.ConnectError("refused", request=REQUEST)
    assert _attempts(idempotent=False).after_failure(refused) > 0


def test_the_last_timeout_is_raised_as_timed_out() -> None:
    attempts = RetryPolicy(attempts=1).start(idempotent=True, rng=POLICY.jitter_source())
    with pytest.raises(TimedOutError) as raised:
        attempts.after_failure(httpx.ReadTimeout("slow", request=REQUEST))
    assert "POST http://persona.test/v1/events" in str(raised.value)


def test_an_answer_that_is_not_a_problem_still_gets_its_class() -> None:
    error = error_from_response(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(error, ServerError) and error.code == "http_502"
    busy = error_from_response(_problem(503, "write_conflict"))
    assert isinstance(busy, ServerBusyError)
