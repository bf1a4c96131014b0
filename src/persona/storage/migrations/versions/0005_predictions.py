"""Prediction definitions and per-profile scores.

Revision ID: 0005_predictions
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005_predictions"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("horizon_days", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("trained_at_ms", sa.BigInteger),
        sa.Column("evaluation", sa.JSON().with_variant(JSONB(), "postgresql")),
    )
    op.create_table(
        "profile_scores",
        sa.Column("profile_key", sa.String(130), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("scored_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_profile_scores_name", "profile_scores", ["name", "probability"])


def downgrade() -> None:
    op.drop_table("profile_scores")
    op.drop_table("predictions")
