"""Key lookups and rate limits: the settings group ``access`` (``PERSONA_ACCESS__…``)."""

from __future__ import annotations

from pydantic import Field

from persona.config import SettingsGroup


class AccessSettings(SettingsGroup):
    """API key lookups and per-key rate limits (429 with `Retry-After`)."""

    key_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long a key lookup is reused (a revocation waits)."
    )
    rate_limit_per_second: float = Field(
        default=1_000.0,
        ge=0,
        description="Requests per second per API key (0: unlimited); a leaked key cannot take"
        " the whole server.",
    )
    rate_limit_burst: int = Field(
        default=2_000,
        ge=0,
        description="Requests a key may send at once (0: one second's worth).",
    )
    failed_auth_per_second: float = Field(
        default=5.0,
        ge=0,
        description="Requests without a valid key per second per client address; past the"
        " burst, its requests are answered 429 without a key lookup (0: unlimited).",
    )
    failed_auth_burst: int = Field(
        default=50,
        ge=0,
        description="Requests without a valid key a client address may send at once.",
    )
