"""Propensity: will a person have an event of some type within the next N days?

Training examples are (person, cutoff) pairs. The features of a pair come only from the events
before the cutoff (``build_features``); its label is whether the person had the target event in
``(cutoff, cutoff + horizon]``. Cutoffs step back from the end of the history by whole horizons:

    ... fit, fit, fit | calibrate | held-out test | end
                      c - 2h      c - h           c = end

- the classifier (LightGBM, boosted from the recency/frequency baseline) learns from the
  *fit* cutoffs;
- an isotonic map from its raw score to a probability is fitted on the *calibrate* cutoff;
- ROC-AUC, Brier score and a calibration table are measured on the *held-out* cutoff, whose
  label window is the last one and was seen by nothing above; a recency/frequency logistic
  regression is fitted on the same examples and measured on the same cutoff, as the bar;
- the model that scores people is then refitted by the same procedure shifted one horizon
  later (its calibration window ends at ``end``), and scores everyone as of ``end``.

The leakage rule: a feature may only depend on events before the cutoff. ``check_no_leakage``
proves it for a feature builder by comparing its output on the full history and on the history
truncated at the cutoff; training runs that check on every cutoff it uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from persona.clock import DAY_MS
from persona.errors import NothingToLearnError, PersonaError
from persona.predictions.events import EventLog, FloatArray, IntArray

FEATURES: tuple[str, ...] = (
    "days_since_last",
    "days_since_first",
    "events",
    "events_7d",
    "events_30d",
    "events_90d",
    "events_365d",
    "active_days",
    "active_days_30d",
    "active_days_90d",
    "days_between_active_days",
    "target_events",
    "target_events_30d",
    "target_events_90d",
    "days_since_last_target",
    "mean_value",
    "events_in_last_horizon",
)
HEURISTIC_FEATURES = ("days_since_last", "events")
MIN_POSITIVES = 5
TIE_BREAK = 1e-6  # the share of the raw score in an isotonic probability


class NotEnoughHistoryError(NothingToLearnError):
    """Too little history for the cutoffs a prediction needs, or only one kind of label."""

    status, code, title = 409, "not_enough_history", "Not enough history"


class FeatureLeakageError(PersonaError):
    """A feature changed when events after the cutoff were removed: it reads the future."""

    status, code, title = 500, "feature_leakage", "Feature leakage"


@dataclass(frozen=True)
class FeatureFrame:
    """Feature rows for the people with at least one event before the cutoff."""

    cutoff_ms: int
    people: IntArray  # person index (into EventLog.keys) of each row
    values: FloatArray  # rows x FEATURES, NaN where undefined (no target event yet)

    def same_as(self, other: FeatureFrame) -> bool:
        return bool(
            np.array_equal(self.people, other.people)
            and np.array_equal(self.values, other.values, equal_nan=True)
        )


FeatureBuilder = Callable[[EventLog, int, str, int], FeatureFrame]


def build_features(log: EventLog, cutoff_ms: int, event_type: str, horizon_ms: int) -> FeatureFrame:
    """The features of every person as of ``cutoff_ms``, from the events before it only."""
    past = log.before(cutoff_ms)  # the leakage rule, applied first and once
    n = len(log.keys)
    people, times = past.people, past.times_ms
    seen = np.bincount(people, minlength=n) > 0
    rows = np.flatnonzero(seen)
    age_days = (cutoff_ms - times) / DAY_MS

    def count(mask: npt.NDArray[np.bool_] | None = None) -> FloatArray:
        chosen = people if mask is None else people[mask]
        return np.bincount(chosen, minlength=n).astype(np.float64)

    def days_since(mask: npt.NDArray[np.bool_] | None = None) -> FloatArray:
        newest = np.full(n, -np.inf)
        chosen = slice(None) if mask is None else mask
        np.maximum.at(newest, people[chosen], times[chosen].astype(np.float64))
        return np.where(np.isfinite(newest), (cutoff_ms - newest) / DAY_MS, np.nan)

    first = np.full(n, np.inf)
    np.minimum.at(first, people, times.astype(np.float64))
    day_pairs = np.unique(people * 1_000_000 + (times // DAY_MS) % 1_000_000)
    day_people = day_pairs // 1_000_000
    day_age = (cutoff_ms // DAY_MS) - (day_pairs % 1_000_000)

    def active_days(within: float | None = None) -> FloatArray:
        chosen = day_people if within is None else day_people[day_age < within]
        return np.bincount(chosen, minlength=n).astype(np.float64)

    target = past.types == log.type_code(event_type)
    value_sum = np.bincount(people, weights=np.nan_to_num(past.values), minlength=n)
    value_n = np.bincount(people, weights=~np.isnan(past.values), minlength=n)
    all_active = active_days()
    since_first = np.where(np.isfinite(first), (cutoff_ms - first) / DAY_MS, np.nan)
    columns = {
        "days_since_last": days_since(),
        "days_since_first": since_first,
        "events": count(),
        "events_7d": count(age_days <= 7),
        "events_30d": count(age_days <= 30),
        "events_90d": count(age_days <= 90),
        "events_365d": count(age_days <= 365),
        "active_days": all_active,
        "active_days_30d": active_days(30),
        "active_days_90d": active_days(90),
        "days_between_active_days": since_first / np.maximum(all_active, 1.0),
        "target_events": count(target),
        "target_events_30d": count(target & (age_days <= 30)),
        "target_events_90d": count(target & (age_days <= 90)),
        "days_since_last_target": days_since(target),
        "mean_value": np.where(value_n > 0, value_sum / np.maximum(value_n, 1), np.nan),
        "events_in_last_horizon": count(age_days <= horizon_ms / DAY_MS),
    }
    values = np.column_stack([columns[name][rows] for name in FEATURES])
    return FeatureFrame(cutoff_ms, rows.astype(np.int64), values)


def labels(
    log: EventLog, people: IntArray, cutoff_ms: int, event_type: str, horizon_ms: int
) -> npt.NDArray[np.int64]:
    """1 when the person had ``event_type`` in ``(cutoff, cutoff + horizon]``, else 0."""
    hit = (
        (log.types == log.type_code(event_type))
        & (log.times_ms > cutoff_ms)
        & (log.times_ms <= cutoff_ms + horizon_ms)
    )
    positive = np.zeros(len(log.keys), dtype=np.int64)
    positive[np.unique(log.people[hit])] = 1
    return positive[people]


def check_no_leakage(
    builder: FeatureBuilder, log: EventLog, cutoff_ms: int, event_type: str, horizon_ms: int
) -> None:
    """Raise ``FeatureLeakageError`` unless ``builder`` ignores every event at/after the cutoff.

    The builder runs twice, on the full history and on the history cut at ``cutoff_ms``; a
    builder that respects the rule returns exactly the same frame both times.
    """
    full = builder(log, cutoff_ms, event_type, horizon_ms)
    truncated = builder(log.before(cutoff_ms), cutoff_ms, event_type, horizon_ms)
    if not full.same_as(truncated):
        raise FeatureLeakageError(
            f"features as of {cutoff_ms} change when later events are removed"
        )


@dataclass(frozen=True)
class Examples:
    features: FloatArray
    labels: npt.NDArray[np.int64]

    @classmethod
    def concat(cls, parts: Sequence[Examples]) -> Examples:
        return cls(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.labels for p in parts]),
        )

    @property
    def positives(self) -> int:
        return int(self.labels.sum())


def examples_at(
    log: EventLog,
    cutoff_ms: int,
    event_type: str,
    horizon_ms: int,
    builder: FeatureBuilder = build_features,
) -> Examples:
    frame = builder(log, cutoff_ms, event_type, horizon_ms)
    return Examples(frame.values, labels(log, frame.people, cutoff_ms, event_type, horizon_ms))


@dataclass(frozen=True)
class PropensityConfig:
    """Small trees and large leaves: positives are rare and the label is noisy."""

    fit_cutoffs: int = 24
    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 4
    min_child_samples: int = 100
    isotonic_min_labels: int = 50  # positives and negatives each, else Platt scaling
    seed: int = 0


@dataclass
class PropensityModel:
    """A LightGBM classifier, its calibration, and the heuristic it is compared to.

    The classifier is boosted from the recency/frequency logistic regression (its log-odds are
    the initial score), so trees learn corrections to a smooth baseline: with rare positives,
    trees alone rank the long-inactive majority in a few coarse ties, where the baseline still
    orders them by recency.

    Calibration is isotonic when the calibration slice has enough of both labels, otherwise
    Platt scaling (a logistic curve on the raw log-odds). Both keep the order of the raw
    scores: isotonic merges them into steps, whose ties the raw score breaks.
    """

    booster: lgb.Booster
    # the recency/frequency logistic regression, fitted on the same examples as the trees: the
    # initial score of the boosting, and the heuristic the model is compared to
    heuristic: LogisticRegression
    calibration: str = "none"  # "isotonic", "platt" or "none"
    calibration_x: FloatArray = field(default_factory=lambda: np.empty(0))
    calibration_y: FloatArray = field(default_factory=lambda: np.empty(0))

    def raw(self, features: FloatArray) -> FloatArray:
        margin = self.heuristic.decision_function(_heuristic_x(features)) + self.booster.predict(
            features, raw_score=True
        )
        return np.asarray(1.0 / (1.0 + np.exp(-margin)), dtype=np.float64)

    def probability(self, features: FloatArray) -> FloatArray:
        raw = self.raw(features)
        if self.calibration == "isotonic":
            # the isotonic map is a staircase: the people on one step would tie and lose the
            # order the classifier gave them; a vanishing share of the raw score keeps it
            stepped = np.interp(raw, self.calibration_x, self.calibration_y)
            return (1.0 - TIE_BREAK) * stepped + TIE_BREAK * raw
        if self.calibration == "platt":
            slope, intercept = self.calibration_x
            return np.asarray(1.0 / (1.0 + np.exp(-(slope * _logit(raw) + intercept))))
        return raw

    def heuristic_probability(self, features: FloatArray) -> FloatArray:
        return np.asarray(self.heuristic.predict_proba(_heuristic_x(features))[:, 1])


def _logit(p: FloatArray) -> FloatArray:
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped))


def _heuristic_x(features: FloatArray) -> FloatArray:
    columns = [FEATURES.index(name) for name in HEURISTIC_FEATURES]
    return np.log1p(np.nan_to_num(features[:, columns], nan=0.0))


def fit_model(fit: Examples, calibrate: Examples, config: PropensityConfig) -> PropensityModel:
    """Fit the heuristic and the classifier on ``fit``, the calibration on ``calibrate``."""
    if fit.positives < MIN_POSITIVES or fit.positives == len(fit.labels):
        raise NotEnoughHistoryError(
            f"the training cutoffs have {fit.positives} positive examples of"
            f" {len(fit.labels)}; at least {MIN_POSITIVES} of each kind are needed"
        )
    params: dict[str, Any] = {
        "objective": "binary",
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_data_in_leaf": config.min_child_samples,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": config.seed,
        "deterministic": True,
        "num_threads": 1,
        "verbose": -1,
    }
    heuristic = LogisticRegression().fit(_heuristic_x(fit.features), fit.labels)
    dataset = lgb.Dataset(
        fit.features,
        fit.labels,
        feature_name=list(FEATURES),
        init_score=heuristic.decision_function(_heuristic_x(fit.features)),
    )
    booster = lgb.train(params, dataset, num_boost_round=config.n_estimators)
    model = PropensityModel(booster, heuristic)
    positives = calibrate.positives
    negatives = len(calibrate.labels) - positives
    raw = model.raw(calibrate.features)
    if min(positives, negatives) >= config.isotonic_min_labels:
        isotonic = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        isotonic.fit(raw, calibrate.labels)
        model.calibration = "isotonic"
        model.calibration_x = np.asarray(isotonic.X_thresholds_, dtype=np.float64)
        model.calibration_y = np.asarray(isotonic.y_thresholds_, dtype=np.float64)
    elif positives and negatives:
        platt = LogisticRegression(C=1e6).fit(_logit(raw).reshape(-1, 1), calibrate.labels)
        model.calibration = "platt"
        model.calibration_x = np.asarray([platt.coef_[0, 0], platt.intercept_[0]])
    return model


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_predicted: float
    observed_rate: float


@dataclass(frozen=True)
class Evaluation:
    """Held-out quality of the model and of the recency/frequency heuristic."""

    cutoff_ms: int
    people: int
    positives: int
    roc_auc: float | None
    brier: float
    heuristic_roc_auc: float | None
    heuristic_brier: float
    base_rate: float
    calibration: list[CalibrationBin] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoff_ms": self.cutoff_ms,
            "people": self.people,
            "positives": self.positives,
            "roc_auc": self.roc_auc,
            "brier": self.brier,
            "heuristic_roc_auc": self.heuristic_roc_auc,
            "heuristic_brier": self.heuristic_brier,
            "base_rate": self.base_rate,
            "calibration": [vars(b) for b in self.calibration],
        }


def _auc(y: npt.NDArray[np.int64], p: FloatArray) -> float | None:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None


def calibration_table(
    y: npt.NDArray[np.int64], p: FloatArray, bins: int = 10
) -> list[CalibrationBin]:
    """Predicted against observed rate in equal-width probability bins (empty bins left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            table.append(
                CalibrationBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    int(chosen.sum()),
                    float(p[chosen].mean()),
                    float(y[chosen].mean()),
                )
            )
    return table


