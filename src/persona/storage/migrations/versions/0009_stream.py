"""The change stream: the outbox, the relay's position, webhooks and their deliveries.

Revision ID: 0009_stream
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_stream"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("write_seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message_id", sa.String(320), nullable=False),
        sa.Column("profile_key", sa.String(130)),
        sa.Column("body", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_write_seq", "outbox", ["write_seq"])
    op.create_index("ix_outbox_profile", "outbox", ["profile_key"])
    op.create_table(
        "stream_positions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhooks",
        sa.Column("webhook_id", sa.String(32), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("kinds", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("webhook_id", sa.String(32), primary_key=True),
        sa.Column("message_id", sa.String(320), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("body", sa.Text),
    )
    op.create_index(
        "ix_webhook_deliveries_status", "webhook_deliveries", ["webhook_id", "status", "at_ms"]
    )


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_table("stream_positions")
    op.drop_table("outbox")
