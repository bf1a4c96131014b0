"""Placements with versioned configuration, the decision log, attributed outcomes and bandits.

A placement row names the current version and the status; every configuration change appends a
``placement_versions`` row, so what decided any logged decision can always be read back. The
decision log and the outcomes are append-only. Bandit counts live in the database (not in a
process), so they survive a restart and are shared by every API process; ``bandit_rewards``
holds one row per event id that moved them, which is what makes rewards count exactly once.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
)

from persona.storage.tables.core import ID, Document, metadata

NAME = 64
VARIANT = 64
DECISION_ID = 64

placements = Table(
    "placements",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("current_version", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # active | paused
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

placement_versions = Table(
    "placement_versions",
    metadata,
    Column("placement", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("policy", String(32), nullable=False),
    Column("config", Document, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("placement", "version"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(DECISION_ID), primary_key=True),
    Column("placement", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("variant", String(VARIANT)),  # null: nothing to serve (no fallback configured)
    Column("profile_key", String(ID + 2), nullable=False),
    Column("context", Document),
    Column("policy", String(32), nullable=False),
    # arm: in the experiment's arms; holdout: kept out, served the fallback; outside: not
    # personalized for another reason (paused, page cap, targeting, a failed source)
    Column("cohort", String(16), nullable=False),
    Column("holdout", Boolean, nullable=False),
    Column("bucket", String(NAME + 64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("decided_at_ms", BigInteger, nullable=False),
    Index("ix_decisions_experiment", "placement", "version", "cohort", "variant"),
)

decision_outcomes = Table(
    "decision_outcomes",
    metadata,
    Column("event_id", String(ID), primary_key=True),  # an outcome counts once
    Column("decision_id", String(DECISION_ID), nullable=False, index=True),
    Column("placement", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("variant", String(VARIANT)),
    Column("cohort", String(16), nullable=False),
    Column("profile_key", String(ID + 2), nullable=False),
    Column("kind", String(16), nullable=False),  # impression | click | conversion
    Column("value", Float),
    Column("occurred_at_ms", BigInteger, nullable=False),
    Index("ix_decision_outcomes_experiment", "placement", "version", "cohort", "variant"),
)

bandit_arms = Table(
    "bandit_arms",
    metadata,
    Column("placement", String(NAME), nullable=False),
    Column("version", Integer, nullable=False),
    Column("bucket", String(NAME + 64), nullable=False),
    Column("variant", String(VARIANT), nullable=False),
    Column("successes", Float, nullable=False),
    Column("failures", Float, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("placement", "version", "bucket", "variant"),
)

bandit_rewards = Table(
    "bandit_rewards",
    metadata,
    Column("event_id", String(ID), primary_key=True),  # a reward applies once per event id
    Column("decision_id", String(DECISION_ID), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # trial | success
    Column("applied_at_ms", BigInteger, nullable=False),
)

__all__ = [
    "bandit_arms",
    "bandit_rewards",
    "decision_outcomes",
    "decisions",
    "placement_versions",
    "placements",
]
