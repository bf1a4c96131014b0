"""Behavioural clusters: profile features, scaled, grouped by MiniBatchKMeans.

- features come from a profile state (``ProfileState``, or the ``StoredFacts`` a training reads
  of every stored state) at a moment: event volume, recency,
  tenure, purchases and revenue, sessions, counts of the most common event types and the share
  of interest in the most common categories; heavy-tailed quantities are taken as ``log1p``;
- ``StandardScaler`` puts every feature on one scale; k is chosen from a range by the
  silhouette score on a sample (the full score is quadratic in the number of people);
- a cluster is described by the features whose member mean lies furthest from everyone's mean,
  in standard deviations (z-scores of the cluster mean, top 3);
- ids are stable across retrains: old centroids are moved into the new scaled space and matched
  to the new ones by the Hungarian algorithm (``linear_sum_assignment``); a matched cluster keeps
  its id, an unmatched one gets an id never used before.

The model is plain JSON (numbers and names), so loading it executes nothing.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import silhouette_score

from persona.clock import DAY_MS
from persona.errors import NothingToLearnError
from persona.predictions.events import FloatArray
from persona.profiles import MICROS

BASE_FEATURES = (
    "events",
    "days_since_last_seen",
    "days_since_first_seen",
    "purchases",
    "revenue",
    "sessions",
    "events_per_session",
)
MODEL_VERSION = 1


class ProfileFacts(Protocol):
    """What clustering reads of a profile: a ``ProfileState`` has it all."""

    @property
    def counts(self) -> Mapping[str, int]: ...
    @property
    def event_count(self) -> int: ...
    @property
    def first_seen_ms(self) -> int | None: ...
    @property
    def last_seen_ms(self) -> int | None: ...
    @property
    def purchases(self) -> int: ...
    @property
    def revenue(self) -> float: ...
    @property
    def session_count(self) -> int: ...
    @property
    def affinity(self) -> Mapping[str, float]: ...


@dataclass(frozen=True, slots=True)
class StoredFacts:
    """``ProfileFacts`` of a stored state cut down to ``FIELDS`` (``all_states(FIELDS)``): a
    training reads every profile, and decoding whole states (their recent items above all)
    was most of clustering a million people."""

    FIELDS = (
        "counts",
        "event_count",
        "first_seen_ms",
        "last_seen_ms",
        "purchases",
        "revenue_micros",
        "sessions",
        "affinity",
    )

    counts: Mapping[str, int]
    event_count: int
    first_seen_ms: int | None
    last_seen_ms: int | None
    purchases: int
    revenue: float
    session_count: int
    affinity: Mapping[str, float]

    @classmethod
    def of(cls, state: Mapping[str, Any]) -> StoredFacts:
        return cls(
            state.get("counts") or {},
            int(state.get("event_count") or 0),
            state.get("first_seen_ms"),
            state.get("last_seen_ms"),
            int(state.get("purchases") or 0),
            int(state.get("revenue_micros") or 0) / MICROS,
            len(state.get("sessions") or ()),
            state.get("affinity") or {},
        )


class NotEnoughPeopleError(NothingToLearnError):
    status, code, title = 409, "not_enough_people", "Not enough people to cluster"


@dataclass(frozen=True)
class ClusterConfig:
    k_min: int = 2
    k_max: int = 8
    silhouette_sample: int = 5_000
    # People each k is fitted on (a sample past this: on a million profiles, fitting every k
    # on everyone took 26 s of a training and moved the centroids by little).
    fit_sample: int = 100_000
    top_event_types: int = 6
    top_categories: int = 8
    seed: int = 0


@dataclass(frozen=True)
class FeatureSchema:
    """The feature names, fixed at training so that assignment computes the same vector."""

    event_types: tuple[str, ...]
    categories: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [
            *BASE_FEATURES,
            *(f"count.{t}" for t in self.event_types),
            *(f"affinity.{c}" for c in self.categories),
        ]

    @classmethod
    def from_states(cls, states: Iterable[ProfileFacts], config: ClusterConfig) -> FeatureSchema:
        types: Counter[str] = Counter()
        categories: Counter[str] = Counter()
        for state in states:
            types.update(state.counts)
            total = sum(state.affinity.values())
            if total > 0:
                categories.update({c: v / total for c, v in state.affinity.items()})
        return cls(
            tuple(sorted(t for t, _ in types.most_common(config.top_event_types))),
            tuple(sorted(c for c, _ in categories.most_common(config.top_categories))),
        )

    def vector(self, state: ProfileFacts, now_ms: int) -> list[float]:
        last = state.last_seen_ms if state.last_seen_ms is not None else now_ms
        first = state.first_seen_ms if state.first_seen_ms is not None else now_ms
        sessions = max(state.session_count, 1)
        total_affinity = sum(state.affinity.values())
        return [
            math.log1p(state.event_count),
            math.log1p(max(now_ms - last, 0) / DAY_MS),
            math.log1p(max(now_ms - first, 0) / DAY_MS),
            math.log1p(state.purchases),
            math.log1p(max(state.revenue, 0.0)),
            math.log1p(state.session_count),
            math.log1p(state.event_count / sessions),
            *(math.log1p(state.counts.get(t, 0)) for t in self.event_types),
            *(
                state.affinity.get(c, 0.0) / total_affinity if total_affinity > 0 else 0.0
                for c in self.categories
            ),
        ]

    def matrix(self, states: Sequence[ProfileFacts], now_ms: int) -> FloatArray:
        width = len(self.names)
        if not states:
            return np.empty((0, width))
        return np.asarray([self.vector(s, now_ms) for s in states], dtype=np.float64)


@dataclass(frozen=True)
class ClusterDescription:
    feature: str
    z: float

    def text(self) -> str:
        return f"{'high' if self.z > 0 else 'low'} {self.feature} ({self.z:+.1f} sd)"


@dataclass
class ClusterModel:
    """What assigns a person to a cluster, and what each cluster is."""

    schema: FeatureSchema
    mean: FloatArray
    scale: FloatArray
    centroids: FloatArray  # k x features, in the scaled space
    ids: list[int]
    sizes: list[int]
    descriptions: list[list[ClusterDescription]]
    silhouettes: dict[int, float]
    next_id: int
    trained_at_ms: int
    trained_before_ms: int | None = None
    seconds: float = 0.0

    @property
    def k(self) -> int:
        return len(self.ids)

    def scaled(self, raw: FloatArray) -> FloatArray:
        return (raw - self.mean) / self.scale

    def assign(self, raw: FloatArray) -> list[int]:
        """The cluster id of each row of raw features (nearest centroid in the scaled space)."""
        if len(raw) == 0:
            return []
        scaled = self.scaled(raw)
        distances = ((scaled[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return [self.ids[i] for i in distances.argmin(axis=1)]

    def raw_centroids(self) -> FloatArray:
        return self.centroids * self.scale + self.mean

    # -- persistence -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": MODEL_VERSION,
            "event_types": list(self.schema.event_types),
            "categories": list(self.schema.categories),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "centroids": self.centroids.tolist(),
            "ids": self.ids,
            "sizes": self.sizes,
            "descriptions": [[[d.feature, d.z] for d in ds] for ds in self.descriptions],
            "silhouettes": {str(k): v for k, v in self.silhouettes.items()},
            "next_id": self.next_id,
            "trained_at_ms": self.trained_at_ms,
            "trained_before_ms": self.trained_before_ms,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ClusterModel:
        return cls(
            schema=FeatureSchema(tuple(doc["event_types"]), tuple(doc["categories"])),
            mean=np.asarray(doc["mean"], dtype=np.float64),
            scale=np.asarray(doc["scale"], dtype=np.float64),
            centroids=np.asarray(doc["centroids"], dtype=np.float64),
            ids=[int(i) for i in doc["ids"]],
            sizes=[int(n) for n in doc["sizes"]],
            descriptions=[
                [ClusterDescription(str(f), float(z)) for f, z in ds] for ds in doc["descriptions"]
            ],
            silhouettes={int(k): float(v) for k, v in doc["silhouettes"].items()},
            next_id=int(doc["next_id"]),
            trained_at_ms=int(doc["trained_at_ms"]),
            trained_before_ms=doc.get("trained_before_ms"),
            seconds=float(doc.get("seconds", 0.0)),
        )

    def save(self, path: Path) -> None:
        """Write atomically: a reader sees the old model or the new one, never half of one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.to_json()))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> ClusterModel | None:
        if not path.exists():
            return None
        return cls.from_json(json.loads(path.read_text()))


