"""Metrics and structured logs.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.observability.logging import (
    configure_logging,
)
from persona.observability.metrics import (
    Metrics,
    metrics_of_processes,
    serve_metrics,
)

__all__ = [
    "Metrics",
    "configure_logging",
    "metrics_of_processes",
    "serve_metrics",
]
