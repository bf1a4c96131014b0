"""Access: API keys with scopes, and per-key rate limits.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.access.keys import (
    DEV_PRINCIPAL,
    AnyScope,
    ApiKeyService,
    Principal,
    Scope,
)
from persona.access.ratelimit import (
    Limiter,
    RateLimiter,
    RedisRateLimiter,
)
from persona.access.settings import AccessSettings

__all__ = [
    "DEV_PRINCIPAL",
    "AccessSettings",
    "AnyScope",
    "ApiKeyService",
    "Limiter",
    "Principal",
    "RateLimiter",
    "RedisRateLimiter",
    "Scope",
]
