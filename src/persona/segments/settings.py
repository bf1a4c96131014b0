"""Keeping segments current: the settings group ``segments`` (``PERSONA_SEGMENTS__…``)."""

from __future__ import annotations

from pydantic import Field

from persona.config import SettingsGroup


class SegmentSettings(SettingsGroup):
    """Keeping rule segments current (docs/segments.md)."""

    refresh_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How often `persona serve` re-evaluates every segment (0 turns it off).",
    )
