"""An index of the items by when they were last written, for the recommendations' read of the
items written since the model set was trained (``Catalog.written_since``, twice a second in
every serving process): without it, a scan of the whole catalog each time.

Revision ID: 0010_items_written
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0010_items_written"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_updated_at", "items", ["updated_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_items_updated_at", "items")
