"""Events, quarantine, profiles, aliases, items and API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Document = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("profile_key", sa.String(130), nullable=False),
        sa.Column("user_id", sa.String(128)),
        sa.Column("anonymous_id", sa.String(128)),
        sa.Column("item_id", sa.String(128)),
        sa.Column("occurred_at_ms", sa.BigInteger, nullable=False),
        sa.Column("received_at_ms", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("properties", Document),
        sa.Column("context", Document),
        sa.Column("decision_id", sa.String(128)),
        sa.Column("payload_hash", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_profile_time", "events", ["profile_key", "occurred_at_ms"])
    op.create_index("ix_events_occurred_at", "events", ["occurred_at_ms"])

    op.create_table(
        "quarantine",
        sa.Column("quarantine_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(128)),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("path", sa.String(512)),
        sa.Column("batch_index", sa.Integer),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger, nullable=False),
        sa.Column("replayed_at_ms", sa.BigInteger),
        sa.Column("replayed_event_id", sa.String(128)),
    )
    op.create_index("ix_quarantine_code", "quarantine", ["code"])

    op.create_table(
        "profiles",
        sa.Column("profile_key", sa.String(130), primary_key=True),
        sa.Column("state", Document, nullable=False),
        sa.Column("traits", Document),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "aliases",
        sa.Column("alias_key", sa.String(130), primary_key=True),
        sa.Column("profile_key", sa.String(130), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_aliases_profile_key", "aliases", ["profile_key"])

    op.create_table(
        "items",
        sa.Column("item_id", sa.String(128), primary_key=True),
        sa.Column("title", sa.Text),
        sa.Column("categories", Document, nullable=False),
        sa.Column("tags", Document, nullable=False),
        sa.Column("price", sa.Float),
        sa.Column("available", sa.Boolean, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("attributes", Document, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", Document, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger),
    )


def downgrade() -> None:
    for table in ("api_keys", "items", "aliases", "profiles", "quarantine", "events"):
        op.drop_table(table)