def evaluate(model: PropensityModel, test: Examples, cutoff_ms: int) -> Evaluation:
    y = test.labels
    p = model.probability(test.features)
    h = model.heuristic_probability(test.features)
    return Evaluation(
        cutoff_ms=cutoff_ms,
        people=len(y),
        positives=int(y.sum()),
        roc_auc=_auc(y, p),
        brier=float(brier_score_loss(y, p)) if len(y) else math.nan,
        heuristic_roc_auc=_auc(y, h),
        heuristic_brier=float(brier_score_loss(y, h)) if len(y) else math.nan,
        base_rate=float(y.mean()) if len(y) else math.nan,
        calibration=calibration_table(y, p),
    )


def cutoffs(end_ms: int, horizon_ms: int, count: int, start_ms: int) -> list[int]:
    """``count`` cutoffs stepping back from ``end_ms`` by whole horizons, newest first.

    A cutoff must leave some history before it (later than ``start_ms``).
    """
    found = []
    for k in range(1, count + 1):
        cutoff = end_ms - k * horizon_ms
        if cutoff <= start_ms:
            break
        found.append(cutoff)
    return found


@dataclass(frozen=True)
class TrainedPropensity:
    model: PropensityModel
    evaluation: Evaluation
    scored_at_ms: int
    keys: list[str]
    probabilities: FloatArray
    examples: int


