"""Retraining on a schedule inside `persona serve`, with champion/challenger promotion."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from persona.errors import NothingToLearnError
from persona.jobs import PeriodicJob
from persona.recommend.training import train_model_set

if TYPE_CHECKING:
    from persona.engine import Engine

log = logging.getLogger(__name__)


def retrain(engine: Engine) -> None:
    """Train a challenger; promote and reload it when it is not worse than the champion."""
    try:
        outcome = train_model_set(
            engine.storage,
            engine.recommendations.registry,
            engine.clock,
            engine.settings.event_weights,
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
        engine.recommendations.reload()


def retrain_job(engine: Engine) -> PeriodicJob:
    return PeriodicJob("retrain", engine.settings.retrain_interval_seconds, lambda: retrain(engine))
