"""Prediction definitions and the calibrated probability of each person for each of them.

``profile_scores`` holds one row per (profile, prediction): a profile's scores are the rows of
its key. Rules read them as ``profile.scores.<name>``; both segment evaluators read this table.
Clusters own no table: they are segments of kind ``cluster``, and their model is a file.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text

from persona.storage.tables.core import ID, Document, metadata

NAME = 64

predictions = Table(
    "predictions",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("horizon_days", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("trained_at_ms", BigInteger),
    Column("evaluation", Document),  # held-out metrics of the last training
)

profile_scores = Table(
    "profile_scores",
    metadata,
    Column("profile_key", String(ID + 2), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("probability", Float, nullable=False),
    Column("scored_at_ms", BigInteger, nullable=False),
    Index("ix_profile_scores_name", "name", "probability"),
)
