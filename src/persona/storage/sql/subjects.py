"""Everything stored about people, across the tables of every domain: the registry of the
columns that hold a person, and what erasure, export and retention do with them.

``SUBJECT_COLUMNS`` names each ``(table, column)`` that holds a subject id, and whether the
column holds a profile key (``u:<user id>`` / ``a:<anonymous id>``), a user id or an anonymous
id. A table that holds people adds its line here: erasure then deletes its rows without further
changes (and tests/storage checks that every column named like a person's key or id is listed).
A user id and an anonymous id with the same text are two people: each column is matched only
against the ids of its own namespace. Quarantine rows hold ids only inside their raw payload, so
erasure matches them there instead (``_names_one_of``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import Table, and_, delete, func, or_, select
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import ColumnElement

from persona.identity import split_key
from persona.storage import tables as core
from persona.storage.records import (
    DecisionRecord,
    EventRecord,
    HeldEventRecord,
    MembershipRecord,
    SubjectRecords,
)
from persona.storage.sql.common import chunks, is_sqlite
from persona.storage.sql.consents import SqlConsentLog
from persona.storage.tables import decide, predictions, privacy, segments, stream

Holds = Literal["key", "user", "anonymous"]


@dataclass(frozen=True, slots=True)
class SubjectColumn:
    table: Table
    column: str
    holds: Holds = "key"


SUBJECT_COLUMNS: tuple[SubjectColumn, ...] = (
    # core
    SubjectColumn(core.events, "profile_key"),
    SubjectColumn(core.events, "user_id", "user"),
    SubjectColumn(core.events, "anonymous_id", "anonymous"),
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
    SubjectColumn(privacy.held_events, "user_id", "user"),
    SubjectColumn(privacy.held_events, "anonymous_id", "anonymous"),
    # the change stream's messages not yet published
    SubjectColumn(stream.outbox, "profile_key"),
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

    def links(self, profile_keys: Collection[str]) -> list[tuple[str, str]]:
        keys = list(profile_keys)
        a = core.aliases
        found = self._c.execute(
            select(a.c.alias_key, a.c.profile_key)
            .where(or_(a.c.alias_key.in_(keys), a.c.profile_key.in_(keys)))
            .order_by(a.c.alias_key)
        )
        return [(alias, target) for alias, target in found]

    def holding(self, profile_keys: Collection[str]) -> set[str]:
        keys = list(profile_keys)
        if not keys:
            return set()
        found: set[str] = set()
        for entry in SUBJECT_COLUMNS:
            if entry.holds != "key":
                continue
            column = entry.table.c[entry.column]
            left = [k for k in keys if k not in found]
            if not left:
                break
            found.update(
                self._c.execute(select(column).where(column.in_(left)).distinct()).scalars()
            )
        return found

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

    def delete(self, profile_keys: Collection[str]) -> dict[str, int]:
        deleted: dict[str, int] = {}
        keys = sorted(profile_keys)
        ids: dict[str, list[str]] = {"key": keys, "user": [], "anonymous": []}
        for key in keys:
            kind, bare = split_key(key)
            ids[kind].append(bare)
        for entry in SUBJECT_COLUMNS:
            table = entry.table
            condition: ColumnElement[bool] = table.c[entry.column].in_(ids[entry.holds])
            if entry.holds == "anonymous" and "user_id" in table.c:
                # an anonymous id on a known user's row is that user's row, not the visitor's
                condition = and_(
                    condition,
                    or_(table.c.user_id.is_(None), table.c.user_id.in_(ids["user"])),
                )
            result = self._c.execute(delete(table).where(condition))
            name = str(table.name)
            deleted[name] = deleted.get(name, 0) + int(result.rowcount or 0)
        deleted[str(core.quarantine.name)] = self._delete_quarantined(ids["user"], ids["anonymous"])
        return deleted

    def _delete_quarantined(self, users: list[str], anonymous: list[str]) -> int:
        """Delete the quarantined payloads that name one of the ids (``_names_one_of``).

        Candidates are the rows whose raw text contains an id, compared case-sensitively (SQL
        ``LIKE`` ignores case on SQLite, and ``CaseX`` is not ``casex``); each is then read as
        JSON to tell whose it is."""
        q = core.quarantine
        texts = sorted({*users, *anonymous})
        if not texts:
            return 0
        find = func.instr if is_sqlite(self._c) else func.strpos
        doomed: list[int] = []
        for chunk in chunks(texts, 50):
            rows = self._c.execute(
                select(q.c.quarantine_id, q.c.raw).where(
                    or_(*(find(q.c.raw, t) > 0 for t in chunk))
                )
            )
            doomed += [row_id for row_id, raw in rows if _names_one_of(raw, users, anonymous)]
        removed = 0
        for ids_chunk in chunks(sorted(set(doomed))):
            result = self._c.execute(delete(q).where(q.c.quarantine_id.in_(ids_chunk)))
            removed += int(result.rowcount or 0)
        return removed

    def delete_events_before(self, event_type: str, before_ms: int) -> int:
        removed = 0
        for table in (core.events, privacy.held_events):
            result = self._c.execute(
                delete(table).where(table.c.type == event_type, table.c.occurred_at_ms < before_ms)
            )
            removed += int(result.rowcount or 0)
        return removed


def _names_one_of(raw: str, users: Collection[str], anonymous: Collection[str]) -> bool:
    """Whether a quarantined payload is about one of the people.

    An event object is theirs when its ``user_id`` is one of ``users`` or its ``anonymous_id``
    one of ``anonymous`` (as a string or as the number a client sent); it also holds their data
    when one of their ids stands as a whole token anywhere else in it (``"ref": "user:42"``). A
    payload that is not an event object is theirs when one of their ids stands in it as a whole
    token. The same text in the other namespace (an anonymous id equal to the user id) is
    someone else's.
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        return any(_token(i).search(raw) for i in (*users, *anonymous))
    for field, ids in (("user_id", users), ("anonymous_id", anonymous)):
        value = document.pop(field, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) in ids:
            return True
    rest = orjson.dumps(document).decode()
    return any(_token(i).search(rest) for i in (*users, *anonymous))


def _token(text: str) -> re.Pattern[str]:
    """``text`` standing alone: not inside a longer word or number."""
    return re.compile(rf"(?<![\w-]){re.escape(text)}(?![\w-])")


def _fields(row: Row[Any], names: Iterable[str]) -> dict[str, Any]:
    """The columns ``names`` of a row, by name: the keyword arguments of a record."""
    mapping = row._mapping
    return {name: mapping[name] for name in names}
