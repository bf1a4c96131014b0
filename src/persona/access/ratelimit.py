"""Rate limits: a token bucket per key id (requests) or per client address (failed
authentications).

Each key gets ``burst`` tokens, refilled at ``rate`` per second; a request takes one. A key
without tokens is answered 429 with the seconds until the next token in ``Retry-After``; other
keys have their own buckets and are unaffected.

The buckets live in the process (``RateLimiter``), so with several API processes each enforces
the limit separately; with Redis (``PERSONA_REDIS_URL``, ``RedisRateLimiter``) every process
takes its tokens from the same buckets, refilled by Redis's clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from persona.errors import RateLimitedError

log = logging.getLogger(__name__)

MAX_BUCKETS = 100_000  # past this, buckets that refilled are dropped


class Limiter(ABC):
    """A token bucket per key: ``burst`` tokens, refilled at ``rate`` per second (none: no
    limit). Where the buckets are kept is the subclass's."""

    def __init__(self, rate_per_second: float, burst: int = 0) -> None:
        self.rate = rate_per_second
        self.burst = float(burst or max(1, math.ceil(rate_per_second)))

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @abstractmethod
    def sizes(self) -> dict[str, int]:
        """The entries kept in this process, by table (exported as a metric)."""

    def check(self, key_id: str) -> None:
        """Take a token for ``key_id`` or raise RateLimitedError."""
        self._take(key_id, f"this key is limited to {self.rate:g} requests per second")

    def refuse_if_empty(self, key: str, detail: str) -> None:
        """RateLimitedError when ``key`` has no token left (none is taken)."""
        self._take(key, detail, spend=False)

    def spend(self, key: str) -> None:
        """Take a token from ``key`` (down to none)."""
        self._take(key, None)

    @abstractmethod
    def _take(self, key: str, refusal: str | None, *, spend: bool = True) -> None:
        """Refill ``key``'s bucket; then raise RateLimitedError with ``refusal`` as its detail
        when it is empty (unless ``refusal`` is None), else take a token if ``spend``."""


class RateLimiter(Limiter):
    """The buckets in this process's memory."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rate_per_second, burst)
        self._now = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    def sizes(self) -> dict[str, int]:
        return {"buckets": len(self._buckets)}

    def _take(self, key: str, refusal: str | None, *, spend: bool = True) -> None:
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


# One bucket's refill and take, atomic in Redis, on Redis's clock (the processes' clocks need
# not agree). Hand-written because it is the limiter: a bucket is a hash of its tokens and
# when they were counted, kept until it would be full again (then it holds nothing a new
# bucket would not), so Redis holds only the buckets of keys seen lately.
# KEYS[1] the bucket; ARGV rate per second, burst, spend (1/0), refuse when empty (1/0).
# Returns {1 if allowed else 0, the tokens before this request as text}.
_TAKE = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now_s
tokens = math.min(burst, tokens + math.max(0, now_s - at) * rate)
local keep_ms = math.ceil(burst / rate * 1000) + 1000
if tokens < 1 and ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now_s)
  redis.call('PEXPIRE', KEYS[1], keep_ms)
  return {0, tostring(tokens)}
end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'tokens', math.max(0, tokens - 1), 'at', now_s)
  redis.call('PEXPIRE', KEYS[1], keep_ms)
end
return {1, tostring(tokens)}
"""
UNREACHABLE_WARNING_S = 10.0  # at most one warning this often while Redis cannot be reached


class RedisRateLimiter(Limiter):
    """The buckets in Redis, shared by every process that names the same ``name``. When Redis
    cannot be reached, requests pass (a limiter must not take the API down with it) and a
    warning is logged."""

    def __init__(self, client: Any, name: str, rate_per_second: float, burst: int = 0) -> None:
        from redis.exceptions import RedisError  # not imported by processes without Redis

        super().__init__(rate_per_second, burst)
        self._unreachable = RedisError
        self._prefix = f"persona:rate:{name}:"
        self._take_script = client.register_script(_TAKE)
        self._warned_at = -math.inf

    def sizes(self) -> dict[str, int]:
        return {}  # the buckets are Redis's, bounded by their expiry

    def _take(self, key: str, refusal: str | None, *, spend: bool = True) -> None:
        if self.rate <= 0:
            return
        try:
            allowed, tokens = self._take_script(
                keys=[self._prefix + key],
                args=[repr(self.rate), repr(self.burst), int(spend), int(refusal is not None)],
            )
        except self._unreachable as exc:
            now = time.monotonic()
            if now - self._warned_at >= UNREACHABLE_WARNING_S:
                self._warned_at = now
                log.warning("rate limits not enforced: Redis unreachable (%s)", exc)
            return
        if not int(allowed) and refusal is not None:
            wait = max(1, math.ceil((1.0 - float(tokens)) / self.rate))
            raise RateLimitedError(refusal, retry_after=wait)