def choose_k(
    scaled: FloatArray, config: ClusterConfig
) -> tuple[int, dict[int, float], MiniBatchKMeans]:
    """Fit every k of the range (on a sample of ``fit_sample`` people at most); keep the one
    with the best (sampled) silhouette score."""
    n = len(scaled)
    k_max = min(config.k_max, n - 1)
    if n < 3 or k_max < config.k_min:
        raise NotEnoughPeopleError(
            f"{n} people with events; clustering needs more than {config.k_min}"
        )
    rng = np.random.default_rng(config.seed)
    sample = rng.choice(n, size=min(n, config.silhouette_sample), replace=False)
    fitted_on = scaled
    if n > config.fit_sample:
        fitted_on = scaled[np.sort(rng.choice(n, size=config.fit_sample, replace=False))]
    scores: dict[int, float] = {}
    best: tuple[float, int, MiniBatchKMeans] | None = None
    for k in range(config.k_min, k_max + 1):
        model = MiniBatchKMeans(
            n_clusters=k, random_state=config.seed, n_init=3, batch_size=1024
        ).fit(fitted_on)
        labels = model.predict(scaled[sample])
        if len(set(labels.tolist())) < 2:
            continue
        score = float(silhouette_score(scaled[sample], labels))
        scores[k] = score
        if best is None or score > best[0]:
            best = (score, k, model)
    if best is None:
        raise NotEnoughPeopleError("every person has the same features: nothing to cluster")
    return best[1], scores, best[2]


