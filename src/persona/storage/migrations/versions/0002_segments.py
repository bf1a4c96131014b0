"""Segment definitions and membership history.

Revision ID: 0002_segments
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_segments"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule", sa.Text),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "segment_memberships",
        sa.Column("membership_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("segment", sa.String(64), nullable=False),
        sa.Column("profile_key", sa.String(130), nullable=False),
        sa.Column("entered_at_ms", sa.BigInteger, nullable=False),
        sa.Column("exited_at_ms", sa.BigInteger),
    )
    op.create_index(
        "ix_segment_memberships_segment",
        "segment_memberships",
        ["segment", "exited_at_ms", "profile_key"],
    )
    op.create_index(
        "ix_segment_memberships_profile", "segment_memberships", ["profile_key", "exited_at_ms"]
    )


def downgrade() -> None:
    op.drop_table("segment_memberships")
    op.drop_table("segments")
