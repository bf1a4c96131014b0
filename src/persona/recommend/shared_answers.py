"""Answers in Redis, shared by every process of one store (``PERSONA_REDIS_URL``).

A process's own cache (``persona.cache.AnswerCache``) misses an answer the first time that
process is asked for it; this one lets an answer ranked in one process serve the same request
in another. It is outdated, never deleted, exactly as the shared profiles are
(``persona.profiles.shared_cache``), and with the same versions: an entry keeps the versions of
the person's profile keys (and the epoch) taken before the answer's data was read, and is used
only while they are all current, so a commit that changed the person, anywhere, outdates it.
The model set in service (its version and when its files last changed) is part of the entry's
key: another model set never serves it. Entries expire after the answer cache's lifetime, the
bound every process already puts on time-dependent signals (trending, the catalog's
availability) in its own cache.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import orjson

from persona.profiles import SharedProfileCache
from persona.recommend.answer import RecommendationResult, RecommendedItem

PREFIX = "persona:answer:"  # + a digest of the model set and the request


class SharedAnswers:
    def __init__(self, client: Any, ttl_seconds: float, versions: SharedProfileCache) -> None:
        from redis.exceptions import RedisError  # not imported by processes without Redis

        self._client = client
        self._unreachable = RedisError
        self._ttl_ms = max(1, round(ttl_seconds * 1000))
        self._versions = versions

    @staticmethod
    def key(model: str, stamp: int, request: Any) -> str:
        """The entry's name: the model set in service and every field of the request."""
        text = orjson.dumps([model, stamp, asdict(request)], option=orjson.OPT_SORT_KEYS)
        return PREFIX + hashlib.blake2b(text, digest_size=16).hexdigest()

    def versions(self, profile_keys: Sequence[str]) -> list[int] | None:
        """The versions to keep with an answer, read before its data (None: do not keep it)."""
        return self._versions.versions(profile_keys)

    def get(self, key: str) -> RecommendationResult | None:
        try:
            raw = self._client.get(key)
        except self._unreachable:
            return None  # the shared profiles warn about an unreachable Redis
        if raw is None:
            return None
        try:
            entry = orjson.loads(zlib.decompress(raw))
        except (zlib.error, orjson.JSONDecodeError):
            return None  # written otherwise (an older release): ranked again
        if self._versions.versions(entry["keys"]) != entry["versions"]:
            return None
        value = entry["value"]
        items = [RecommendedItem(**item) for item in value.pop("items")]
        return RecommendationResult(items=items, **value)

    def put(
        self,
        key: str,
        profile_keys: Sequence[str],
        versions: list[int] | None,
        result: RecommendationResult,
    ) -> None:
        if versions is None:
            return
        entry = {"keys": list(profile_keys), "versions": versions, "value": asdict(result)}
        try:
            # Compressed: item ids and source names repeat (1,725 bytes a 10-item answer as
            # JSON on the synthetic shop, 526 compressed: 0.49 GiB a million answers).
            self._client.set(key, zlib.compress(orjson.dumps(entry), 6), px=self._ttl_ms)
        except self._unreachable:
            return
