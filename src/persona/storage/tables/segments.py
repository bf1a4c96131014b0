"""Segment definitions and membership history.

A membership row is one stay of one profile in one segment: ``exited_at_ms`` is null while the
person is in it. Leaving closes the row; entering again opens a new one, so closed rows are the
history. The service keeps at most one open row per (segment, profile) under the write lock.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from persona.storage.tables.core import ID, metadata

NAME = 64

segments = Table(
    "segments",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("kind", String(16), nullable=False),  # "rule" or "cluster" (persona.predictions)
    Column("rule", Text),
    Column("description", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

segment_memberships = Table(
    "segment_memberships",
    metadata,
    Column("membership_id", Integer, primary_key=True, autoincrement=True),
    Column("segment", String(NAME), nullable=False),
    Column("profile_key", String(ID + 2), nullable=False),
    Column("entered_at_ms", BigInteger, nullable=False),
    Column("exited_at_ms", BigInteger),
    Index("ix_segment_memberships_segment", "segment", "exited_at_ms", "profile_key"),
    Index("ix_segment_memberships_profile", "profile_key", "exited_at_ms"),
)
