"""What a client reads about a person, and what it may write (traits only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, RootModel, field_validator

from persona.documents import check_json_document
from persona.identity import anonymous_key, user_key


class RecentItem(BaseModel):
    item_id: str
    at: datetime


class Rfm(BaseModel):
    recency_days: float | None = Field(description="Days since the last purchase (null if none).")
    frequency: int = Field(description="Number of purchases.")
    monetary: float = Field(description="Total purchase value.")


class Profile(BaseModel):
    """The profile of one person. Every field is computed by the server; none is client-settable."""

    profile_id: str = Field(
        description="The user_id, or the anonymous_id of a not-yet-known person."
    )
    kind: str = Field(description="`user` or `anonymous`.")
    aliases: list[str] = Field(description="Anonymous ids merged into this profile.")
    traits: dict[str, Any]
    event_count: int
    counts: dict[str, int] = Field(description="Events per type.")
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    days_since_last_seen: float | None
    rfm: Rfm
    category_affinities: dict[str, float] = Field(
        description="Time-decayed interest per category at the last event, highest first."
    )
    recent_items: list[RecentItem]
    last_context: dict[str, Any] | None
    session_count: int
    segments: list[str] = Field(default_factory=list, description="Segments the person is in now.")
    scores: dict[str, float] = Field(
        default_factory=dict,
        description="Calibrated probability of each trained prediction (e.g. purchase_30d).",
    )
    updated_at: datetime

    @property
    def profile_key(self) -> str:
        """The key the profile is stored under (``u:``/``a:`` and its id)."""
        if self.kind == "user":
            return user_key(self.profile_id)
        return anonymous_key(self.profile_id)


class TraitsWritten(BaseModel):
    """What a key that may not read profiles learns from writing traits: the traits as
    stored (personal values transformed)."""

    profile_id: str
    traits: dict[str, Any]


class Traits(RootModel[dict[str, Any]]):
    """CRM traits: a JSON object of attribute names to values. Replaces the stored traits."""

    @field_validator("root")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json_document(value)
