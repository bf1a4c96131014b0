"""Segments: rule segments kept current in real time and refreshed in batch, and their
members.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.segments.scheduler import (
    segment_refresh_job,
)
from persona.segments.schema import (
    NAME_PATTERN,
    Member,
    MemberPage,
    Preview,
    PreviewIn,
    ProfileSegments,
    Segment,
    SegmentChange,
    SegmentIn,
    SegmentList,
    Stay,
    person,
)
from persona.segments.service import (
    SegmentService,
)
from persona.segments.settings import SegmentSettings
from persona.segments.spark import SparkMatching

__all__ = [
    "NAME_PATTERN",
    "Member",
    "MemberPage",
    "Preview",
    "PreviewIn",
    "ProfileSegments",
    "Segment",
    "SegmentChange",
    "SegmentIn",
    "SegmentList",
    "SegmentService",
    "SegmentSettings",
    "SparkMatching",
    "Stay",
    "person",
    "segment_refresh_job",
]
