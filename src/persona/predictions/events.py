"""The event history as arrays, and profile states folded from it as of a moment.

Every model of this domain learns from events strictly before a cutoff. Reading them through
``load_event_log(..., before_ms=...)`` is what makes ``persona train --as-of`` hold for clusters
and propensity alike: nothing at or after the cutoff is ever read from the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from persona.profiles.aggregate import AggregateRules, FoldEvent, ProfileState
from persona.storage.protocols import EventLog as StoredEvents
from persona.storage.protocols import UnitOfWork

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BATCH = 50_000


@dataclass(frozen=True)
class EventLog:
    """One row per event: person index, event type index, time and value (NaN when none).

    ``keys[p]`` is the profile key of person ``p`` and ``type_names[c]`` the name of type ``c``.
    Rows are in time order.
    """

    keys: list[str]
    type_names: list[str]
    people: IntArray
    types: IntArray
    times_ms: IntArray
    values: FloatArray

    @classmethod
    def from_rows(
        cls, rows: list[tuple[str, str, int, float | None]], keys: list[str] | None = None
    ) -> EventLog:
        """Rows of (profile key, type, time ms, value), in any order."""
        rows = sorted(rows, key=lambda row: row[2])
        key_index = {key: i for i, key in enumerate(keys or [])}
        type_index: dict[str, int] = {}
        people = [key_index.setdefault(key, len(key_index)) for key, _, _, _ in rows]
        types = [type_index.setdefault(kind, len(type_index)) for _, kind, _, _ in rows]
        return cls(
            keys=list(key_index),
            type_names=list(type_index),
            people=np.asarray(people, dtype=np.int64),
            types=np.asarray(types, dtype=np.int64),
            times_ms=np.asarray([row[2] for row in rows], dtype=np.int64),
            values=np.asarray(
                [np.nan if row[3] is None else row[3] for row in rows], dtype=np.float64
            ),
        )

    def __len__(self) -> int:
        return len(self.times_ms)

    def type_code(self, name: str) -> int:
        """The index of an event type, or -1 when no event has it."""
        try:
            return self.type_names.index(name)
        except ValueError:
            return -1

    def before(self, cutoff_ms: int) -> EventLog:
        """The same people and types, only the events strictly before ``cutoff_ms``."""
        keep = self.times_ms < cutoff_ms
        return EventLog(
            self.keys,
            self.type_names,
            self.people[keep],
            self.types[keep],
            self.times_ms[keep],
            self.values[keep],
        )

    @property
    def end_ms(self) -> int:
        """Just after the newest event (0 for an empty log)."""
        return int(self.times_ms.max()) + 1 if len(self) else 0

    @property
    def start_ms(self) -> int:
        return int(self.times_ms.min()) if len(self) else 0


def load_event_log(events: StoredEvents, before_ms: int | None = None) -> EventLog:
    """Every stored event (only those before ``before_ms`` when given), in time order."""
    rows = events.scan(
        ("profile_key", "type", "occurred_at_ms", "value"), before_ms=before_ms, batch_size=BATCH
    )
    key_index: dict[str, int] = {}
    type_index: dict[str, int] = {}
    people: list[int] = []
    types: list[int] = []
    times: list[int] = []
    values: list[float] = []
    for key, kind, at, value in rows:
        people.append(key_index.setdefault(key, len(key_index)))
        types.append(type_index.setdefault(kind, len(type_index)))
        times.append(at)
        values.append(np.nan if value is None else value)
    return EventLog(
        keys=list(key_index),
        type_names=list(type_index),
        people=np.asarray(people, dtype=np.int64),
        types=np.asarray(types, dtype=np.int64),
        times_ms=np.asarray(times, dtype=np.int64),
        values=np.asarray(values, dtype=np.float64),
    )


def states_as_of(
    uow: UnitOfWork,
    before_ms: int,
    rules: AggregateRules,
    categories_of: Mapping[str, list[str]] | None = None,
) -> dict[str, ProfileState]:
    """Profile states folded from the events before ``before_ms`` only (for backtesting).

    The fold is the one ingest uses, so a state as of "now" equals the stored one.
    """
    if categories_of is None:
        categories_of = uow.catalog.all_categories()
    rows = uow.events.scan(
        ("profile_key", "event_id", "type", "occurred_at_ms", "item_id", "value"),
        before_ms=before_ms,
        order_by=("profile_key",),
        batch_size=BATCH,
    )
    grouped: dict[str, list[tuple[FoldEvent, list[str]]]] = {}
    for key, event_id, kind, at, item_id, value in rows:
        event = FoldEvent(event_id, kind, at, item_id, value)
        grouped.setdefault(key, []).append((event, categories_of.get(item_id or "", [])))
    states: dict[str, ProfileState] = {}
    for key, folded in grouped.items():
        state = ProfileState()
        state.apply_many(folded, rules)
        states[key] = state
    return states
