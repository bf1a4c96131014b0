"""The change stream's tables: the outbox, the relay's position, webhooks and their deliveries.

A write that changes what the stream announces (a segment entered or left, a decision made,
a person erased) adds its messages to ``outbox`` in its own transaction, numbered with the
write's number (``write_seq``, as events are); the relay publishes the rows of the writes up to
a number every running write is past, then deletes them. Events need no rows here: the event
log is numbered the same way, and the relay reads it beside the outbox.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from persona.storage.tables.core import ID, metadata

MESSAGE_ID = 320  # "segment:<name>:<profile key>:<change>:<ms>" at its longest

outbox = Table(
    "outbox",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("write_seq", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message_id", String(MESSAGE_ID), nullable=False),
    Column("profile_key", String(ID + 2)),  # whose change it is (an erasure deletes their rows)
    Column("body", Text, nullable=False),  # the message, JSON
    Index("ix_outbox_write_seq", "write_seq"),
    Index("ix_outbox_profile", "profile_key"),
    sqlite_autoincrement=True,
)

stream_positions = Table(
    "stream_positions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),  # the last write number published
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("webhook_id", String(32), primary_key=True),
    Column("url", Text, nullable=False),
    Column("kinds", Text, nullable=False),  # JSON list of the message kinds it receives
    Column("secret", Text, nullable=False),  # signs each delivery (HMAC-SHA256)
    Column("created_at_ms", BigInteger, nullable=False),
    Column("active", Boolean, nullable=False),
)

# One row per message a webhook was given: delivered, or dead (every attempt failed; the body is
# kept for a replay). A redelivered message that has a row is not posted again.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("webhook_id", String(32), primary_key=True),
    Column("message_id", String(MESSAGE_ID), primary_key=True),
    Column("status", String(16), nullable=False),  # "delivered" or "dead"
    Column("attempts", Integer, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("error", Text),
    Column("body", Text),  # dead letters only
    Index("ix_webhook_deliveries_status", "webhook_id", "status", "at_ms"),
)
