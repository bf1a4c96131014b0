"""Serving and retraining recommendations: the settings group ``recommend``
(``PERSONA_RECOMMEND__…``)."""

from __future__ import annotations

from pydantic import Field

from persona.config import SettingsGroup


class RecommendSettings(SettingsGroup):
    """Serving recommendations, and how often `persona serve` retrains their models."""

    budget_ms: float = Field(
        default=50.0, gt=0, description="Latency budget of the pipeline before a fallback answers."
    )
    cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long an answer is reused while its person does nothing new (0: never).",
    )
    cache_entries: int = Field(
        default=50_000, ge=0, description="How many answers the in-memory cache holds at most."
    )
    cache_megabytes: int = Field(
        default=256,
        ge=1,
        description="How much memory the answers in the cache may take at most (estimated).",
    )
    retrain_interval_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How often `persona serve` retrains the models (0 turns it off).",
    )
