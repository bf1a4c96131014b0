"""The contract every scoring algorithm keeps."""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

import numpy as np
from scipy import sparse

from persona.recommend.dataset import Interactions


@runtime_checkable
class Scorer(Protocol):
    """Scores every item for rows of a users x items history matrix.

    ``score`` depends on the history only, never on a user index, so a person's newest
    events count without a retrain. ``to_arrays``/``from_arrays`` save the fitted state as
    plain numpy arrays (stored as ``.npz`` without pickle).
    """

    name: str
    config: Any

    def fit(self, data: Interactions) -> None: ...

    def score(self, history: sparse.csr_matrix) -> np.ndarray: ...

    def to_arrays(self) -> dict[str, np.ndarray]: ...

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray]) -> Self: ...


def binary(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """The same matrix with every stored value set to 1 (engagement, not its strength)."""
    m = matrix.tocsr(copy=True).astype(np.float32)
    m.data[:] = 1.0
    return m


def sparse_to_arrays(prefix: str, m: sparse.csr_matrix) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_data": m.data,
        f"{prefix}_indices": m.indices,
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64),
    }


def sparse_from_arrays(prefix: str, arrays: dict[str, np.ndarray]) -> sparse.csr_matrix:
    shape = tuple(int(x) for x in arrays[f"{prefix}_shape"])
    return sparse.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=shape,
    )


class ItemSimilarityScorer:
    """Shared by item-to-item models: score = history @ a sparse items x items matrix."""

    name: str
    config: Any

    def __init__(self, config: Any) -> None:
        self.config = config
        self.similarity: sparse.csr_matrix | None = None

    def score(self, history: sparse.csr_matrix) -> np.ndarray:
        assert self.similarity is not None, "fit first"
        return np.asarray((binary(history) @ self.similarity).toarray(), dtype=np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        assert self.similarity is not None
        return sparse_to_arrays("similarity", self.similarity)

    @classmethod
    def from_arrays(cls, config: Any, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(config)
        model.similarity = sparse_from_arrays("similarity", arrays)
        return model
