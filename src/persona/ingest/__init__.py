"""Ingest: event schema, validation, dedupe, quarantine and bulk import; the listeners that
act inside each ingest transaction get the batch it applied (``AppliedBatch``).

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

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
    IngestLimits,
    IngestService,
    Rejection,
    ValidEvent,
)

__all__ = [
    "AppliedBatch",
    "EventIn",
    "ImportFormatError",
    "ImportSummary",
    "IngestLimits",
    "IngestResponse",
    "IngestService",
    "QuarantineEntry",
    "QuarantinePage",
    "Rejection",
    "ValidEvent",
    "count_rows",
    "import_events",
    "import_items",
    "parse_timestamp",
]
