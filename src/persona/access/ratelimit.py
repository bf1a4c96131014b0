"""Rate limits: a token bucket in memory per key id (requests) or per client address (failed
authentications).

Each key gets ``burst`` tokens, refilled at ``rate`` per second; a request takes one. A key
without tokens is answered 429 with the seconds until the next token in ``Retry-After``; other
keys have their own buckets and are unaffected. The buckets live in the process: with several
API processes, each enforces the limit separately.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from persona.errors import RateLimitedError

MAX_BUCKETS = 100_000  # past this, buckets that refilled are dropped


class RateLimiter:
    def __init__(
        self,
        rate_per_second: float,
        burst: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_second
        self.burst = float(burst or max(1, math.ceil(rate_per_second)))
        self._now = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def sizes(self) -> dict[str, int]:
        return {"buckets": len(self._buckets)}

    def check(self, key_id: str) -> None:
        """Take a token for ``key_id`` or raise RateLimitedError."""
        self._take(key_id, f"this key is limited to {self.rate:g} requests per second")

    def refuse_if_empty(self, key: str, detail: str) -> None:
        """RateLimitedError when ``key`` has no token left (none is taken)."""
        self._take(key, detail, spend=False)

    def spend(self, key: str) -> None:
        """Take a token from ``key`` (down to none)."""
        self._take(key, None)

    def _take(self, key: str, refusal: str | None, *, spend: bool = True) -> None:
        """Refill ``key``'s bucket; then raise RateLimitedError with ``refusal`` as its detail
        when it is empty (unless ``refusal`` is None), else take a token if ``spend``."""
        if self.rate <= 0:
            return
        now = self._now()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1.0 and refusal is not None:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise RateLimitedError(refusal, retry_after=wait)
            if spend:
                self._buckets[key] = (max(0.0, tokens - 1.0), now)
                if len(self._buckets) > MAX_BUCKETS:
                    self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled: they hold nothing a new bucket would not."""
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self._buckets[key]
