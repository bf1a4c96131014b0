"""Settings, validated once at start-up.

Every setting can come from a ``PERSONA_<NAME>`` environment variable. A ``PERSONA_*`` variable
that names no setting is refused, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
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
    worker_threads: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Threads for blocking request work (more than a few per core only queue).",
    )
    profile_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a profile read is reused while nothing in this process changes"
        " it; bounds how late other processes' writes show (0: never).",
    )
    profile_cache_entries: int = Field(
        default=100_000, ge=0, description="How many profiles the in-memory cache holds at most."
    )
    recommend_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long an answer is reused while its person does nothing new (0: never).",
    )
    recommend_cache_entries: int = Field(
        default=50_000, ge=0, description="How many answers the in-memory cache holds at most."
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

    # decisions
    decision_page_cap: int = Field(
        default=6,
        ge=0,
        le=100,
        description="Default number of placements one decisions request personalizes; the rest"
        " get their fallback.",
    )
    attribution_window_hours: float = Field(
        default=168.0,
        gt=0,
        description="How long after a decision its impressions, clicks and conversions count.",
    )

    # clusters and propensity predictions
    cluster_k_min: int = Field(default=2, ge=2, le=50, description="Fewest clusters tried.")
    cluster_k_max: int = Field(default=8, ge=2, le=50, description="Most clusters tried.")
    cluster_silhouette_sample: int = Field(
        default=5_000, ge=100, description="People sampled to score each k by silhouette."
    )
    prediction_fit_cutoffs: int = Field(
        default=24,
        ge=1,
        le=200,
        description="Cutoffs, one horizon apart, whose examples train a propensity model.",
    )
    predictions_retrain_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How often `persona serve` retrains clusters and predictions (0: never).",
    )

    # privacy and governance (docs/privacy.md)
    consent_purposes: tuple[str, ...] = Field(
        default=("analytics", "personalization", "marketing"),
        description="Purposes a person can grant or refuse.",
    )
    consent_required: bool = Field(
        default=False,
        description="True: nothing about a person is used until granted; false: people without"
        " a consent record count as granted.",
    )
    unconsented_events: Literal["store", "drop"] = Field(
        default="store",
        description="Events whose purposes are not granted: kept aside unused, or not stored.",
    )
    personal_fields: tuple[str, ...] = Field(
        default=("email", "phone", "ip", "ip_address", "first_name", "last_name", "name"),
        description="Keys of traits, properties and context that are pseudonymized.",
    )
    encrypted_fields: tuple[str, ...] = Field(
        default=(), description="Personal keys stored encrypted (recoverable) instead of hashed."
    )
    pseudonym_key: SecretStr | None = Field(
        default=None, description="HMAC key of pseudonyms; generated into the home when unset."
    )
    encryption_key: SecretStr | None = Field(
        default=None, description="Fernet key of encrypted fields; generated when unset."
    )
    retention_days: dict[str, float] = Field(
        default_factory=dict, description="Days events of each type are kept (absent: forever)."
    )
    retention_interval_seconds: float = Field(
        default=86_400.0, ge=0, description="How often `persona serve` applies retention."
    )
    k_anonymity: int = Field(
        default=10, ge=1, description="Smallest segment whose member list can be exported."
    )
    rate_limit_per_second: float = Field(
        default=0.0, ge=0, description="Requests per second per API key (0: unlimited)."
    )
    rate_limit_burst: int = Field(
        default=0, ge=0, description="Requests a key may send at once (0: one second's worth)."
    )

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _check_cluster_range(self) -> Settings:
        if self.cluster_k_min > self.cluster_k_max:
            raise ValueError("cluster_k_min must not exceed cluster_k_max")
        return self

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
