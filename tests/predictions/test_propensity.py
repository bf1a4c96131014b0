"""Propensity without storage: labels, the leakage rule, ranking quality and calibration."""

from __future__ import annotations

import numpy as np
import pytest

from persona.clock import DAY_MS
from persona.predictions.events import EventLog
from persona.predictions.propensity import (
    FEATURES,
    FeatureFrame,
    FeatureLeakageError,
    NotEnoughHistoryError,
    PropensityConfig,
    build_features,
    check_no_leakage,
    examples_at,
    labels,
    train_propensity,
)
from tests.predictions.synthetic import START_MS, buyers_and_browsers

HORIZON_MS = 30 * DAY_MS


@pytest.fixture(scope="module")
def synthetic() -> tuple[EventLog, dict[str, bool]]:
    return buyers_and_browsers()


def leaky_features(log: EventLog, cutoff_ms: int, event_type: str, horizon_ms: int) -> FeatureFrame:
    """The real features plus one that counts target events after the cutoff: the future."""
    frame = build_features(log, cutoff_ms, event_type, horizon_ms)
    future = (log.types == log.type_code(event_type)) & (log.times_ms >= cutoff_ms)
    counts = np.bincount(log.people[future], minlength=len(log.keys)).astype(np.float64)
    return FeatureFrame(
        cutoff_ms, frame.people, np.column_stack([frame.values, counts[frame.people]])
    )


def test_label_window_excludes_the_cutoff_and_includes_its_end() -> None:
    cutoff = START_MS + 10 * DAY_MS
    log = EventLog.from_rows(
        [
            ("u:a", "view", START_MS, None),
            ("u:b", "view", START_MS, None),
            ("u:c", "view", START_MS, None),
            ("u:a", "purchase", cutoff, None),  # at the cutoff: belongs to the past
            ("u:b", "purchase", cutoff + HORIZON_MS, None),  # last moment of the window
            ("u:c", "purchase", cutoff + HORIZON_MS + 1, None),  # just after it
        ]
    )
    frame = build_features(log, cutoff, "purchase", HORIZON_MS)
    assert [log.keys[p] for p in frame.people] == ["u:a", "u:b", "u:c"]
    assert labels(log, frame.people, cutoff, "purchase", HORIZON_MS).tolist() == [0, 1, 0]


def test_features_ignore_every_event_after_the_cutoff(
    synthetic: tuple[EventLog, dict[str, bool]],
) -> None:
    log, _ = synthetic
    cutoff = START_MS + 200 * DAY_MS
    with_future = build_features(log, cutoff, "purchase", HORIZON_MS)
    without_future = build_features(log.before(cutoff), cutoff, "purchase", HORIZON_MS)
    assert with_future.same_as(without_future)
    assert with_future.values.shape == (len(with_future.people), len(FEATURES))
    # and the future is really there to be ignored
    assert (log.times_ms >= cutoff).sum() > 1000
    check_no_leakage(build_features, log, cutoff, "purchase", HORIZON_MS)


def test_a_feature_computed_after_the_cutoff_is_caught(
    synthetic: tuple[EventLog, dict[str, bool]],
) -> None:
    log, _ = synthetic
    cutoff = START_MS + 200 * DAY_MS
    with pytest.raises(FeatureLeakageError):
        check_no_leakage(leaky_features, log, cutoff, "purchase", HORIZON_MS)
    # training refuses it too, before fitting anything
    with pytest.raises(FeatureLeakageError):
        train_propensity(log, "purchase", 30, builder=leaky_features)


def test_model_finds_the_known_signal_and_beats_the_heuristic(
    synthetic: tuple[EventLog, dict[str, bool]],
) -> None:
    log, _ = synthetic
    trained = train_propensity(log, "purchase", 30, config=PropensityConfig(fit_cutoffs=6))
    e = trained.evaluation
    assert e.positives > 50 and e.people > 500
    assert e.roc_auc is not None and e.heuristic_roc_auc is not None
    assert e.roc_auc > 0.8
    assert e.roc_auc > e.heuristic_roc_auc + 0.1
    assert e.brier < e.heuristic_brier
    assert len(trained.keys) == len(trained.probabilities) == len(log.keys)


def test_probabilities_are_calibrated() -> None:
    log, kinds = buyers_and_browsers(people=1500, seed=1)
    trained = train_propensity(log, "purchase", 30, config=PropensityConfig(fit_cutoffs=6))
    e = trained.evaluation
    assert trained.model.calibration == "isotonic"
    assert e.brier < e.base_rate * (1 - e.base_rate)  # better than the base rate for everyone
    # expected calibration error: the count-weighted gap between predicted and observed rates
    # (bins hold a few hundred people: a gap of a few points is binomial noise)
    gap = sum(r.count * abs(r.mean_predicted - r.observed_rate) for r in e.calibration)
    assert gap / e.people < 0.06, e.calibration
    mean_predicted = sum(r.count * r.mean_predicted for r in e.calibration) / e.people
    assert abs(mean_predicted - e.base_rate) < 0.04
    # the scores as of the end separate the two kinds as the generator made them
    p = dict(zip(trained.keys, trained.probabilities, strict=True))
    buyers = np.mean([p[k] for k, buyer in kinds.items() if buyer])
    browsers = np.mean([p[k] for k, buyer in kinds.items() if not buyer])
    assert buyers > 0.5 > 0.2 > browsers


def test_scores_as_of_a_moment_do_not_depend_on_later_events(
    synthetic: tuple[EventLog, dict[str, bool]],
) -> None:
    log, _ = synthetic
    as_of = START_MS + 300 * DAY_MS
    config = PropensityConfig(fit_cutoffs=4)
    full = train_propensity(log, "purchase", 30, end_ms=as_of, config=config)
    cut = train_propensity(log.before(as_of), "purchase", 30, end_ms=as_of, config=config)
    assert full.keys == cut.keys
    assert np.array_equal(full.probabilities, cut.probabilities)
    assert full.evaluation.roc_auc == cut.evaluation.roc_auc


def test_too_short_a_history_is_refused() -> None:
    log = EventLog.from_rows(
        [("u:a", "view", START_MS, None), ("u:a", "purchase", START_MS + DAY_MS, None)]
    )
    with pytest.raises(NotEnoughHistoryError):
        train_propensity(log, "purchase", 30)


def test_examples_cover_people_seen_before_the_cutoff_only(
    synthetic: tuple[EventLog, dict[str, bool]],
) -> None:
    log, _ = synthetic
    early = examples_at(log, START_MS + DAY_MS // 2, "purchase", HORIZON_MS)
    late = examples_at(log, START_MS + 100 * DAY_MS, "purchase", HORIZON_MS)
    assert 0 < len(early.labels) < len(late.labels) <= len(log.keys)
