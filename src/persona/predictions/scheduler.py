"""Training clusters and every prediction together: `persona train` and a job of `persona serve`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from persona.errors import NothingToLearnError, PersonaError
from persona.jobs import PeriodicJob
from persona.predictions.clusters import ClusterService, ClusterTraining
from persona.predictions.service import PredictionService, TrainingResult
from persona.segments.service import SegmentService

log = logging.getLogger(__name__)


@dataclass
class PredictiveTraining:
    clusters: ClusterTraining | None = None
    predictions: list[TrainingResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # nothing to learn from: not a failure
    problems: list[str] = field(default_factory=list)  # what failed to train, and why

    def note(self, model: str, exc: PersonaError) -> None:
        """Record why ``model`` was not trained: skipped, or failed."""
        found = self.skipped if isinstance(exc, NothingToLearnError) else self.problems
        found.append(f"{model}: {exc.detail}")


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

    A model with nothing (or too little) to learn from is reported in ``skipped``; one that
    failed otherwise, in ``problems``. Neither stops the others.
    """
    say = say or (lambda _: None)
    outcome = PredictiveTraining()
    say("clustering profiles")
    try:
        outcome.clusters = clusters.train(as_of_ms)
    except PersonaError as exc:
        outcome.note("clusters", exc)
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
                outcome.note(f"prediction {record.name}", exc)
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
        trained = [f"{r.name} ({r.scored} scored)" for r in outcome.predictions]
        if outcome.clusters is not None:
            trained.insert(0, f"clusters (k={outcome.clusters.model.k})")
        log.info("predictive models retrained: %s", ", ".join(trained) or "none")
        for skipped in outcome.skipped:
            log.info("predictive training skipped %s", skipped)
        for problem in outcome.problems:
            log.error("predictive training failed: %s", problem)

    return PeriodicJob("predictions-retrain", interval_seconds, run_once)
