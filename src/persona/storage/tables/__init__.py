"""The relational schema: the core tables (``core``) and those of each domain, on one
``metadata``. Migrations in ``migrations/`` create exactly this (a test checks).

Importing this package registers every table, so ``metadata`` is always the whole schema.
"""

from __future__ import annotations

from persona.storage.tables import decide, predictions, privacy, segments, stream
from persona.storage.tables.core import (
    ID,
    Document,
    aliases,
    api_keys,
    catalog_version,
    changes,
    event_sequence,
    events,
    items,
    leases,
    metadata,
    profiles,
    quarantine,
)

__all__ = [
    "ID",
    "Document",
    "aliases",
    "api_keys",
    "catalog_version",
    "changes",
    "decide",
    "event_sequence",
    "events",
    "items",
    "leases",
    "metadata",
    "predictions",
    "privacy",
    "profiles",
    "quarantine",
    "segments",
    "stream",
]
