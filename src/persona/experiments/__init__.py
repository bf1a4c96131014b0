"""Experiments: what the decision log says about each placement's variants (results, and the
statistics behind every number). Assignment to variants is an allocation policy of ``decide``.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.experiments.results import (
    ExperimentService,
    with_noisy_counts,
)
from persona.experiments.schema import (
    ExperimentList,
    ExperimentResults,
    SequentialPath,
)

__all__ = [
    "ExperimentList",
    "ExperimentResults",
    "ExperimentService",
    "SequentialPath",
    "with_noisy_counts",
]
