"""The change stream: the settings group ``stream`` (``PERSONA_STREAM__…``); where the stream
lives is the top-level ``PERSONA_STREAM_URL``."""

from __future__ import annotations

from pydantic import Field

from persona.config import SettingsGroup


class StreamSettings(SettingsGroup):
    """Publishing committed changes, and `persona worker` (docs/stream.md)."""

    name: str = Field(
        default="persona:changes", min_length=1, max_length=200, description="The stream's key."
    )
    max_messages: int = Field(
        default=1_000_000,
        ge=1_000,
        description="The stream keeps about this many messages, the oldest trimmed (a consumer"
        " further behind misses messages; every message is also in the store).",
    )
    relay_interval_seconds: float = Field(
        default=0.05,
        gt=0,
        description="How often the relay publishes what committed since it last looked.",
    )
    claim_idle_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A message received by a worker that died unacknowledged goes to another"
        " (or to the same, restarted) after this long.",
    )
    webhook_attempts: int = Field(
        default=6, ge=1, le=20, description="Attempts of a delivery before it is a dead letter."
    )
    webhook_backoff_seconds: float = Field(
        default=0.5,
        ge=0,
        description="Wait before the second attempt; it doubles for each attempt after.",
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long a webhook's server may take to answer."
    )
    webhook_batch: int = Field(
        default=100, ge=1, le=1000, description="Messages posted to a webhook in one request."
    )
    deliveries_kept_days: float = Field(
        default=7.0,
        gt=0,
        description=(
            "How long a delivered or exported message's id is kept to drop it when delivered again."
        ),
    )