def fit_procedure(
    log: EventLog,
    end_ms: int,
    event_type: str,
    horizon_ms: int,
    config: PropensityConfig,
    builder: FeatureBuilder,
) -> tuple[PropensityModel, int]:
    """Fit and calibrate with label windows that all end by ``end_ms``; return the model and
    the number of training examples."""
    found = cutoffs(end_ms, horizon_ms, config.fit_cutoffs + 1, log.start_ms)
    if len(found) < 2:
        raise NotEnoughHistoryError(
            f"the history is too short for a {horizon_ms // DAY_MS}-day horizon: it needs at"
            " least three horizons of events (fit, calibration, held-out test)"
        )
    for cutoff in found:
        check_no_leakage(builder, log, cutoff, event_type, horizon_ms)
    calibrate = examples_at(log, found[0], event_type, horizon_ms, builder)
    fit = Examples.concat([examples_at(log, c, event_type, horizon_ms, builder) for c in found[1:]])
    return fit_model(fit, calibrate, config), len(fit.labels) + len(calibrate.labels)


def train_propensity(
    log: EventLog,
    event_type: str,
    horizon_days: int,
    *,
    end_ms: int | None = None,
    config: PropensityConfig | None = None,
    builder: FeatureBuilder = build_features,
) -> TrainedPropensity:
    """Evaluate the procedure on the held-out cutoff, then refit it to score as of ``end_ms``.

    ``end_ms`` defaults to just after the newest event; events at or after it are ignored.
    """
    config = config or PropensityConfig()
    horizon_ms = horizon_days * DAY_MS
    end = log.end_ms if end_ms is None else end_ms
    log = log.before(end)
    test_cutoff = end - horizon_ms
    held_out, _ = fit_procedure(log, test_cutoff, event_type, horizon_ms, config, builder)
    check_no_leakage(builder, log, test_cutoff, event_type, horizon_ms)
    test = examples_at(log, test_cutoff, event_type, horizon_ms, builder)
    evaluation = evaluate(held_out, test, test_cutoff)
    model, examples = fit_procedure(log, end, event_type, horizon_ms, config, builder)
    now = builder(log, end, event_type, horizon_ms)
    keys = [log.keys[p] for p in now.people]
    return TrainedPropensity(model, evaluation, end, keys, model.probability(now.values), examples)
