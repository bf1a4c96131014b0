"""Consent history, erasure tombstones, events held back for lack of consent, and the audit log.

``consents`` keeps every change (a row per purpose and change), so the status at any past moment
can be read back. ``held_events`` has the shape of ``events``: an event whose purposes were not
granted at its time is kept there (policy ``store``), where no profile, segment, model or decision
reads it. ``subject_tombstones`` holds only keyed hashes of erased ids. ``audit_log`` is
append-only; the migration adds triggers that refuse UPDATE and DELETE.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table

from persona.storage.tables.core import ID, Document, metadata

consents = Table(
    "consents",
    metadata,
    Column("consent_id", Integer, primary_key=True, autoincrement=True),
    Column("profile_key", String(ID + 2), nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # granted | denied | revoked
    Column("effective_at_ms", BigInteger, nullable=False),
    Column("source", String(32), nullable=False),  # api | event
    Column("recorded_at_ms", BigInteger, nullable=False),
    Index("ix_consents_profile", "profile_key", "purpose", "effective_at_ms"),
)

held_events = Table(
    "held_events",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("profile_key", String(ID + 2), nullable=False),
    Column("user_id", String(ID)),
    Column("anonymous_id", String(ID)),
    Column("item_id", String(ID)),
    Column("occurred_at_ms", BigInteger, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("value", Float),
    Column("properties", Document),
    Column("context", Document),
    Column("reason", String(200), nullable=False),
    Index("ix_held_events_profile", "profile_key"),
    Index("ix_held_events_occurred_at", "occurred_at_ms"),
)

subject_tombstones = Table(
    "subject_tombstones",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("erased_at_ms", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(64), nullable=False),  # key id, or "dev", or "cli"
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("details", Document, nullable=False),
    Index("ix_audit_log_at", "at_ms"),
)

__all__ = ["audit_log", "consents", "held_events", "subject_tombstones"]
