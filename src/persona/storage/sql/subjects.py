"""Everything stored about people, across the tables of every domain: the registry of the
columns that hold a person, and what erasure, export and retention do with them.

``SUBJECT_COLUMNS`` names each ``(table, column)`` that holds a subject id, and whether the
column holds a profile key (``u:<user id>`` / ``a:<anonymous id>``) or a bare id. A table that
holds people adds its line here: erasure then deletes its rows without further changes (and
tests/storage checks that every column named like a person's key or id is listed). Quarantine
rows hold ids only inside their raw payload, so erasure matches them there instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Table, delete, or_, select
from sqlalchemy.engine import Connection, Row

from persona.storage import tables as core
from persona.storage.records import (
    DecisionRecord,
    EventRecord,
    HeldEventRecord,
    MembershipRecord,
    SubjectLinks,
    SubjectRecords,
)
from persona.storage.sql.consents import SqlConsentLog
from persona.storage.tables import decide, predictions, privacy, segments

Holds = Literal["key", "id"]


@dataclass(frozen=True, slots=True)
class SubjectColumn:
    table: Table
    column: str
    holds: Holds = "key"


SUBJECT_COLUMNS: tuple[SubjectColumn, ...] = (
    # core
    SubjectColumn(core.events, "profile_key"),
    SubjectColumn(core.events, "user_id", "id"),
    SubjectColumn(core.events, "anonymous_id", "id"),
    SubjectColumn(core.profiles, "profile_key"),
    SubjectColumn(core.aliases, "alias_key"),
    SubjectColumn(core.aliases, "profile_key"),
    # segments
    SubjectColumn(segments.segment_memberships, "profile_key"),
    # predictions
    SubjectColumn(predictions.profile_scores, "profile_key"),
    # decisions
    SubjectColumn(decide.decisions, "profile_key"),
    SubjectColumn(decide.decision_outcomes, "profile_key"),
    # privacy
    SubjectColumn(privacy.consents, "profile_key"),
    SubjectColumn(privacy.held_events, "profile_key"),
    SubjectColumn(privacy.held_events, "user_id", "id"),
    SubjectColumn(privacy.held_events, "anonymous_id", "id"),
)


def tables_holding_people() -> list[Table]:
    """Every table with a column in ``SUBJECT_COLUMNS``, once, in the order listed."""
    seen: dict[str, Table] = {}
    for entry in SUBJECT_COLUMNS:
        seen.setdefault(entry.table.name, entry.table)
    return list(seen.values())


class SqlSubjectData:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def links(self, profile_keys: Collection[str]) -> SubjectLinks:
        keys = list(profile_keys)
        a, e = core.aliases, core.events
        aliases = self._c.execute(
            select(a.c.alias_key, a.c.profile_key).where(
                or_(a.c.alias_key.in_(keys), a.c.profile_key.in_(keys))
            )
        )
        identities = self._c.execute(
            select(e.c.user_id, e.c.anonymous_id).where(e.c.profile_key.in_(keys)).distinct()
        )
        return SubjectLinks(
            aliases=[(alias, target) for alias, target in aliases],
            identities=[(user_id, anonymous_id) for user_id, anonymous_id in identities],
        )

    def export(self, profile_keys: Collection[str]) -> SubjectRecords:
        keys = list(profile_keys)
        c = self._c
        e, h, p = core.events, privacy.held_events, core.profiles
        m, s, d = segments.segment_memberships, predictions.profile_scores, decide.decisions
        events = c.execute(select(e).where(e.c.profile_key.in_(keys)).order_by(e.c.occurred_at_ms))
        found = SubjectRecords(
            events=[EventRecord(**_fields(row, EventRecord.__slots__)) for row in events]
        )
        held = c.execute(select(h).where(h.c.profile_key.in_(keys)).order_by(h.c.occurred_at_ms))
        found.held_events = [
            HeldEventRecord(**_fields(row, HeldEventRecord.__slots__)) for row in held
        ]
        found.consents = SqlConsentLog(c).history(keys)
        found.traits = list(
            c.execute(select(p.c.traits).where(p.c.profile_key.in_(keys))).scalars()
        )
        memberships = c.execute(
            select(m.c.segment, m.c.profile_key, m.c.entered_at_ms, m.c.exited_at_ms)
            .where(m.c.profile_key.in_(keys))
            .order_by(m.c.membership_id)
        )
        found.memberships = [MembershipRecord(*row) for row in memberships]
        scores = c.execute(select(s.c.name, s.c.probability).where(s.c.profile_key.in_(keys)))
        found.scores = [(name, float(probability)) for name, probability in scores]
        decided = c.execute(select(d).where(d.c.profile_key.in_(keys)).order_by(d.c.decided_at_ms))
        found.decisions = [DecisionRecord(*row) for row in decided]
        return found

    def delete(self, profile_keys: Collection[str], ids: Collection[str]) -> dict[str, int]:
        deleted: dict[str, int] = {}
        keys, bare = sorted(profile_keys), sorted(ids)
        for entry in SUBJECT_COLUMNS:
            values = keys if entry.holds == "key" else bare
            column = entry.table.c[entry.column]
            result = self._c.execute(delete(entry.table).where(column.in_(values)))
            name = str(entry.table.name)
            deleted[name] = deleted.get(name, 0) + int(result.rowcount or 0)
        q = core.quarantine
        matches = [q.c.raw.contains(orjson.dumps(i).decode(), autoescape=True) for i in bare]
        deleted[str(q.name)] = 0
        if matches:  # (an OR of nothing would match every row)
            result = self._c.execute(delete(q).where(or_(*matches)))
            deleted[str(q.name)] = int(result.rowcount or 0)
        return deleted

    def delete_events_before(self, event_type: str, before_ms: int) -> int:
        removed = 0
        for table in (core.events, privacy.held_events):
            result = self._c.execute(
                delete(table).where(table.c.type == event_type, table.c.occurred_at_ms < before_ms)
            )
            removed += int(result.rowcount or 0)
        return removed


def _fields(row: Row[Any], names: Iterable[str]) -> dict[str, Any]:
    """The columns ``names`` of a row, by name: the keyword arguments of a record."""
    mapping = row._mapping
    return {name: mapping[name] for name in names}
