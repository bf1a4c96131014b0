"""EASE: a closed-form linear item-item model (Steck, 2019)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from persona.recommend.algorithms.base import binary
from persona.recommend.dataset import Interactions


class CatalogTooLargeError(ValueError):
    """EASE inverts an items x items matrix; past a size that stops being sensible."""


@dataclass(frozen=True)
class EASEConfig:
    l2: float = 500.0
    max_items: int = 20_000  # items with interactions; the dense inverse is max_items^2 floats
    # Items with fewer interactions take no part: they teach the weights little, and the
    # inverse costs the cube of the items that do.
    min_interactions: int = 1


class EASE:
    """Weights ``B = I - P / diag(P)`` with ``P = (X^T X + l2 I)^-1``, zero diagonal.

    Only items with at least ``min_interactions`` take part (those with none would score zero
    anyway), which keeps the inverse as small as the active catalog.
    """

    name = "ease"

    def __init__(self, config: EASEConfig | None = None) -> None:
        self.config = config or EASEConfig()
        self.weights: np.ndarray | None = None  # active x active
        self.active: np.ndarray | None = None  # item indices of the weights' rows and columns
        self.n_items = 0

    def fit(self, data: Interactions) -> None:
        x = binary(data.matrix()).tocsc()
        active = np.flatnonzero(np.diff(x.indptr) >= self.config.min_interactions)
        active = active.astype(np.int64)
        if len(active) > self.config.max_items:
            raise CatalogTooLargeError(
                f"{len(active)} items with interactions; EASE is configured for at most "
                f"{self.config.max_items}"
            )
        x = x[:, active]
        # Single precision: the l2 term keeps the matrix well conditioned, the weights are
        # kept in float32 anyway, and the factorization runs about twice as fast.
        gram = _gram(x)
        gram[np.diag_indices_from(gram)] += self.config.l2
        weights = _symmetric_positive_inverse(gram) if len(active) else gram
        weights /= -np.diag(weights).copy()
        weights[np.diag_indices_from(weights)] = 0.0
        # Row-major: scoring multiplies rows of it, and a sparse product with a column-major
        # matrix copies the whole matrix on every call (the inverse comes row-major already).
        self.weights = np.ascontiguousarray(weights)
        self.active = active
        self.n_items = data.n_items

    def score(self, history: sparse.csr_matrix) -> np.ndarray:
        assert self.weights is not None, "fit first"
        assert self.active is not None
        scores = np.zeros((history.shape[0], self.n_items), dtype=np.float32)
        if len(self.active):
            h = binary(history)[:, self.active]
            scores[:, self.active] = np.asarray(h @ self.weights, dtype=np.float32)
        return scores

    def to_arrays(self) -> dict[str, np.ndarray]:
        assert self.weights is not None
        assert self.active is not None
        return {
            "weights": self.weights,
            "active": self.active,
            "n_items": np.asarray(self.n_items, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, config: EASEConfig, arrays: dict[str, np.ndarray]) -> Self:
        model = cls(config)
        model.weights = np.ascontiguousarray(arrays["weights"])
        # Sets saved before the active-item form held the full catalog's weights.
        every_item = np.arange(model.weights.shape[0], dtype=np.int64)
        model.active = arrays.get("active", every_item)
        model.n_items = int(arrays["n_items"]) if "n_items" in arrays else len(every_item)
        return model


# Up to this many people x items, the Gram matrix is multiplied dense (BLAS, both cores; the
# counts are exact in float32): on MovieLens, 0.13 s against 0.40 s for the sparse product.
DENSE_GRAM_MAX = 10_000_000


def _gram(x: sparse.csc_matrix) -> np.ndarray:
    """``x.T @ x`` as a dense float32 matrix."""
    if x.shape[0] * x.shape[1] <= DENSE_GRAM_MAX:
        dense = np.asarray(x.toarray(), dtype=np.float32)
        return np.asarray(dense.T @ dense, dtype=np.float32)
    return np.asarray((x.T @ x).toarray(), dtype=np.float32)


def _symmetric_positive_inverse(matrix: np.ndarray, block: int = 1024) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix, computed in ``matrix``'s memory
    and precision.

    LAPACK's Cholesky routines (potrf, potri) do half the work of numpy's general LU inverse,
    which matters at thousands of items, and work in place; numpy exposes no SPD inverse.
    They work in column-major order: a symmetric matrix and its inverse are their own
    transposes, so a row-major matrix is handed over, and the inverse handed back, as the
    transposed view, with no copy (a copy to column-major order took longer than potrf itself
    at 4,800 items).
    """
    row_major = matrix.flags.c_contiguous and not matrix.flags.f_contiguous
    if row_major:
        matrix = matrix.T
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (matrix,))
    factor, info = potrf(matrix, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix is not positive definite (potrf info {info})")
    inverse: np.ndarray
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Gram matrix could not be inverted (potri info {info})")
    # potri fills the upper triangle only; mirror it block by block to keep memory flat.
    for start in range(0, inverse.shape[0], block):
        stop = min(start + block, inverse.shape[0])
        inverse[start:stop, :start] = inverse[:start, start:stop].T
        diagonal = inverse[start:stop, start:stop]
        diagonal[...] = np.triu(diagonal) + np.triu(diagonal, 1).T
    return inverse.T if row_major else inverse
