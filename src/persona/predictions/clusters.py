"""Behavioural clusters as segments of kind ``cluster``, kept current as profiles change.

Training (``train``) fits a ``ClusterModel`` on every stored profile state (or, for a backtest,
on states folded from the events before ``as_of``), writes it to ``<home>/clusters/model.json``,
upserts one segment ``cluster_<id>`` per cluster (its description: what sets it apart) and
reassigns everyone, writing memberships with history as rule segments do.

Reassignment as profiles change happens in an ingest listener (``on_events``), inside the ingest
transaction and before the segment listener: a person whose profile moves nearer another
centroid changes cluster with the event that moved it, and a rule using ``segment("cluster_3")``
sees the new membership in the same transaction. Between events nothing is reassigned (the
features that age, such as days since last seen, are re-read at the next event or retrain).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from persona.clock import Clock
from persona.errors import ConflictError
from persona.ingest.service import AppliedBatch
from persona.predictions.clustering import (
    ClusterConfig,
    ClusterModel,
    ProfileFacts,
    StoredFacts,
    segment_name,
    train_clusters,
)
from persona.predictions.events import states_as_of
from persona.profiles.aggregate import AggregateRules
from persona.storage.protocols import SegmentStore, Storage, UnitOfWork
from persona.storage.records import SegmentRecord

CLUSTER = "cluster"
RETIRED = "retired: no cluster has this id since the last training"


@dataclass(frozen=True)
class ClusterSummary:
    cluster_id: int
    segment: str
    size: int
    description: str


@dataclass(frozen=True)
class ClusterTraining:
    model: ClusterModel
    people: int
    entered: int
    exited: int
    seconds: float


def describe_text(model: ClusterModel, index: int) -> str:
    return ", ".join(d.text() for d in model.descriptions[index])


class ClusterService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        rules: AggregateRules,
        config: ClusterConfig,
        model_path: Path,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._rules = rules
        self.config = config
        self.model_path = model_path
        self._lock = threading.Lock()
        self._cached: tuple[float, ClusterModel | None] | None = None

    def model(self) -> ClusterModel | None:
        """The saved model, re-read when the file changes (another process may retrain)."""
        try:
            stamp = self.model_path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        with self._lock:
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
        model = ClusterModel.load(self.model_path)
        with self._lock:
            self._cached = (stamp, model)
        return model

    # -- training ------------------------------------------------------------------------------
    def train(self, as_of_ms: int | None = None) -> ClusterTraining:
        """Fit on every profile (as of ``as_of_ms`` when given) and reassign everyone."""
        started = time.perf_counter()
        now = self._clock.now_ms() if as_of_ms is None else as_of_ms
        states: Mapping[str, ProfileFacts]
        with self._storage.read() as uow:
            if as_of_ms is None:
                states = {
                    key: StoredFacts.of(state)
                    for key, state in uow.profiles.all_states(StoredFacts.FIELDS)
                    if state.get("event_count")
                }
            else:
                states = states_as_of(uow, as_of_ms, self._rules)
        keys = sorted(states)
        model, assigned = train_clusters([states[k] for k in keys], now, self.config, self.model())
        model.trained_before_ms = as_of_ms
        model.seconds = time.perf_counter() - started
        with self._storage.write() as uow:
            store = uow.segments
            self._upsert_segments(store, model)
            entered, exited = _reassign(
                store, model, dict(zip(keys, assigned, strict=True)), self._clock.now_ms()
            )
            model.save(self.model_path)
        return ClusterTraining(model, len(keys), entered, exited, model.seconds)

    def _upsert_segments(self, store: SegmentStore, model: ClusterModel) -> None:
        now = self._clock.now_ms()
        existing = {d.name: d for d in store.definitions()}
        current = set()
        for index, cluster_id in enumerate(model.ids):
            name = segment_name(cluster_id)
            current.add(name)
            description = describe_text(model, index)
            found = existing.get(name)
            if found is None:
                store.insert(SegmentRecord(name, CLUSTER, None, description, now, now))
            elif found.kind != CLUSTER:
                raise ConflictError(
                    f"segment {name!r} exists and is not a cluster; rename it to train clusters"
                )
            else:
                store.replace(
                    SegmentRecord(name, CLUSTER, None, description, found.created_at_ms, now)
                )
        for name, found in existing.items():
            if found.kind == CLUSTER and name not in current and found.description != RETIRED:
                store.replace(SegmentRecord(name, CLUSTER, None, RETIRED, found.created_at_ms, now))

    # -- real time -----------------------------------------------------------------------------
    def on_events(self, uow: UnitOfWork, applied: AppliedBatch) -> None:
        """Ingest listener: move each touched profile to its nearest centroid."""
        model = self.model()
        keys = sorted(applied.touched)
        if model is None or not keys:
            return
        states = [applied.states[k] for k in keys]
        assigned = model.assign(model.schema.matrix(states, applied.now_ms))
        assignment = dict(zip(keys, assigned, strict=True))
        _reassign(uow.segments, model, assignment, applied.now_ms, only=keys)

    # -- reading -------------------------------------------------------------------------------
    def clusters(self) -> list[ClusterSummary]:
        model = self.model()
        if model is None:
            return []
        with self._storage.read() as uow:
            store = uow.segments
            return [
                ClusterSummary(
                    cluster_id,
                    segment_name(cluster_id),
                    store.member_count(segment_name(cluster_id)),
                    describe_text(model, index),
                )
                for index, cluster_id in enumerate(model.ids)
            ]


def _reassign(
    store: SegmentStore,
    model: ClusterModel,
    assigned: Mapping[str, int],
    now_ms: int,
    only: Sequence[str] | None = None,
) -> tuple[int, int]:
    """Make cluster memberships match ``assigned``; only the changes are written.

    With ``only`` (real time) just those people are considered; without it (training) everyone
    in a cluster segment who is not in ``assigned`` leaves it.
    """
    cluster_segments = {d.name for d in store.definitions() if d.kind == CLUSTER}
    wanted: dict[str, set[str]] = {name: set() for name in cluster_segments}
    for key, cluster_id in assigned.items():
        wanted.setdefault(segment_name(cluster_id), set()).add(key)
    if only is None:
        current = {name: store.open_members(name) for name in cluster_segments}
    else:
        current = {name: set() for name in cluster_segments}
        for key, segments in store.open_memberships_of(only).items():
            for name in segments & cluster_segments:
                current[name].add(key)
    entered = exited = 0
    for name in sorted(set(wanted) | set(current)):
        now_in, then_in = wanted.get(name, set()), current.get(name, set())
        store.enter(name, now_in - then_in, now_ms)
        store.exit(name, then_in - now_in, now_ms)
        entered += len(now_in - then_in)
        exited += len(then_in - now_in)
    return entered, exited
