"""EASE: a closed-form linear item-item model (Steck, 2019)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
from scipy import sparse

from persona.recommend.algorithms.base import binary
from persona.recommend.dataset import Interactions


class CatalogTooLargeError(ValueError):
    """EASE inverts an items x items matrix; past a size that stops being sensible."""


@dataclass(frozen=True)
class EASEConfig:
    l2: float = 500.0
    max_items: int = 20_000


class EASE:
    name = "ease"

    def __init__(self, config: EASEConfig | None = None) -> None:
        self.config = config or EASEConfig()
        self.weights: np.ndarray | None = None

    def fit(self, data: Interactions) -> None:
        if data.n_items > self.config.max_items:
            raise CatalogTooLargeError(
                f"{data.n_items} items; EASE is configured for at most {self.config.max_items}"
            )
        x = binary(data.matrix())
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.config.l2
        inverse = np.linalg.inv(gram)
        weights = inverse / -np.diag(inverse)
        weights[np.diag_indices_from(weights)] = 0.0
        self.weights = weights.astype(np.float32)

    def score(self, history: sparse.csr_matrix) -> np.ndarray:
        assert self.weights is not None, "fit first"
        return np.asarray(binary(history) @ self.weights, dtype=np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        assert self.weights is not None
        return {"weights": self.weights}

    @classmethod
    def from_arrays(cls, config: EASEConfig, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(config)
        model.weights = arrays["weights"]
        return model
