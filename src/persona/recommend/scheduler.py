"""Retraining on a schedule inside `persona serve`, with champion/challenger promotion."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from persona.recommend.training import NotEnoughDataError, train_model_set

if TYPE_CHECKING:
    from persona.engine import Engine

log = logging.getLogger(__name__)


class RetrainScheduler:
    """A daemon thread that retrains every ``retrain_interval_seconds`` (0: never)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._interval = engine.settings.retrain_interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retrain", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()

    def run_once(self) -> None:
        engine = self._engine
        try:
            outcome = train_model_set(
                engine.storage,
                engine.recommendations.registry,
                engine.clock,
                engine.settings.event_weights,
            )
        except NotEnoughDataError:
            log.info("scheduled retraining skipped: no interactions yet")
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
