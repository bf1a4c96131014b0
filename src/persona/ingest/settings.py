"""What ingest accepts: the settings group ``ingest`` (``PERSONA_INGEST__…``)."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field

from persona.config import SettingsGroup


class IngestSettings(SettingsGroup):
    """What an event and a batch may be."""

    max_batch_events: int = Field(
        default=1000, ge=1, le=100_000, description="Larger batches are refused (413)."
    )
    max_event_bytes: int = Field(
        default=32 * 1024, ge=256, description="Larger events are rejected."
    )
    future_tolerance_seconds: float = Field(
        default=300.0, ge=0, description="Events dated further ahead are rejected."
    )

    @cached_property  # read per event
    def future_tolerance_ms(self) -> int:
        return round(self.future_tolerance_seconds * 1000)
