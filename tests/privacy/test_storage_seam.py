"""Privacy reaches storage only through its protocols and records: no SQL, no tables."""

from __future__ import annotations

import ast
from pathlib import Path

import persona.privacy

PRIVACY = Path(persona.privacy.__file__).parent
BEHIND_THE_SEAM = ("sqlalchemy", "persona.storage.sql", "persona.storage.tables")


def test_privacy_imports_no_sql_and_no_table() -> None:
    offenders: list[str] = []
    for path in sorted(PRIVACY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.name} imports {name}" for name in names if name.startswith(BEHIND_THE_SEAM)
            ]
    assert not offenders, offenders
