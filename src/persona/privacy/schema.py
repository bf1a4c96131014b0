"""API models of privacy: consent, erasure reports, subject exports (versioned), the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from persona.profiles.schema import Profile

EXPORT_SCHEMA_VERSION: Literal[1] = 1


class ConsentState(BaseModel):
    user_id: str
    purposes: dict[str, str] = Field(
        description="Status of each purpose now: granted, denied, revoked, or unset."
    )


class ErasureReportOut(BaseModel):
    subject: str = Field(description="Keyed hash of the erased id (what the tombstone keeps).")
    ids_erased: int = Field(description="User and anonymous ids of the person that were found.")
    deleted: dict[str, int] = Field(description="Rows deleted per table.")
    models_rewritten: int
    model_rows_removed: int
    lake_rows_removed: int = Field(
        description="Events removed from the event lake's files (HOME/lake), rewritten without"
        " the person."
    )


class ExportEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str
    type: str
    user_id: str | None
    anonymous_id: str | None
    item_id: str | None
    occurred_at: datetime
    received_at: datetime
    value: float | None
    properties: dict[str, Any] | None
    context: dict[str, Any] | None
    used: bool = Field(description="False: held back for lack of consent, never used.")


class ExportConsent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    purpose: str
    status: Literal["granted", "denied", "revoked"]
    effective_at: datetime
    source: str
    recorded_at: datetime


class ExportMembership(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment: str
    entered_at: datetime
    exited_at: datetime | None


class ExportDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: str
    placement: str
    variant: str | None
    reason: str
    decided_at: datetime


class SubjectExport(BaseModel):
    """Everything persona holds about one person (schema_version 1)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = EXPORT_SCHEMA_VERSION
    subject_id: str
    exported_at: datetime
    profile: Profile | None = Field(description="The computed profile, traits decrypted.")
    traits: dict[str, Any] = Field(description="CRM traits, encrypted fields decrypted.")
    aliases: list[str] = Field(description="Every user and anonymous id of the person.")
    events: list[ExportEvent]
    consents: list[ExportConsent]
    segment_memberships: list[ExportMembership]
    scores: dict[str, float]
    decisions: list[ExportDecision]


class AuditEntryOut(BaseModel):
    audit_id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditEntryOut]
    next_after: int | None = Field(description="Pass as `after` to read the next page.")


class SegmentSize(BaseModel):
    segment: str
    size: float = Field(description="Noisy count (Laplace mechanism, sensitivity 1).")
    epsilon: float
    mechanism: str
