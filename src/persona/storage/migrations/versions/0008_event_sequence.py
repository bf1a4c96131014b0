"""The number of the write that last changed each event, for the lake's incremental copy.

Rows stored before this revision get 0 (SQLite adds the column with that default and cannot drop
it again without copying the table; PostgreSQL drops it, so a write that forgets the number fails
there). The event log gets a random id, and its counter starts at 0: the first write is 1.

Revision ID: 0008_event_sequence
Revises: 0001
Create Date: 2026-12-09
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0008_event_sequence"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "events", sa.Column("write_seq", sa.BigInteger, nullable=False, server_default="0")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("events", "write_seq", server_default=None)
    op.create_index("ix_events_write_seq", "events", ["write_seq"])
    table = op.create_table(
        "event_sequence",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("log_id", sa.String(32), nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "log_id": uuid.uuid4().hex, "last": 0}])


def downgrade() -> None:
    op.drop_table("event_sequence")
    op.drop_index("ix_events_write_seq", "events")
    op.drop_column("events", "write_seq")
