"""EASE: a closed-form linear item-item model (Steck, 2019)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
from scipy import sparse
from scipy.linalg import blas, lapack

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
        # Single precision: the l2 term keeps the matrix well conditioned, the weights are
        # kept in float32 anyway, and the factorizations run about twice as fast.
        weights = _precision(x[:, active], self.config.l2)
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


def _precision(x: sparse.csc_matrix, l2: float) -> np.ndarray:
    """``(x.T @ x + l2 I)^-1``, items x items in float32 and row-major, by the cheaper side.

    Inverted as it stands, the matrix costs the cube of the items. Through the people instead
    (the Woodbury identity), it is ``(I - Y^T Y) / l2`` with ``Y = L^-1 x`` and ``L L^T = x x^T
    + l2 I``, which costs people x items^2: less whenever the people are fewer than the items
    (MovieLens: 671 people, 4,801 items; 0.2 s instead of 0.9 s), and the people x items
    matrix it holds is then smaller than the result. The two differ by rounding only.
    """
    if not x.shape[1]:
        return np.zeros((0, 0), dtype=np.float32)
    # People with none of the items change nothing (the column-major indices are the rows).
    people = np.bincount(x.indices, minlength=x.shape[0]) > 0
    if people.sum() < x.shape[1]:
        rows = x.tocsr()[people]
        return _inverse_through_people(np.asarray(rows.toarray(), dtype=np.float32), l2)
    gram = _gram(x)
    gram[np.diag_indices_from(gram)] += l2
    return _symmetric_positive_inverse(gram)


def _inverse_through_people(x: np.ndarray, l2: float) -> np.ndarray:
    """``(x.T @ x + l2 I)^-1`` from the Cholesky factor of the people x people ``x x^T + l2 I``
    (see ``_precision``); ``x`` is dense, people x items."""
    kernel = x @ x.T
    kernel[np.diag_indices_from(kernel)] += l2
    potrf, trtrs = lapack.get_lapack_funcs(("potrf", "trtrs"), (kernel,))
    factor, info = potrf(kernel, lower=True, overwrite_a=True, clean=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"x x^T + l2 I is not positive definite (potrf info {info})")
    solved, info = trtrs(factor, x, lower=True)  # Y = L^-1 x
    if info != 0:
        raise np.linalg.LinAlgError(f"triangular solve failed (trtrs info {info})")
    (syrk,) = blas.get_blas_funcs(("syrk",), (solved,))
    # BLAS's symmetric product fills the upper triangle of -(Y^T Y) / l2, in column-major order.
    precision: np.ndarray = syrk(-1.0 / l2, solved, trans=1, lower=False)
    precision[np.diag_indices_from(precision)] += 1.0 / l2
    _mirror_upper(precision)
    return precision.T  # the same symmetric matrix, row-major, without a copy


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
    _mirror_upper(inverse, block)  # potri fills the upper triangle only
    return inverse.T if row_major else inverse


def _mirror_upper(matrix: np.ndarray, block: int = 1024) -> None:
    """Copy a square matrix's upper triangle onto its lower one, in place, block by block to
    keep memory flat."""
    for start in range(0, matrix.shape[0], block):
        stop = min(start + block, matrix.shape[0])
        matrix[start:stop, :start] = matrix[:start, start:stop].T
        diagonal = matrix[start:stop, start:stop]
        diagonal[...] = np.triu(diagonal) + np.triu(diagonal, 1).T
