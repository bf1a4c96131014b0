"""Rendered profiles in Redis, shared by every process of one store (``PERSONA_REDIS_URL``).

A process's own cache (``persona.cache.AnswerCache``) forgets a person when a commit changes
them; this one must be forgotten by every process at once, so an entry is never deleted but
outdated: each profile key has a version in Redis, raised after every commit that changes it (by
the process that wrote, and again by every process that hears of the change through the change
feed, within a second even if the writer died just after its commit). An entry keeps the
versions it was read under, taken *before* the read, and is used only while they are all
current: a commit between those two moments leaves it outdated, never wrong. A write that cannot
say whom it changed raises a version every entry carries (``EPOCH``).

Hand-written because the invalidation is the product's (which keys a person's profile depends
on, and when); Redis holds the bytes. Entries expire after ``ttl_seconds``; versions some time
after the entries that could name them.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

log = logging.getLogger(__name__)

PREFIX = "persona:profile:"  # + person id: an entry
VERSION = "persona:profile-version:"  # + profile key
EPOCH = "persona:profile-version:*"  # raised by a write that does not say whom it changed
UNREACHABLE_WARNING_S = 10.0
# An entry is its JSON compressed with this preset dictionary: the field names and common values
# every entry repeats (a profile's JSON is a few hundred bytes, too short for the compressor to
# learn them from the entry itself). Entries made with another dictionary fail to decompress
# and are read again from the store.
ZDICT = (
    b'{"keys":["u:","a:"],"versions":[0,0,0],"value":{"profile_key":"u:","document":'
    b'{"profile_id":"","kind":"user","aliases":[],"traits":{},"event_count":1,"counts":'
    b'{"add_to_cart":1,"click":1,"identify":1,"purchase":1,"rate":1,"view":1},'
    b'"first_seen_at":"2026-01-01T00:00:00Z","last_seen_at":"2026-01-01T00:00:00Z",'
    b'"days_since_last_seen":null,"rfm":{"recency_days":null,"frequency":0,"monetary":0.0},'
    b'"category_affinities":{},"recent_items":[{"item_id":"i1","at":"2026-01-01T00:00:00Z"},'
    b'{"item_id":"i2","at":"2026-01-01T00:00:00Z"}],"last_context":{"device":"mobile",'
    b'"country":"US"},"session_count":1,"segments":[],"scores":{},'
    b'"updated_at":"2026-01-01T00:00:00.000000Z"},"last_seen_ms":1700000000000,'
    b'"last_purchase_ms":null}}'
)


def _pack(entry: dict[str, Any]) -> bytes:
    packer = zlib.compressobj(6, zdict=ZDICT)
    return packer.compress(orjson.dumps(entry)) + packer.flush()


def _unpack(raw: bytes) -> dict[str, Any] | None:
    try:
        unpacker = zlib.decompressobj(zdict=ZDICT)
        entry: dict[str, Any] = orjson.loads(unpacker.decompress(raw) + unpacker.flush())
    except (zlib.error, orjson.JSONDecodeError):
        return None
    return entry


class SharedProfileCache:
    def __init__(self, client: Any, ttl_seconds: float) -> None:
        from redis.exceptions import RedisError  # not imported by processes without Redis

        self._client = client
        self._unreachable = RedisError
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._warned_at = float("-inf")

    def versions(self, profile_keys: Sequence[str]) -> list[int] | None:
        """The current versions of these keys and the epoch (before a read); None when Redis
        cannot be reached (nothing is then cached)."""
        try:
            found = self._client.mget([EPOCH, *(VERSION + key for key in profile_keys)])
        except self._unreachable as exc:
            self._warn(exc)
            return None
        return [int(value or 0) for value in found]

    def get(self, person_id: str) -> dict[str, Any] | None:
        """The entry of ``person_id`` if every version it was read under is still current."""
        try:
            raw = self._client.get(PREFIX + person_id)
            if raw is None:
                return None
            entry = _unpack(raw)
            if entry is None or self.versions(entry["keys"]) != entry["versions"]:
                return None
        except self._unreachable as exc:
            self._warn(exc)
            return None
        value: dict[str, Any] = entry["value"]
        return value

    def put(
        self, person_id: str, keys: Sequence[str], versions: list[int], value: dict[str, Any]
    ) -> None:
        """Keep ``value`` for ``person_id``, read under ``versions`` (``versions(keys)``)."""
        entry = {"keys": list(keys), "versions": versions, "value": value}
        try:
            self._client.set(PREFIX + person_id, _pack(entry), px=self._ttl_ms)
        except self._unreachable as exc:
            self._warn(exc)

    def changed(self, profile_keys: Iterable[str] | None) -> None:
        """Outdate every entry that depends on these keys (None: every entry)."""
        changed = [None] if profile_keys is None else list(profile_keys)
        if not changed:
            return
        try:
            with self._client.pipeline(transaction=False) as pipeline:
                for key in changed:
                    version = EPOCH if key is None else VERSION + key
                    pipeline.incr(version)
                    # A version outlives every entry read before its last raise.
                    pipeline.pexpire(version, 2 * self._ttl_ms)
                    if key is not None:  # its own entry goes at once (an erasure's too)
                        pipeline.delete(PREFIX + key.split(":", 1)[1])
                pipeline.execute()
        except self._unreachable as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= UNREACHABLE_WARNING_S:
            self._warned_at = now
            log.warning("the shared profile cache is not used: Redis unreachable (%s)", exc)
