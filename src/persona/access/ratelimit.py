"""Per-key rate limits: a token bucket in memory per key id.

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

    def check(self, key_id: str) -> None:
        """Take a token for ``key_id`` or raise RateLimitedError."""
        if self.rate <= 0:
            return
        now = self._now()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise RateLimitedError(
                    f"this key is limited to {self.rate:g} requests per second",
                    retry_after=wait,
                )
            self._buckets[key_id] = (tokens - 1.0, now)
