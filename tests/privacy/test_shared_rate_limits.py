"""Rate limits in Redis (``PERSONA_REDIS_URL``): every API process takes its tokens from the
same buckets, which Redis refills on its own clock and forgets once they are full again."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from persona.access.keys import Scope
from persona.access.ratelimit import RedisRateLimiter
from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.errors import RateLimitedError
from tests.conftest import open_engine


def limiter(url: str, rate: float, burst: int, name: str = "keys") -> RedisRateLimiter:
    """A limiter on a connection of its own, as another process would have."""
    return RedisRateLimiter(redis.Redis.from_url(url), name, rate, burst)


def test_processes_take_a_key_s_tokens_from_one_bucket(redis_url: str) -> None:
    first, second = limiter(redis_url, 1, 3), limiter(redis_url, 1, 3)
    first.check("k1")
    first.check("k1")
    second.check("k1")
    for each in (first, second):
        with pytest.raises(RateLimitedError) as refused:
            each.check("k1")
        assert refused.value.headers == {"retry-after": "1"}
    second.check("k2")  # another key has its own bucket
    limiter(redis_url, 1, 3, name="failed-auth").check("k1")  # and so has another limiter


def test_a_bucket_refills_at_its_rate_and_is_forgotten_once_full_again(redis_url: str) -> None:
    shared = limiter(redis_url, 20, 2)
    shared.check("k")
    shared.check("k")
    with pytest.raises(RateLimitedError):
        shared.check("k")
    time.sleep(0.08)  # 20 a second: a token every 50 ms
    shared.check("k")
    ttl_ms = redis.Redis.from_url(redis_url).pttl("persona:rate:keys:k")
    assert 0 < ttl_ms <= 2 / 20 * 1000 + 1000  # full after burst / rate, then a second


def test_refusing_when_empty_takes_no_token(redis_url: str) -> None:
    """The failed-authentication limit: a request is refused only once its address spent the
    burst on requests without a valid key; asking does not spend."""
    failures = limiter(redis_url, 0.001, 2, name="failed-auth")
    for _ in range(5):
        failures.refuse_if_empty("10.0.0.1", "too many")
    assert not redis.Redis.from_url(redis_url).exists("persona:rate:failed-auth:10.0.0.1")
    failures.spend("10.0.0.1")
    failures.spend("10.0.0.1")
    with pytest.raises(RateLimitedError, match="too many"):
        failures.refuse_if_empty("10.0.0.1", "too many")


def test_an_unreachable_redis_lets_requests_through_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = RedisRateLimiter(redis.Redis(port=1, socket_connect_timeout=0.2), "keys", 1, 1)
    with caplog.at_level(logging.WARNING, logger="persona.access.ratelimit"):
        for _ in range(3):
            gone.check("k")
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # at most one a while, not one a request


@pytest.fixture
def two_processes(
    tmp_path: Path, database_url: str, clock: FakeClock, redis_url: str
) -> Iterator[tuple[Engine, Engine]]:
    """Two engines over one store and one Redis, as two API processes are."""
    options = {
        "dev_mode": False,
        "redis_url": redis_url,
        "access": {"rate_limit_per_second": 0.001, "rate_limit_burst": 3},
    }
    first = open_engine(tmp_path, database_url, clock, **options)
    second = open_engine(tmp_path, database_url, clock, **options)
    yield first, second
    second.close()
    first.close()


def test_a_key_s_limit_holds_across_api_processes(two_processes: tuple[Engine, Engine]) -> None:
    first, second = two_processes
    assert isinstance(first.rate_limits, RedisRateLimiter)
    secret = first.keys.create("busy", [Scope.READ]).secret
    headers = {"Authorization": f"Bearer {secret}"}
    with (
        TestClient(create_app(first), raise_server_exceptions=False) as one,
        TestClient(create_app(second), raise_server_exceptions=False) as other,
    ):
        answered = [
            one.get("/v1/items", headers=headers).status_code,
            other.get("/v1/items", headers=headers).status_code,
            one.get("/v1/items", headers=headers).status_code,
        ]
        assert answered == [200, 200, 200]
        for client in (one, other):
            limited = client.get("/v1/items", headers=headers)
            assert limited.status_code == 429
            assert limited.json()["code"] == "rate_limited"
