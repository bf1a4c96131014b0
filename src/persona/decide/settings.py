"""Decisions and their attribution: the settings group ``decisions``
(``PERSONA_DECISIONS__…``)."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field

from persona.clock import HOUR_MS
from persona.config import SettingsGroup


class DecisionSettings(SettingsGroup):
    """Decisions for placements and the attribution of what followed (docs/experiments.md)."""

    page_cap: int = Field(
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

    @cached_property  # read per event
    def attribution_window_ms(self) -> int:
        return round(self.attribution_window_hours * HOUR_MS)
