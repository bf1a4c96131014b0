"""Where a person's ids are stored: the registry that erasure and export walk.

Each domain declares the ``(table, column)`` pairs that hold a subject id, and whether the column
holds a profile key (``u:<user id>`` / ``a:<anonymous id>``) or a bare id. A domain that adds a
table holding people adds its line here (or calls ``register`` from its own module); erasure then
deletes, and export reads, its rows without further changes. Quarantine rows hold ids only inside
their raw payload, so erasure matches them there instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Table

from persona.storage import tables as core
from persona.storage.tables import decide, predictions, privacy, segments

Holds = Literal["key", "id"]


@dataclass(frozen=True, slots=True)
class SubjectColumn:
    table: Table
    column: str
    holds: Holds = "key"


_REGISTRY: list[SubjectColumn] = []


def register(table: Table, column: str, holds: Holds = "key") -> None:
    """Declare that ``table.column`` holds subject ids (idempotent)."""
    entry = SubjectColumn(table, column, holds)
    if entry not in _REGISTRY:
        _REGISTRY.append(entry)


def registered() -> list[SubjectColumn]:
    return list(_REGISTRY)


def tables() -> list[Table]:
    """Every table with a registered column, once, in registration order."""
    seen: dict[str, Table] = {}
    for entry in _REGISTRY:
        seen.setdefault(entry.table.name, entry.table)
    return list(seen.values())


# core
register(core.events, "profile_key")
register(core.events, "user_id", "id")
register(core.events, "anonymous_id", "id")
register(core.profiles, "profile_key")
register(core.aliases, "alias_key")
register(core.aliases, "profile_key")
# segments
register(segments.segment_memberships, "profile_key")
# predictions
register(predictions.profile_scores, "profile_key")
# decisions
register(decide.decisions, "profile_key")
register(decide.decision_outcomes, "profile_key")
# privacy
register(privacy.consents, "profile_key")
register(privacy.held_events, "profile_key")
register(privacy.held_events, "user_id", "id")
register(privacy.held_events, "anonymous_id", "id")
