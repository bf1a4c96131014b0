"""Matrix factorization with implicit: alternating least squares and BPR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from scipy import sparse

from persona.recommend.algorithms.base import binary
from persona.recommend.dataset import Interactions
from persona.runtime import blas_single_threaded


@dataclass(frozen=True)
class ALSConfig:
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 2.0
    iterations: int = 15
    # A fit that starts from the item factors of one on an earlier part of the same people
    # and items (the pipeline fits its sources twice: for the ranker's examples, then on
    # everything) needs fewer sweeps.
    warm_iterations: int = 5
    seed: int = 7


class ALS:
    """Implicit-feedback ALS; a new history gets its factors solved against the item factors."""

    name = "als"

    def __init__(self, config: ALSConfig | None = None) -> None:
        self.config = config or ALSConfig()
        self.item_factors: np.ndarray | None = None
        self._model: AlternatingLeastSquares | None = None

    def fit(self, data: Interactions, start: ALS | None = None) -> None:
        """Fit on ``data``; from ``start``'s item factors when it was fitted on the same items
        (then ``warm_iterations`` sweeps). Only the item factors are kept: a person's factors
        are solved from their history when asked (``user_factors``)."""
        c = self.config
        begin = start.item_factors if start is not None else None
        warm = begin is not None and begin.shape == (data.n_items, c.factors)
        with blas_single_threaded():  # implicit parallelizes itself; BLAS threads fight it
            model = AlternatingLeastSquares(
                factors=c.factors,
                regularization=c.regularization,
                alpha=c.alpha,
                iterations=c.warm_iterations if warm else c.iterations,
                random_state=c.seed,
                num_threads=0,  # every core: fitting is a batch job (solving a user, not)
            )
            if warm:
                model.item_factors = np.array(begin, dtype=np.float32)
            model.fit(binary(data.matrix()), show_progress=False)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        self._model = None  # the fitted people's factors (256 MB a million) are not kept

    def score(self, history: sparse.csr_matrix) -> np.ndarray:
        factors = self.user_factors(history)
        return np.asarray(factors @ self._solver().item_factors.T, dtype=np.float32)

    def user_factors(self, history: sparse.csr_matrix) -> np.ndarray:
        """Factors solved for each history row against the item factors."""
        model = self._solver()
        users = np.arange(history.shape[0])
        with blas_single_threaded():
            return np.asarray(model.recalculate_user(users, binary(history)), dtype=np.float32)

    def _solver(self) -> AlternatingLeastSquares:
        """implicit's model around the saved item factors (user factors are solved per call)."""
        if self._model is None:
            assert self.item_factors is not None, "fit first"
            c = self.config
            with blas_single_threaded():
                model = AlternatingLeastSquares(
                    factors=c.factors,
                    regularization=c.regularization,
                    alpha=c.alpha,
                    random_state=c.seed,
                    num_threads=1,
                )
            model.item_factors = self.item_factors
            model.user_factors = np.zeros((1, self.item_factors.shape[1]), dtype=np.float32)
            self._model = model
        return self._model

    def to_arrays(self) -> dict[str, np.ndarray]:
        assert self.item_factors is not None
        return {"item_factors": self.item_factors}

    @classmethod
    def from_arrays(cls, config: ALSConfig, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(config)
        model.item_factors = arrays["item_factors"]
        return model


@dataclass(frozen=True)
class BPRConfig:
    factors: int = 64
    learning_rate: float = 0.01
    regularization: float = 0.01
    iterations: int = 100
    seed: int = 7


class BPR:
    """Bayesian personalized ranking; a history is scored by the mean of its items' factors.

    BPR learns user factors only for people seen in training, so a new history is folded in
    as the average of its items' factors (a common, cheap approximation).
    """

    name = "bpr"

    def __init__(self, config: BPRConfig | None = None) -> None:
        self.config = config or BPRConfig()
        self.item_factors: np.ndarray | None = None

    def fit(self, data: Interactions) -> None:
        c = self.config
        model = BayesianPersonalizedRanking(
            factors=c.factors,
            learning_rate=c.learning_rate,
            regularization=c.regularization,
            iterations=c.iterations,
            random_state=c.seed,
            num_threads=1,
        )
        model.fit(binary(data.matrix()), show_progress=False)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def score(self, history: sparse.csr_matrix) -> np.ndarray:
        assert self.item_factors is not None, "fit first"
        h = binary(history)
        counts = np.maximum(np.asarray(h.sum(axis=1)).ravel(), 1.0)
        users = np.asarray(h @ self.item_factors) / counts[:, None]
        return np.asarray(users @ self.item_factors.T, dtype=np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        assert self.item_factors is not None
        return {"item_factors": self.item_factors}

    @classmethod
    def from_arrays(cls, config: BPRConfig, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(config)
        model.item_factors = arrays["item_factors"]
        return model
