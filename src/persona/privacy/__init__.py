"""Privacy: consent, personal data, erasure, export, retention, the audit log, and noisy
aggregates.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.privacy.aggregates import (
    MAX_EPSILON,
    MECHANISM,
    MIN_EPSILON,
    check_k_anonymity,
    noisy_count,
)
from persona.privacy.consent import (
    consent_holders_job,
)
from persona.privacy.export import (
    export_json_schema,
    write_json_schema,
)
from persona.privacy.retention import (
    retention_job,
)
from persona.privacy.schema import (
    AuditEntryOut,
    AuditPage,
    ConsentState,
    ErasureReportOut,
    SegmentSize,
    SubjectExport,
)
from persona.privacy.service import (
    PrivacyServices,
)
from persona.privacy.settings import PrivacySettings

__all__ = [
    "MAX_EPSILON",
    "MECHANISM",
    "MIN_EPSILON",
    "AuditEntryOut",
    "AuditPage",
    "ConsentState",
    "ErasureReportOut",
    "PrivacyServices",
    "PrivacySettings",
    "SegmentSize",
    "SubjectExport",
    "check_k_anonymity",
    "consent_holders_job",
    "export_json_schema",
    "noisy_count",
    "retention_job",
    "write_json_schema",
]
