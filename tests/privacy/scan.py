"""Searching a home and a database for values that must not be there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import inspect, select

from persona.engine import Engine
from persona.storage.tables import metadata


def files_containing(home: Path, needles: list[str]) -> dict[str, list[str]]:
    """Every file under ``home`` (database, write-ahead log, models, keys) holding a needle."""
    found: dict[str, list[str]] = {}
    for path in home.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        hits = [n for n in needles if any(form in data for form in _encodings(n))]
        if path.suffix == ".npz":
            hits += [n for n in needles if n not in hits and _in_arrays(path, n)]
        if hits:
            found[str(path.relative_to(home))] = hits
    return found


def _encodings(needle: str) -> list[bytes]:
    """UTF-8, and the UTF-32 numpy stores string arrays in (and UTF-16, to be thorough)."""
    return [needle.encode(), needle.encode("utf-32-le"), needle.encode("utf-16-le")]


def _in_arrays(path: Path, needle: str) -> bool:
    """A compressed archive hides its bytes: look inside its string arrays as well."""
    with np.load(path, allow_pickle=False) as arrays:
        for name in arrays.files:
            values = arrays[name]
            if values.dtype.kind in "US" and any(needle in str(v) for v in values.ravel()):
                return True
    return False


def rows_containing(engine: Engine, needles: list[str]) -> dict[str, int]:
    """Rows of every table whose text (or JSON) columns contain a needle, per table."""
    found: dict[str, int] = {}
    db = engine.storage.engine
    existing = set(inspect(db).get_table_names())
    with db.connect() as connection:
        for table in metadata.sorted_tables:
            if table.name not in existing:
                continue
            for row in connection.execute(select(table)):
                blob = " ".join("" if v is None else str(v) for v in row)
                if any(n in blob for n in needles):
                    found[table.name] = found.get(table.name, 0) + 1
    return found
