"""Consent history, held events, erasure tombstones and the append-only audit log.

Revision ID: 0004_privacy
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_privacy"
down_revision = "0001"
branch_labels = None
depends_on = None

Document = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("consent_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("profile_key", sa.String(130), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("effective_at_ms", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("recorded_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_consents_profile", "consents", ["profile_key", "purpose", "effective_at_ms"]
    )
    op.create_table(
        "held_events",
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
        sa.Column("reason", sa.String(200), nullable=False),
    )
    op.create_index("ix_held_events_profile", "held_events", ["profile_key"])
    op.create_index("ix_held_events_occurred_at", "held_events", ["occurred_at_ms"])
    op.create_table(
        "subject_tombstones",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("erased_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("audit_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("details", Document, nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at_ms"])
    _refuse_audit_changes()


def _refuse_audit_changes() -> None:
    """The audit log is append-only in the database itself, not only by convention."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION persona_audit_log_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log"
            " FOR EACH ROW EXECUTE FUNCTION persona_audit_log_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log"
                " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS persona_audit_log_append_only()")
    op.drop_table("audit_log")
    op.drop_table("subject_tombstones")
    op.drop_table("held_events")
    op.drop_table("consents")
