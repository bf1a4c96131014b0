"""Ingest: event schema, validation, dedupe, quarantine and bulk import; the listeners that
act inside each ingest transaction get the batch it applied (``AppliedBatch``).

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.ingest.activity import (
    IngestActivity,
    RejectionCount,
    Series,
    StoredTotals,
)
from persona.ingest.importer import (
    ImportFormatError,
    ImportSummary,
    count_rows,
    import_events,
    import_items,
)
from persona.ingest.schema import (
    EventIn,
    IngestResponse,
    QuarantineEntry,
    QuarantinePage,
    parse_timestamp,
)
from persona.ingest.service import (
    AppliedBatch,
    IngestService,
    Rejection,
    ValidEvent,
)
from persona.ingest.settings import IngestSettings

__all__ = [
    "AppliedBatch",
    "EventIn",
    "ImportFormatError",
    "ImportSummary",
    "IngestActivity",
    "IngestResponse",
    "IngestService",
    "IngestSettings",
    "QuarantineEntry",
    "QuarantinePage",
    "Rejection",
    "RejectionCount",
    "Series",
    "StoredTotals",
    "ValidEvent",
    "count_rows",
    "import_events",
    "import_items",
    "parse_timestamp",
]