def match_ids(
    previous: ClusterModel | None,
    schema: FeatureSchema,
    mean: FloatArray,
    scale: FloatArray,
    centroids: FloatArray,
) -> tuple[list[int], int]:
    """Ids for new centroids: the Hungarian matching to the previous model's, then new ids.

    Old centroids are taken back to raw feature values, laid out in the new feature order (a
    feature the old model did not have sits at the new mean) and scaled by the new scaler.
    """
    if previous is None:
        return list(range(1, len(centroids) + 1)), len(centroids) + 1
    old_raw = previous.raw_centroids()
    old_names = previous.schema.names
    aligned = np.tile(mean, (len(old_raw), 1))
    for j, name in enumerate(schema.names):
        if name in old_names:
            aligned[:, j] = old_raw[:, old_names.index(name)]
    old_scaled = (aligned - mean) / scale
    cost = ((centroids[:, None, :] - old_scaled[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    ids = [0] * len(centroids)
    for r, c in zip(rows, cols, strict=True):
        ids[r] = previous.ids[c]
    next_id = previous.next_id
    for i in range(len(ids)):
        if ids[i] == 0:
            ids[i] = next_id
            next_id += 1
    return ids, next_id


def describe(
    scaled: FloatArray, labels: FloatArray, names: Sequence[str], k: int, top: int = 3
) -> list[list[ClusterDescription]]:
    """For each cluster, the ``top`` features whose member mean is furthest from the overall."""
    found = []
    for c in range(k):
        members = scaled[labels == c]
        z = members.mean(axis=0) if len(members) else np.zeros(scaled.shape[1])
        order = np.argsort(-np.abs(z))[:top]
        found.append([ClusterDescription(names[j], round(float(z[j]), 3)) for j in order])
    return found


def train_clusters(
    states: Sequence[ProfileFacts],
    now_ms: int,
    config: ClusterConfig,
    previous: ClusterModel | None = None,
) -> tuple[ClusterModel, list[int]]:
    """Fit a model on the states (as of ``now_ms``); return it and each state's cluster id."""
    schema = FeatureSchema.from_states(states, config)
    raw = schema.matrix(states, now_ms)
    mean = raw.mean(axis=0) if len(raw) else np.zeros(len(schema.names))
    scale = raw.std(axis=0) if len(raw) else np.ones(len(schema.names))
    scale = np.where(scale > 1e-12, scale, 1.0)
    scaled = (raw - mean) / scale
    k, scores, fitted = choose_k(scaled, config)
    centroids = np.asarray(fitted.cluster_centers_, dtype=np.float64)
    labels = np.asarray(fitted.predict(scaled))
    ids, next_id = match_ids(previous, schema, mean, scale, centroids)
    model = ClusterModel(
        schema=schema,
        mean=mean,
        scale=scale,
        centroids=centroids,
        ids=ids,
        sizes=[int((labels == c).sum()) for c in range(k)],
        descriptions=describe(scaled, labels, schema.names, k),
        silhouettes=scores,
        next_id=next_id,
        trained_at_ms=now_ms,
    )
    return model, [ids[c] for c in labels]


def segment_name(cluster_id: int) -> str:
    return f"cluster_{cluster_id}"
