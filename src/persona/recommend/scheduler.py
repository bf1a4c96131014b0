"""Retraining on a schedule inside `persona serve`, with champion/challenger promotion."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from persona.clock import Clock
from persona.errors import NothingToLearnError
from persona.jobs import PeriodicJob
from persona.recommend.service import RecommendationService
from persona.recommend.training import train_model_set
from persona.storage.protocols import InteractionSource, Storage

log = logging.getLogger(__name__)


def retrain(
    storage: Storage,
    recommendations: RecommendationService,
    clock: Clock,
    event_weights: Mapping[str, float],
    events: InteractionSource | None = None,
) -> None:
    """Train a challenger (on the events of ``events``, the lake, when given); promote and
    reload it when it is not worse than the champion."""
    try:
        outcome = train_model_set(
            storage, recommendations.registry, clock, event_weights, events=events
        )
    except NothingToLearnError as exc:
        log.info("scheduled retraining skipped: %s", exc.detail)
        return
    except Exception:
        log.exception("scheduled retraining failed; the serving model set stays")
        return
    log.info(
        "trained %s (validation %s); promoted: %s",
        outcome.version.version,
        outcome.version.metrics,
        outcome.promoted,
    )
    if outcome.promoted:
        recommendations.reload()


def retrain_job(
    storage: Storage,
    recommendations: RecommendationService,
    clock: Clock,
    event_weights: Mapping[str, float],
    interval_seconds: float,
    events: InteractionSource | None = None,
) -> PeriodicJob:
    return PeriodicJob(
        "retrain",
        interval_seconds,
        lambda: retrain(storage, recommendations, clock, event_weights, events),
    )
