"""Bandit policies: seeded reproducibility, JSON state, exploration floor, convergence."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pytest

from persona.decide.bandits import DEFAULT_BUCKET, ThompsonPolicy, UniformPolicy
from persona.errors import InvalidExperimentError

ARMS = ("red", "green", "blue")
POLICIES: list[Any] = [ThompsonPolicy, UniformPolicy]


def play(
    policy: Any, rates: dict[str, float], steps: int, seed: int, bucket: str = DEFAULT_BUCKET
) -> list[str]:
    world = np.random.default_rng(seed)
    chosen = []
    for _ in range(steps):
        arm = policy.choose(bucket)
        policy.update(bucket, arm, float(world.random() < rates[arm]))
        chosen.append(arm)
    return chosen


RATES = {"red": 0.2, "green": 0.5, "blue": 0.3}


@pytest.mark.parametrize("policy_class", POLICIES)
def test_seeded_runs_are_reproducible(policy_class: Any) -> None:
    first = play(policy_class(ARMS, np.random.default_rng(42)), RATES, 500, seed=1)
    second = play(policy_class(ARMS, np.random.default_rng(42)), RATES, 500, seed=1)
    other = play(policy_class(ARMS, np.random.default_rng(43)), RATES, 500, seed=1)
    assert first == second
    assert first != other


@pytest.mark.parametrize("policy_class", POLICIES)
def test_state_round_trips_through_json(policy_class: Any) -> None:
    policy = policy_class(ARMS, np.random.default_rng(0), min_exploration=0.1)
    play(policy, RATES, 300, seed=2, bucket="mobile")
    play(policy, RATES, 200, seed=3, bucket="desktop")
    stored = json.loads(json.dumps(policy.to_dict()))
    restored = policy_class.from_dict(stored, np.random.default_rng(7))
    assert restored.to_dict() == policy.to_dict()
    assert restored.counts("mobile") == policy.counts("mobile")
    # After a restart with the same generator state, the same decisions follow.
    original = policy_class.from_dict(stored, np.random.default_rng(7))
    assert play(restored, RATES, 100, seed=4, bucket="mobile") == play(
        original, RATES, 100, seed=4, bucket="mobile"
    )


def test_state_counts_rewards_per_bucket() -> None:
    policy = ThompsonPolicy(ARMS, np.random.default_rng(0))
    policy.update("mobile", "red", 1.0)
    policy.update("mobile", "red", 0.0)
    policy.update("mobile", "blue", 0.25)
    policy.update("desktop", "green", 1.0)
    assert policy.counts("mobile") == {"red": (1.0, 1.0), "green": (0.0, 0.0), "blue": (0.25, 0.75)}
    assert policy.counts("desktop")["green"] == (1.0, 0.0)
    assert policy.counts("tablet") == dict.fromkeys(ARMS, (0.0, 0.0))
    assert policy.to_dict()["buckets"]["mobile"]["red"] == [1.0, 1.0]


def test_min_exploration_share_is_respected() -> None:
    # Arm "green" is known to be far better; only the exploration floor sends units elsewhere.
    known = {"red": [0.0, 5000.0], "green": [5000.0, 0.0], "blue": [0.0, 5000.0]}
    state = {**ThompsonPolicy(ARMS, np.random.default_rng(0)).to_dict(), "buckets": {"*": known}}
    policy = ThompsonPolicy.from_dict({**state, "min_exploration": 0.3}, np.random.default_rng(5))
    draws = 20_000
    counts = Counter(policy.choose() for _ in range(draws))
    others = (counts["red"] + counts["blue"]) / draws
    expected = 0.3 * 2 / 3  # a uniform pick lands on another arm two times in three
    assert abs(others - expected) < 4 * np.sqrt(expected * (1 - expected) / draws)
    greedy = ThompsonPolicy.from_dict(state, np.random.default_rng(5))
    assert Counter(greedy.choose() for _ in range(2000))["green"] == 2000


def test_thompson_converges_to_the_best_arm() -> None:
    policy = ThompsonPolicy(ARMS, np.random.default_rng(11))
    chosen = play(policy, RATES, 3000, seed=12)
    late = Counter(chosen[-1000:])
    assert late["green"] > 900
    uniform = Counter(play(UniformPolicy(ARMS, np.random.default_rng(11)), RATES, 3000, seed=12))
    assert all(abs(uniform[arm] - 1000) < 4 * np.sqrt(3000 * 2 / 9) for arm in ARMS)


def test_buckets_learn_separately() -> None:
    policy = ThompsonPolicy(("a", "b"), np.random.default_rng(3))
    play(policy, {"a": 0.6, "b": 0.1}, 1500, seed=1, bucket="north")
    play(policy, {"a": 0.1, "b": 0.6}, 1500, seed=2, bucket="south")
    assert Counter(policy.choose("north") for _ in range(500))["a"] > 450
    assert Counter(policy.choose("south") for _ in range(500))["b"] > 450


@pytest.mark.parametrize("policy_class", POLICIES)
def test_bad_input_is_refused(policy_class: Any) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidExperimentError):
        policy_class((), rng)
    with pytest.raises(InvalidExperimentError):
        policy_class(("a", "a"), rng)
    with pytest.raises(InvalidExperimentError):
        policy_class(("a", "b"), rng, min_exploration=1.5)
    policy = policy_class(("a", "b"), rng)
    for arm, reward in [("c", 1.0), ("a", 1.5), ("a", -0.1), ("a", float("nan"))]:
        with pytest.raises(InvalidExperimentError):
            policy.update(DEFAULT_BUCKET, arm, reward)
    other = UniformPolicy if policy_class is ThompsonPolicy else ThompsonPolicy
    with pytest.raises(InvalidExperimentError):
        other.from_dict(policy.to_dict(), rng)
    with pytest.raises(InvalidExperimentError):
        policy_class.from_dict({**policy.to_dict(), "buckets": {"*": {"z": [1, 1]}}}, rng)


def test_thompson_prior_is_validated_and_stored() -> None:
    with pytest.raises(InvalidExperimentError):
        ThompsonPolicy(ARMS, np.random.default_rng(0), prior=(0.0, 1.0))
    policy = ThompsonPolicy(ARMS, np.random.default_rng(0), prior=(2.0, 50.0))
    assert ThompsonPolicy.from_dict(policy.to_dict(), np.random.default_rng(0)).prior == (2.0, 50.0)
