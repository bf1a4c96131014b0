"""Popularity baselines: all-time counts, and counts decayed by age."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy import sparse

from persona.clock import DAY_MS
from persona.recommend.dataset import Interactions


class _ItemCounts:
    """Scores every history alike: one weight per item."""

    name: str
    config: Any

    def __init__(self, config: Any) -> None:
        self.config = config
        self.counts: np.ndarray | None = None

    def score(self, history: sparse.csr_matrix) -> np.ndarray:
        assert self.counts is not None, "fit first"
        return np.tile(self.counts, (history.shape[0], 1))

    def to_arrays(self) -> dict[str, np.ndarray]:
        assert self.counts is not None
        return {"counts": self.counts}

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(config)
        model.counts = arrays["counts"]
        return model


@dataclass(frozen=True)
class MostPopularConfig:
    pass


class MostPopular(_ItemCounts):
    name = "most_popular"

    def __init__(self, config: MostPopularConfig | None = None) -> None:
        super().__init__(config or MostPopularConfig())

    def fit(self, data: Interactions) -> None:
        self.counts = np.bincount(data.items, minlength=data.n_items).astype(np.float32)


@dataclass(frozen=True)
class DecayedPopularityConfig:
    half_life_days: float = 30.0


class DecayedPopularity(_ItemCounts):
    """Each interaction counts 2^(-age / half-life), age taken from the latest interaction."""

    name = "decayed_popularity"

    def __init__(self, config: DecayedPopularityConfig | None = None) -> None:
        super().__init__(config or DecayedPopularityConfig())

    def fit(self, data: Interactions) -> None:
        if not len(data.timestamps_ms):
            self.counts = np.zeros(data.n_items, dtype=np.float32)
            return
        age_days = (data.timestamps_ms.max() - data.timestamps_ms) / DAY_MS
        weights = np.exp2(-age_days / self.config.half_life_days)
        self.counts = np.bincount(data.items, weights, minlength=data.n_items).astype(np.float32)
