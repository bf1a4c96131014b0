"""Scores that mean something: in [0, 1], never rising down a list, no sentinels; the
pipeline's are the ranker's calibrated probabilities."""

from __future__ import annotations

import math

import numpy as np

from persona.recommend.answer import served_scores
from persona.recommend.ranker import LearnedRanker, calibrate


def test_a_ranked_list_with_a_pin_and_an_explored_item_keeps_its_order_in_range() -> None:
    ranker = LearnedRanker()
    ranker.calibration = (1.0, -2.0)
    raw = [math.inf, 3.0, 4.5, 1.0, math.nan]  # pinned, a boosted item below a better one
    scores = served_scores(raw, ranker)
    assert scores[0] == 1.0
    assert scores == sorted(scores, reverse=True)
    assert scores[1] == scores[2] == 1 / (1 + math.exp(-1.0))  # capped by the one above
    assert scores[4] == scores[3]  # explored: the score of the item above
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores)


def test_without_a_ranker_scores_are_relative_or_by_place() -> None:
    assert served_scores([8.0, 4.0, 2.0]) == [1.0, 0.5, 0.25]
    assert served_scores([0.0, 0.0, 0.0, 0.0]) == [1.0, 0.75, 0.5, 0.25]
    assert served_scores([]) == []


def test_calibration_turns_outputs_into_frequencies() -> None:
    rng = np.random.default_rng(3)
    outputs = rng.normal(size=20_000)
    truth = 1 / (1 + np.exp(-(2.0 * outputs - 3.0)))  # what the outputs really mean
    labels = (rng.random(len(outputs)) < truth).astype(np.int8)
    slope, intercept = calibrate(outputs, labels)
    assert abs(slope - 2.0) < 0.2
    assert abs(intercept + 3.0) < 0.2
    ranker = LearnedRanker()
    ranker.calibration = (slope, intercept)
    predicted = np.asarray([ranker.probability(o) for o in outputs])
    assert abs(predicted.mean() - labels.mean()) < 0.01
