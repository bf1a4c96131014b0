"""When a failed try is repeated, and after how long: shared by both transports.

A try is repeated when repeating it is safe and may help: the connection failed or broke
(for an idempotent call; for any call when the request never left), the server was busy or
failed (5xx), or the key was rate limited (429, after the ``Retry-After`` it names). Other
4xx answers say the request is wrong, and are raised at once.

The waits grow exponentially (``base_delay`` doubling up to ``max_delay``), each drawn
uniformly from its upper half: clients that failed together do not come back together, and
none comes back at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from persona.client.errors import (
    PersonaError,
    RateLimitedError,
    ServerBusyError,
    ServerError,
    TimedOutError,
    TransportError,
    error_from_response,
)

# Failures before the request was written: the server cannot have acted on it.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a call is tried.

    ``attempts`` counts every try, the first included (1: never repeat). A ``Retry-After``
    longer than ``max_retry_after`` seconds is not waited for: the error is raised with its
    ``retry_after``, for the caller to decide. ``seed`` makes the waits reproducible."""

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 60.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts counts the first try: at least 1")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValueError("0 <= base_delay <= max_delay")

    def jitter_source(self) -> random.Random:
        """The draws of a client's waits (``seed``: the same waits every run)."""
        return random.Random(self.seed)  # noqa: S311 - spreads retries in time; no secret

    def start(self, *, idempotent: bool, rng: random.Random) -> Attempts:
        return Attempts(self, idempotent=idempotent, rng=rng)


NO_RETRY = RetryPolicy(attempts=1)


class Attempts:
    """The tries of one call: after each failure, the seconds to wait before the next try, or
    the error to raise."""

    def __init__(self, policy: RetryPolicy, *, idempotent: bool, rng: random.Random) -> None:
        self._policy = policy
        self._idempotent = idempotent
        self._rng = rng
        self.tries = 0

    def after_answer(self, response: httpx.Response) -> float:
        """A non-2xx answer: the wait before the next try, or its typed error raised."""
        self.tries += 1
        error = error_from_response(response)
        # 429 and 503 say the server did nothing; another 5xx may come after it acted
        retryable = isinstance(error, RateLimitedError | ServerBusyError) or (
            isinstance(error, ServerError) and self._idempotent
        )
        if not retryable or self.tries >= self._policy.attempts:
            raise error
        if error.retry_after is not None:
            if error.retry_after > self._policy.max_retry_after:
                raise error
            return error.retry_after
        return self._backoff()

    def after_failure(self, exc: httpx.RequestError) -> float:
        """No answer: the wait before the next try, or ``TransportError`` raised."""
        self.tries += 1
        retryable = isinstance(exc, NOT_SENT) or (
            self._idempotent and isinstance(exc, httpx.TransportError)
        )
        if not retryable or self.tries >= self._policy.attempts:
            raise self.failure(exc) from exc
        return self._backoff()

    def failure(self, exc: httpx.RequestError) -> PersonaError:
        where = f"{exc.request.method} {exc.request.url}" if _has_request(exc) else "a request"
        tries = f"{self.tries} {'try' if self.tries == 1 else 'tries'}"
        if isinstance(exc, httpx.TimeoutException):
            return TimedOutError(
                f"{where}: no answer within the timeout ({type(exc).__name__}) after {tries}",
                code="timeout",
                title="Timed out",
            )
        return TransportError(
            f"{where}: no answer ({type(exc).__name__}: {exc}) after {tries}",
            code="connection_failed",
            title="Connection failed",
        )

    def _backoff(self) -> float:
        ceiling = min(self._policy.max_delay, self._policy.base_delay * 2 ** (self.tries - 1))
        return self._rng.uniform(ceiling / 2, ceiling)


def _has_request(exc: httpx.RequestError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when the error was made without one
    except RuntimeError:
        return False
    return True
