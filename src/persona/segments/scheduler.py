"""Scheduled re-evaluation of every segment inside `persona serve` (windows expire with time)."""

from __future__ import annotations

import logging

from persona.jobs import PeriodicJob
from persona.segments.service import SegmentService

log = logging.getLogger(__name__)


def refresh_segments(segments: SegmentService) -> None:
    """One refresh of every segment; a failure leaves the memberships as they were."""
    try:
        summary = segments.refresh()
    except Exception:
        log.exception("segment refresh failed; memberships stay as they were")
        return
    changed = {name: c for name, c in summary.changes.items() if c != (0, 0)}
    if changed:
        log.info("segments refreshed (entered, exited): %s", changed)


def segment_refresh_job(segments: SegmentService, interval_seconds: float) -> PeriodicJob:
    return PeriodicJob("segment-refresh", interval_seconds, lambda: refresh_segments(segments))
