"""Training clusters and every prediction together: `persona train` and a job of `persona serve`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from persona.errors import PersonaError
from persona.jobs import PeriodicJob
from persona.predictions.clusters import ClusterService, ClusterTraining
from persona.predictions.service import PredictionService, TrainingResult
from persona.segments.service import SegmentService

log = logging.getLogger(__name__)


@dataclass
class PredictiveTraining:
    clusters: ClusterTraining | None = None
    predictions: list[TrainingResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what could not be trained, and why


def train_predictive_models(
    clusters: ClusterService,
    predictions: PredictionService,
    segments: SegmentService,
    as_of_ms: int | None = None,
    say: Callable[[str], None] | None = None,
) -> PredictiveTraining:
    """Clusters, then every prediction, then a segment refresh so rules see the new values.

    With ``as_of_ms``, every model reads only the events before it, and clusters and scores are
    computed as of that moment (a backtest: compare them with what happened next).

    A model that lacks data is reported in ``problems`` and does not stop the others.
    """
    say = say or (lambda _: None)
    outcome = PredictiveTraining()
    say("clustering profiles")
    try:
        outcome.clusters = clusters.train(as_of_ms)
    except PersonaError as exc:
        outcome.problems.append(f"clusters: {exc.detail}")
    records = predictions.definitions()
    if records:
        say("reading events for predictions")
        log_of_events = predictions.load_events(as_of_ms)
        for record in records:
            say(f"training prediction {record.name}")
            try:
                outcome.predictions.append(
                    predictions.train(record.name, as_of_ms=as_of_ms, log=log_of_events)
                )
            except PersonaError as exc:
                outcome.problems.append(f"prediction {record.name}: {exc.detail}")
    say("refreshing segments")
    segments.refresh()  # memberships are about now: rules on scores and clusters see the new
    return outcome


def predictive_retrain_job(
    clusters: ClusterService,
    predictions: PredictionService,
    segments: SegmentService,
    interval_seconds: float,
) -> PeriodicJob:
    def run_once() -> None:
        outcome = train_predictive_models(clusters, predictions, segments)
        for problem in outcome.problems:
            log.warning("predictive training: %s", problem)

    return PeriodicJob("predictions-retrain", interval_seconds, run_once)
