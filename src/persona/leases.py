"""Named leases, each held by one process at a time until it expires or is given back: the
servers of one store elect the one that runs the background jobs with one (``jobs.Leadership``).

The store keeps them (its ``leases`` table) unless ``PERSONA_REDIS_URL`` is set: then Redis
does, and a renewal every few seconds from every process never touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Leases(Protocol):
    def take_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew the lease ``name`` for ``ttl_seconds``; True while ``holder`` holds
        it (it was free, expired, or already theirs)."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease back, if ``holder`` holds it."""
        ...

    def lease_holders(self, names: Sequence[str]) -> dict[str, str]:
        """Who holds each of these leases now (unexpired ones only)."""
        ...


# Take or renew, and give back, each atomic in Redis: the holder is compared and the key set
# (or deleted) in one step, on Redis's clock (the processes' clocks need not agree); the key
# expires with the lease. KEYS[1] the lease; ARGV holder (and the lifetime in milliseconds).
_TAKE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeases:
    """The leases in Redis, under ``persona:lease:<name>``. A Redis error reaches the caller:
    a process that cannot renew its lease stops leading (``Leadership.renew``)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._take = client.register_script(_TAKE)
        self._release = client.register_script(_RELEASE)

    @staticmethod
    def _key(name: str) -> str:
        return f"persona:lease:{name}"

    def take_lease(self, name: str, holder: str, ttl_seconds: float) -> bool:
        ttl_ms = max(1, round(ttl_seconds * 1000))
        return bool(self._take(keys=[self._key(name)], args=[holder, ttl_ms]))

    def release_lease(self, name: str, holder: str) -> None:
        self._release(keys=[self._key(name)], args=[holder])

    def lease_holders(self, names: Sequence[str]) -> dict[str, str]:
        if not names:
            return {}
        found = self._client.mget([self._key(name) for name in names])
        return {
            name: value.decode() if isinstance(value, bytes) else str(value)
            for name, value in zip(names, found, strict=True)
            if value is not None
        }
