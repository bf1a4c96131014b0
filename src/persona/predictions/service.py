"""Propensity predictions: definitions, training from the event history, stored scores.

Training reads the events once (only those before ``as_of`` when given), trains and evaluates
each prediction (``propensity.train_propensity``), and replaces that prediction's scores in one
write transaction. Scores are read back by profile reads (``profile_facet``), by both segment
evaluators (``profile.scores.<name>``) and by ``persona scores``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from pydantic import Strict, TypeAdapter, ValidationError

from persona.clock import Clock
from persona.documents import EventType
from persona.errors import ConflictError, InvalidRequestError, NotFoundError
from persona.ingest.service import AppliedBatch
from persona.predictions.events import EventLog, load_event_log
from persona.predictions.propensity import Evaluation, PropensityConfig, train_propensity
from persona.storage.protocols import Storage, UnitOfWork
from persona.storage.records import PredictionRecord

# The rule of the events' ``type`` field: a prediction names a type that events can have.
_EVENT_TYPE = TypeAdapter(Annotated[EventType, Strict()])
# A name must be usable in rules as ``profile.scores.<name>``.
PREDICTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_HORIZON_DAYS = 3650


@dataclass(frozen=True)
class TrainingResult:
    name: str
    evaluation: Evaluation
    scored: int
    examples: int
    seconds: float


class PredictionService:
    def __init__(self, storage: Storage, clock: Clock, config: PropensityConfig) -> None:
        self._storage = storage
        self._clock = clock
        self.config = config

    # -- definitions ---------------------------------------------------------------------------
    def create(
        self, name: str, event_type: str, horizon_days: int, description: str = ""
    ) -> PredictionRecord:
        """Define a prediction ("will have ``event_type`` within ``horizon_days``")."""
        if not PREDICTION_NAME.fullmatch(name):
            raise InvalidRequestError(
                f"{name!r} is not a prediction name: 1 to 64 of a-z, 0-9 and _, starting with a"
                " letter (it is used in rules as profile.scores.<name>)"
            )
        if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
            raise InvalidRequestError(f"horizon_days must be from 1 to {MAX_HORIZON_DAYS}")
        try:
            _EVENT_TYPE.validate_python(event_type)
        except ValidationError as exc:
            reason = exc.errors(include_url=False)[0]["msg"]
            raise InvalidRequestError(
                f"{event_type!r} is not an event type as events take it: {reason}"
            ) from None
        record = PredictionRecord(
            name, event_type, horizon_days, description, self._clock.now_ms(), None, None
        )
        with self._storage.write() as uow:
            store = uow.predictions
            if store.get(name) is not None:
                raise ConflictError(f"a prediction named {name!r} exists")
            store.insert(record)
        return record

    def definitions(self) -> list[PredictionRecord]:
        with self._storage.read() as uow:
            return uow.predictions.definitions()

    def get(self, name: str) -> PredictionRecord:
        with self._storage.read() as uow:
            record = uow.predictions.get(name)
        if record is None:
            raise NotFoundError(f"no prediction named {name!r}")
        return record

    def delete(self, name: str) -> None:
        """Remove a prediction and every score of it."""
        with self._storage.write() as uow:
            store = uow.predictions
            if store.get(name) is None:
                raise NotFoundError(f"no prediction named {name!r}")
            store.delete(name)

    # -- training ------------------------------------------------------------------------------
    def load_events(self, as_of_ms: int | None = None) -> EventLog:
        with self._storage.read() as uow:
            return load_event_log(uow.events, as_of_ms)

    def train(
        self, name: str, *, as_of_ms: int | None = None, log: EventLog | None = None
    ) -> TrainingResult:
        """Train one prediction on the events before ``as_of_ms`` and store everyone's score.

        Scores are as of ``as_of_ms`` (default: just after the newest event), so a backtest's
        scores can be checked against what happened after it.
        """
        started = time.perf_counter()
        record = self.get(name)
        log = log if log is not None else self.load_events(as_of_ms)
        trained = train_propensity(
            log, record.event_type, record.horizon_days, end_ms=as_of_ms, config=self.config
        )
        now = self._clock.now_ms()
        with self._storage.write() as uow:
            store = uow.predictions
            if store.get(name) is None:
                raise NotFoundError(f"prediction {name!r} was deleted during training")
            store.replace_scores(name, trained.keys, trained.probabilities.tolist(), now)
            summary = trained.evaluation.to_json()
            summary.update(
                {
                    "calibration_method": trained.model.calibration,
                    "examples": trained.examples,
                    "scored_as_of_ms": trained.scored_at_ms,
                    "trained_before_ms": as_of_ms,
                }
            )
            store.record_training(name, now, summary)
        return TrainingResult(
            name,
            trained.evaluation,
            len(trained.keys),
            trained.examples,
            time.perf_counter() - started,
        )

    def train_all(self, as_of_ms: int | None = None) -> list[TrainingResult]:
        """Train every defined prediction from one read of the events."""
        records = self.definitions()
        if not records:
            return []
        log = self.load_events(as_of_ms)
        return [self.train(r.name, as_of_ms=as_of_ms, log=log) for r in records]

    def on_events(self, uow: UnitOfWork, applied: AppliedBatch) -> None:
        """Ingest listener: an anonymous profile merged into a known person loses its scores
        (the person's own scores stand until the next training)."""
        if applied.merged_away:
            uow.predictions.forget(applied.merged_away)

    # -- reading scores ------------------------------------------------------------------------
    def profile_facet(self, uow: UnitOfWork, profile_key: str) -> dict[str, dict[str, float]]:
        """The ``scores`` field of a profile read, from the read's own transaction."""
        return {"scores": uow.predictions.scores_of(profile_key)}

    def scores_of(self, profile_key: str) -> dict[str, float]:
        with self._storage.read() as uow:
            return uow.predictions.scores_of(profile_key)

    def export(self) -> Iterator[tuple[str, dict[str, float]]]:
        """(profile key, scores) for everyone with a score, in one read snapshot."""
        with self._storage.read() as uow:
            yield from uow.predictions.all_scores()
