"""How profiles fold events and how long reads are reused: the settings group ``profiles``
(``PERSONA_PROFILES__…``)."""

from __future__ import annotations

from pydantic import Field

from persona.clock import DAY_MS
from persona.config import SettingsGroup
from persona.profiles.aggregate import AggregateRules

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "rate": 2.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
}


class ProfileSettings(SettingsGroup):
    """How events fold into profiles, and how long a profile read is reused."""

    session_gap_seconds: float = Field(
        default=1800.0, gt=0, description="Inactivity that ends a session."
    )
    affinity_half_life_days: float = Field(
        default=30.0, gt=0, description="Age at which an event counts half in affinities."
    )
    recent_items_limit: int = Field(
        default=20, ge=1, le=500, description="Items kept in a profile's recent list."
    )
    event_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS),
        description="Weight of each event type in affinities and in what models learn (JSON).",
    )
    purchase_event_types: tuple[str, ...] = Field(
        default=("purchase",), description="Event types that count as purchases and conversions."
    )
    cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a profile read is reused while nothing in this process changes"
        " it; bounds how late other processes' writes show (0: never).",
    )
    cache_entries: int = Field(
        default=100_000, ge=0, description="How many profiles the in-memory cache holds at most."
    )

    def aggregate_rules(self) -> AggregateRules:
        """The folding rules in the units the hot path uses."""
        return AggregateRules(
            session_gap_ms=round(self.session_gap_seconds * 1000),
            half_life_ms=self.affinity_half_life_days * DAY_MS,
            recent_limit=self.recent_items_limit,
            weights=dict(self.event_weights),
            purchase_types=frozenset(self.purchase_event_types),
        )
