"""Settings, validated once at start-up.

Every setting can come from a ``PERSONA_<NAME>`` environment variable. A ``PERSONA_*`` variable
that names no setting is refused, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PERSONA_"

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "rate": 2.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
}


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


class Settings(BaseSettings):
    """Everything the engine can be told, with safe defaults for a single machine."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    home: Path = Field(default=Path(".persona"), description="Data directory of the engine.")
    database_url: str | None = Field(
        default=None,
        description="Default: a SQLite file in the home; postgresql://… selects PostgreSQL.",
    )
    dev_mode: bool = Field(
        default=False, description="Serve without API keys (never in production)."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # ingestion limits
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=1000, ge=1, le=100_000)
    max_event_bytes: int = Field(default=32 * 1024, ge=256)
    future_tolerance_seconds: float = Field(default=300.0, ge=0)
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL"

    # profile aggregates
    session_gap_seconds: float = Field(default=1800.0, gt=0)
    affinity_half_life_days: float = Field(default=30.0, gt=0)
    recent_items_limit: int = Field(default=20, ge=1, le=500)
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    purchase_event_types: tuple[str, ...] = ("purchase",)

    # access
    api_key_cache_seconds: float = Field(default=5.0, ge=0)

    # recommendations
    recommend_budget_ms: float = Field(
        default=50.0, gt=0, description="Latency budget of the pipeline before a fallback answers."
    )
    retrain_interval_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How often `persona serve` retrains the models (0 turns it off).",
    )

    # segments
    segment_refresh_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How often `persona serve` re-evaluates every segment (0 turns it off).",
    )

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _check_database_url(self) -> Settings:
        url = self.database_url
        if url is not None and not url.startswith(("sqlite://", "postgresql://", "postgresql+")):
            raise ValueError("database_url must start with sqlite:// or postgresql://")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'persona.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def unknown_environment_keys(environ: dict[str, str] | None = None) -> list[str]:
    """``PERSONA_*`` variables that name no setting (``PERSONA_HOME`` belongs to the CLI too)."""
    env = os.environ if environ is None else environ
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        key for key in env if key.upper().startswith(ENV_PREFIX) and key.upper() not in known
    )


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment plus explicit overrides, refusing unknown keys."""
    unknown = unknown_environment_keys()
    if unknown:
        raise SettingsError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
