"""An index of the impressions and clicks by time, for training's read of the lists people
were shown (``Storage.shown_columns``): without it, a scan of every event (1.2 s a million
events on SQLite, for a store whose pages report no list).

Revision ID: 0011_events_shown
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_events_shown"
down_revision = "0001"
branch_labels = None
depends_on = None

SHOWN_TYPES = "type IN ('impression', 'click')"


def upgrade() -> None:
    op.create_index(
        "ix_events_shown",
        "events",
        ["occurred_at_ms", "event_id"],
        sqlite_where=sa.text(SHOWN_TYPES),
        postgresql_where=sa.text(SHOWN_TYPES),
    )


def downgrade() -> None:
    op.drop_index("ix_events_shown", "events")
