"""Placements, their versions, the decision log, attributed outcomes and bandit state.

Revision ID: 0003_decisions
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003_decisions"
down_revision = "0001"
branch_labels = None
depends_on = None

Document = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "placement_versions",
        sa.Column("placement", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("config", Document, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("placement", "version"),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("placement", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(64)),
        sa.Column("profile_key", sa.String(130), nullable=False),
        sa.Column("context", Document),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("cohort", sa.String(16), nullable=False),
        sa.Column("holdout", sa.Boolean, nullable=False),
        sa.Column("bucket", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("decided_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_decisions_experiment", "decisions", ["placement", "version", "cohort", "variant"]
    )
    op.create_table(
        "decision_outcomes",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("placement", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(64)),
        sa.Column("cohort", sa.String(16), nullable=False),
        sa.Column("profile_key", sa.String(130), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("occurred_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_decision_outcomes_decision_id", "decision_outcomes", ["decision_id"])
    op.create_index(
        "ix_decision_outcomes_experiment",
        "decision_outcomes",
        ["placement", "version", "cohort", "variant"],
    )
    op.create_table(
        "bandit_arms",
        sa.Column("placement", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("bucket", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("successes", sa.Float, nullable=False),
        sa.Column("failures", sa.Float, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("placement", "version", "bucket", "variant"),
    )
    op.create_table(
        "bandit_rewards",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("applied_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_bandit_rewards_decision_id", "bandit_rewards", ["decision_id"])


def downgrade() -> None:
    for table in (
        "bandit_rewards",
        "bandit_arms",
        "decision_outcomes",
        "decisions",
        "placement_versions",
        "placements",
    ):
        op.drop_table(table)
