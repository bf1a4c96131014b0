"""Prediction definitions and each person's calibrated probability for each of them."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from persona.storage.records import PredictionRecord
from persona.storage.sql.common import chunks, driver_connection, is_sqlite
from persona.storage.tables.predictions import predictions, profile_scores

WRITE_CHUNK = 2_000
_SCORES = "SELECT name, probability FROM profile_scores WHERE profile_key = %s ORDER BY name"
_SCORES_QMARK = _SCORES.replace("%s", "?")


class SqlPredictionStore:
    """Prediction tables on the connection of one unit of work."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def definitions(self) -> list[PredictionRecord]:
        rows = self._c.execute(select(predictions).order_by(predictions.c.name))
        return [_record(row._mapping) for row in rows]

    def get(self, name: str) -> PredictionRecord | None:
        row = self._c.execute(select(predictions).where(predictions.c.name == name)).first()
        return _record(row._mapping) if row else None

    def insert(self, record: PredictionRecord) -> None:
        self._c.execute(
            predictions.insert().values(
                {name: getattr(record, name) for name in PredictionRecord.__slots__}
            )
        )

    def delete(self, name: str) -> None:
        self._c.execute(delete(profile_scores).where(profile_scores.c.name == name))
        self._c.execute(delete(predictions).where(predictions.c.name == name))

    def record_training(self, name: str, at_ms: int, evaluation: dict[str, Any]) -> None:
        self._c.execute(
            update(predictions)
            .where(predictions.c.name == name)
            .values(trained_at_ms=at_ms, evaluation=evaluation)
        )

    def replace_scores(
        self, name: str, keys: Sequence[str], probabilities: Sequence[float], at_ms: int
    ) -> None:
        """Every score of ``name`` becomes exactly these (people without one lose theirs)."""
        s = profile_scores
        self._c.execute(delete(s).where(s.c.name == name))
        rows = [
            {"profile_key": k, "name": name, "probability": float(p), "scored_at_ms": at_ms}
            for k, p in zip(keys, probabilities, strict=True)
        ]
        for chunk in chunks(rows, WRITE_CHUNK):
            self._c.execute(s.insert(), chunk)

    def forget(self, profile_keys: Collection[str]) -> None:
        s = profile_scores
        for chunk in chunks(sorted(profile_keys)):
            self._c.execute(delete(s).where(s.c.profile_key.in_(chunk)))

    def scores_of(self, profile_key: str) -> dict[str, float]:
        """One profile's scores: the profile read's lean path (driver-level SQL, one parameter).

        Every profile read runs this; building and compiling a statement would cost more than
        running it.
        """
        if is_sqlite(self._c):
            rows = driver_connection(self._c).execute(_SCORES_QMARK, (profile_key,))
        else:
            rows = self._c.exec_driver_sql(_SCORES, (profile_key,))
        return {name: float(p) for name, p in rows}

    def scores_by_profile(self, profile_keys: Collection[str]) -> dict[str, dict[str, float]]:
        s = profile_scores
        found: dict[str, dict[str, float]] = {}
        for chunk in chunks(profile_keys):
            query = select(s.c.profile_key, s.c.name, s.c.probability).where(
                s.c.profile_key.in_(chunk)
            )
            for key, name, probability in self._c.execute(query):
                found.setdefault(key, {})[name] = float(probability)
        return found

    def all_scores(self) -> Iterator[tuple[str, dict[str, float]]]:
        """(profile key, {name: probability}) for everyone with a score, by profile key."""
        s = profile_scores
        query = select(s.c.profile_key, s.c.name, s.c.probability).order_by(
            s.c.profile_key, s.c.name
        )
        current: str | None = None
        scores: dict[str, float] = {}
        for key, name, probability in self._c.execution_options(yield_per=10_000).execute(query):
            if key != current:
                if current is not None:
                    yield current, scores
                current, scores = key, {}
            scores[name] = float(probability)
        if current is not None:
            yield current, scores


def _record(m: Any) -> PredictionRecord:
    return PredictionRecord(**{name: m[name] for name in PredictionRecord.__slots__})
