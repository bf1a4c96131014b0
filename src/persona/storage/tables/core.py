"""The core tables: events, quarantine, profiles, aliases, items and API keys."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# JSON documents: JSONB on PostgreSQL (indexable, queryable by segments later), text on SQLite.
Document = JSON().with_variant(JSONB(), "postgresql")

ID = 128  # longest id a client may send
SHOWN_TYPES = "type IN ('impression', 'click')"  # the events of lists shown (``ix_events_shown``)

events = Table(
    "events",
    metadata,
    Column("event_id", String(ID), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("profile_key", String(ID + 2), nullable=False),
    Column("user_id", String(ID)),
    Column("anonymous_id", String(ID)),
    Column("item_id", String(ID)),
    Column("occurred_at_ms", BigInteger, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("value", Float),
    Column("properties", Document),
    Column("context", Document),
    Column("decision_id", String(ID)),
    Column("payload_hash", String(32), nullable=False),
    Column("source", String(64), nullable=False),
    # The number of the write that last inserted or changed the row (``event_sequence``): the
    # lake copies the rows of the writes after the last one it holds. Rows stored before the
    # column existed have 0.
    Column("write_seq", BigInteger, nullable=False),
    Index("ix_events_profile_time", "profile_key", "occurred_at_ms"),
    Index("ix_events_occurred_at", "occurred_at_ms"),
    Index("ix_events_write_seq", "write_seq"),
    # ``Storage.shown_columns``: the impressions and clicks, without a scan of every event.
    Index(
        "ix_events_shown",
        "occurred_at_ms",
        "event_id",
        sqlite_where=text(SHOWN_TYPES),
        postgresql_where=text(SHOWN_TYPES),
    ),
)

# One row: a random id of this event log, and on SQLite the number of the last write that
# inserted or changed events. SQLite's writers take one lock (BEGIN IMMEDIATE), so the numbers
# grow in commit order: a snapshot that holds write n holds every write before it. PostgreSQL
# numbers a write by its transaction id instead (``SqlEventLog.write_number``). The id tells a
# lake copied from another store (or from a restored one) from this one's.
event_sequence = Table(
    "event_sequence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("log_id", String(32), nullable=False),
    Column("last", BigInteger, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("quarantine_id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(ID)),
    Column("code", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Column("path", String(512)),
    Column("batch_index", Integer),
    Column("raw", Text, nullable=False),
    Column("source", String(64), nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("replayed_at_ms", BigInteger),
    Column("replayed_event_id", String(ID)),
    Index("ix_quarantine_code", "code"),
)

profiles = Table(
    "profiles",
    metadata,
    Column("profile_key", String(ID + 2), primary_key=True),
    Column("state", Document, nullable=False),
    Column("traits", Document),
    Column("updated_at_ms", BigInteger, nullable=False),
)

aliases = Table(
    "aliases",
    metadata,
    Column("alias_key", String(ID + 2), primary_key=True),
    Column("profile_key", String(ID + 2), nullable=False, index=True),
    Column("created_at_ms", BigInteger, nullable=False),
)

items = Table(
    "items",
    metadata,
    Column("item_id", String(ID), primary_key=True),
    Column("title", Text),
    Column("categories", Document, nullable=False),
    Column("tags", Document, nullable=False),
    Column("price", Float),
    Column("available", Boolean, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("attributes", Document, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_items_updated_at", "updated_at_ms"),  # Catalog.written_since
)

# One row: a counter every write to `items` bumps, so caches of catalog data (item_cache) can
# tell whether they still hold what a transaction would read.
catalog_version = Table(
    "catalog_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Document, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("revoked_at_ms", BigInteger),
)

# Every committed write that changed profiles, in commit order (writers take one lock): other
# processes on the same store follow it to drop what their caches hold of those people
# (`persona serve --workers N`, an import from the command line beside a running server).
# `profile_keys` is a JSON array, or NULL when the write did not say which profiles it changed.
# Rows older than a minute are deleted by the writers.
changes = Table(
    "changes",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("profile_keys", Text),
    sqlite_autoincrement=True,
)

# Named leases: which process does a job now (the background jobs of `persona serve`). A holder
# renews its lease before it expires; once expired, anyone may take it.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
)
