"""Bandit policies that choose one arm (a variant) per decision and learn from rewards.

A policy keeps, per bucket (a segment or a context bucket; ``DEFAULT_BUCKET`` when there is
none), the sum of rewards and the sum of non-rewards of each arm: plain numbers that
``to_dict``/``from_dict`` turn into JSON and back, so the state can be stored and survive a
restart. Randomness comes only from the ``numpy.random.Generator`` passed in, so a seeded run
is reproducible.

Reward contract: ``update`` counts every call. Delivering each reward exactly once (keyed by the
event id, so a replayed or retried event never counts twice) is the storage layer's duty; the
policy trusts its caller. Rewards are in [0, 1]: a click or conversion is 1, an impression that
led nowhere is 0, and a fraction counts as that share of a success.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, Self

import numpy as np

from persona.errors import InvalidExperimentError

DEFAULT_BUCKET = "*"


class Policy(Protocol):
    """What the decisions service needs from a bandit."""

    name: ClassVar[str]
    arms: tuple[str, ...]

    def choose(self, bucket: str = DEFAULT_BUCKET) -> str: ...

    def update(self, bucket: str, arm: str, reward: float) -> None: ...

    def to_dict(self) -> dict[str, Any]: ...


class _CountingPolicy:
    """Arms, per-bucket reward counts, validation and serialization; subclasses choose."""

    name: ClassVar[str]

    def __init__(
        self, arms: Sequence[str], rng: np.random.Generator, *, min_exploration: float = 0.0
    ) -> None:
        if not arms or len(set(arms)) != len(arms):
            raise InvalidExperimentError("a policy needs at least one arm, each named once")
        if not 0.0 <= min_exploration <= 1.0:
            raise InvalidExperimentError("min_exploration must be in [0, 1]")
        self.arms = tuple(arms)
        self.min_exploration = min_exploration
        self._rng = rng
        self._index = {arm: i for i, arm in enumerate(self.arms)}
        # bucket -> array (arms x 2): summed rewards, summed (1 - reward).
        self._counts: dict[str, np.ndarray] = {}

    def counts(self, bucket: str = DEFAULT_BUCKET) -> dict[str, tuple[float, float]]:
        """Each arm's (successes, failures) seen in ``bucket``."""
        table = self._counts.get(bucket)
        if table is None:
            return dict.fromkeys(self.arms, (0.0, 0.0))
        return {arm: (float(s), float(f)) for arm, (s, f) in zip(self.arms, table, strict=True)}

    def choose(self, bucket: str = DEFAULT_BUCKET) -> str:
        if self.min_exploration > 0 and self._rng.random() < self.min_exploration:
            return self.arms[int(self._rng.integers(len(self.arms)))]
        return self._choose(self._counts.get(bucket, np.zeros((len(self.arms), 2))))

    def _choose(self, table: np.ndarray) -> str:
        raise NotImplementedError

    def update(self, bucket: str, arm: str, reward: float) -> None:
        index = self._index.get(arm)
        if index is None:
            raise InvalidExperimentError(f"unknown arm {arm!r}", extra={"arms": list(self.arms)})
        if not (math.isfinite(reward) and 0.0 <= reward <= 1.0):
            raise InvalidExperimentError("a reward must be in [0, 1]", extra={"reward": reward})
        table = self._counts.setdefault(bucket, np.zeros((len(self.arms), 2)))
        table[index] += (reward, 1.0 - reward)

    def _settings(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state: settings and ``{bucket: {arm: [successes, failures]}}``."""
        return {
            "policy": self.name,
            "arms": list(self.arms),
            "min_exploration": self.min_exploration,
            **self._settings(),
            "buckets": {
                bucket: {
                    arm: [float(s), float(f)] for arm, (s, f) in zip(self.arms, table, strict=True)
                }
                for bucket, table in self._counts.items()
            },
        }

    def _load_counts(self, buckets: dict[str, dict[str, Sequence[float]]]) -> None:
        for bucket, arms in buckets.items():
            table = np.zeros((len(self.arms), 2))
            for arm, pair in arms.items():
                if arm not in self._index or len(pair) != 2 or min(pair) < 0:
                    raise InvalidExperimentError(f"bad stored counts for arm {arm!r}")
                table[self._index[arm]] = pair
            self._counts[bucket] = table


class ThompsonPolicy(_CountingPolicy):
    """Beta-Bernoulli Thompson sampling, per bucket, with a floor on uniform exploration.

    Each arm's click rate has a Beta(prior + successes, prior + failures) posterior; a decision
    draws one rate per arm and takes the highest. With probability ``min_exploration`` the arm
    is picked uniformly instead, so no arm ever starves (useful when rates drift).
    """

    name = "thompson"

    def __init__(
        self,
        arms: Sequence[str],
        rng: np.random.Generator,
        *,
        min_exploration: float = 0.0,
        prior: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        super().__init__(arms, rng, min_exploration=min_exploration)
        if not (len(prior) == 2 and prior[0] > 0 and prior[1] > 0):
            raise InvalidExperimentError("the Beta prior needs two positive numbers")
        self.prior = (float(prior[0]), float(prior[1]))

    def _choose(self, table: np.ndarray) -> str:
        draws = self._rng.beta(self.prior[0] + table[:, 0], self.prior[1] + table[:, 1])
        return self.arms[int(np.argmax(draws))]

    def _settings(self) -> dict[str, Any]:
        return {"prior": list(self.prior)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], rng: np.random.Generator) -> Self:
        if data.get("policy") != cls.name:
            raise InvalidExperimentError(f"stored state is not a {cls.name} policy")
        prior = data.get("prior", [1.0, 1.0])
        policy = cls(
            data["arms"],
            rng,
            min_exploration=float(data.get("min_exploration", 0.0)),
            prior=(float(prior[0]), float(prior[1])),
        )
        policy._load_counts(data.get("buckets", {}))
        return policy


class UniformPolicy(_CountingPolicy):
    """Every arm equally often: the fixed-split baseline a bandit is measured against."""

    name = "uniform"

    def _choose(self, table: np.ndarray) -> str:
        return self.arms[int(self._rng.integers(len(self.arms)))]

    @classmethod
    def from_dict(cls, data: dict[str, Any], rng: np.random.Generator) -> Self:
        if data.get("policy") != cls.name:
            raise InvalidExperimentError(f"stored state is not a {cls.name} policy")
        policy = cls(data["arms"], rng, min_exploration=float(data.get("min_exploration", 0.0)))
        policy._load_counts(data.get("buckets", {}))
        return policy
