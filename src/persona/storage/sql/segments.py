"""Segment definitions, memberships (with their history), and rules evaluated for everyone.

A rule is evaluated in batch as one SELECT of the matching profile keys (``segment_rules``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.engine import Connection

from persona.rules import Rule
from persona.storage import tables
from persona.storage.records import MembershipRecord, SegmentRecord, StreamMessage
from persona.storage.sql.common import (
    bucket_start,
    chunks,
    driver_connection,
    is_sqlite,
    statement_deadline,
)
from persona.storage.sql.segment_rules import select_members
from persona.storage.sql.stream import SqlOutbox
from persona.storage.tables.segments import segment_memberships, segments

_OPEN_SEGMENTS = (
    "SELECT segment FROM segment_memberships"
    " WHERE profile_key = %s AND exited_at_ms IS NULL ORDER BY segment"
)
_OPEN_SEGMENTS_QMARK = _OPEN_SEGMENTS.replace("%s", "?")


class SqlSegmentStore:
    """Segment tables on the connection of one unit of work."""

    def __init__(self, connection: Connection, outbox: SqlOutbox | None = None) -> None:
        self._c = connection
        self._outbox = outbox

    def _announce(self, changes: Collection[tuple[str, str]], change: str, at_ms: int) -> None:
        """Segment changes (segment, profile key) as messages of the change stream."""
        if self._outbox is None or not self._outbox.enabled:
            return
        self._outbox.add(
            [
                StreamMessage(
                    f"segment:{segment}:{key}:{change}:{at_ms}",
                    "segment",
                    {"segment": segment, "profile_key": key, "change": change, "at_ms": at_ms},
                    key,
                )
                for segment, key in sorted(changes)
            ]
        )

    def definitions(self) -> list[SegmentRecord]:
        rows = self._c.execute(select(segments).order_by(segments.c.name))
        return [_segment(row._mapping) for row in rows]

    def get(self, name: str) -> SegmentRecord | None:
        row = self._c.execute(select(segments).where(segments.c.name == name)).first()
        return _segment(row._mapping) if row else None

    def insert(self, record: SegmentRecord) -> None:
        self._c.execute(segments.insert().values(**_fields(record)))

    def replace(self, record: SegmentRecord) -> None:
        values = _fields(record)
        self._c.execute(update(segments).where(segments.c.name == record.name).values(**values))

    def delete(self, name: str) -> None:
        m = segment_memberships
        self._c.execute(delete(m).where(m.c.segment == name))
        self._c.execute(delete(segments).where(segments.c.name == name))

    def open_members(self, segment: str) -> set[str]:
        m = segment_memberships
        query = select(m.c.profile_key).where(m.c.segment == segment, m.c.exited_at_ms.is_(None))
        return set(self._c.execute(query).scalars())

    def open_segments_of(self, profile_key: str) -> list[str]:
        """The segments one profile is in now, by name: the profile read's lean path.

        Driver-level SQL with one bound parameter: a profile read must stay well under a
        millisecond, and building and compiling a statement costs more than running it.
        """
        if is_sqlite(self._c):
            rows = driver_connection(self._c).execute(_OPEN_SEGMENTS_QMARK, (profile_key,))
        else:
            rows = self._c.exec_driver_sql(_OPEN_SEGMENTS, (profile_key,))
        return [segment for (segment,) in rows]

    def segment_item_counts(
        self, since_ms: int, ignored_types: Sequence[str]
    ) -> list[tuple[str, str, int]]:
        """``(segment, item_id, events)``: what current members did since ``since_ms``."""
        e, m = tables.events, segment_memberships
        joined = e.join(m, (m.c.profile_key == e.c.profile_key) & m.c.exited_at_ms.is_(None))
        query = (
            select(m.c.segment, e.c.item_id, func.count())
            .select_from(joined)
            .where(
                e.c.occurred_at_ms >= since_ms,
                e.c.item_id.is_not(None),
                e.c.type.not_in(list(ignored_types)),
            )
            .group_by(m.c.segment, e.c.item_id)
        )
        return [(str(s), str(item), int(n)) for s, item, n in self._c.execute(query)]

    def open_memberships_of(self, profile_keys: Collection[str]) -> dict[str, set[str]]:
        m = segment_memberships
        found: dict[str, set[str]] = {}
        for chunk in chunks(profile_keys):
            rows = self._c.execute(
                select(m.c.profile_key, m.c.segment).where(
                    m.c.profile_key.in_(chunk), m.c.exited_at_ms.is_(None)
                )
            )
            for key, segment in rows:
                found.setdefault(key, set()).add(segment)
        return found

    def enter(self, segment: str, profile_keys: Collection[str], at_ms: int) -> None:
        if profile_keys:
            self._c.execute(
                segment_memberships.insert(),
                [
                    {"segment": segment, "profile_key": k, "entered_at_ms": at_ms}
                    for k in sorted(profile_keys)
                ],
            )
            self._announce([(segment, k) for k in profile_keys], "enter", at_ms)

    def exit(self, segment: str, profile_keys: Collection[str], at_ms: int) -> None:
        m = segment_memberships
        if self._outbox is not None and self._outbox.enabled:
            leaving = self.open_memberships_of(profile_keys)
            self._announce(
                [(segment, k) for k, held in leaving.items() if segment in held], "exit", at_ms
            )
        for chunk in chunks(profile_keys):
            self._c.execute(
                update(m)
                .where(
                    m.c.segment == segment, m.c.profile_key.in_(chunk), m.c.exited_at_ms.is_(None)
                )
                .values(exited_at_ms=at_ms)
            )

    def exit_all(self, profile_keys: Collection[str], at_ms: int) -> None:
        """Close every open membership of these profiles (profiles merged into another)."""
        m = segment_memberships
        if self._outbox is not None and self._outbox.enabled:
            leaving = self.open_memberships_of(profile_keys)
            self._announce([(s, k) for k, held in leaving.items() for s in held], "exit", at_ms)
        for chunk in chunks(profile_keys):
            self._c.execute(
                update(m)
                .where(m.c.profile_key.in_(chunk), m.c.exited_at_ms.is_(None))
                .values(exited_at_ms=at_ms)
            )

    def members(self, segment: str, *, after: str | None, limit: int) -> list[MembershipRecord]:
        m = segment_memberships
        query = (
            select(m)
            .where(m.c.segment == segment, m.c.exited_at_ms.is_(None))
            .order_by(m.c.profile_key)
            .limit(limit)
        )
        if after is not None:
            query = query.where(m.c.profile_key > after)
        return [_membership(row._mapping) for row in self._c.execute(query)]

    def member_count(self, segment: str) -> int:
        m = segment_memberships
        query = select(func.count()).where(m.c.segment == segment, m.c.exited_at_ms.is_(None))
        return int(self._c.execute(query).scalar_one())

    def history(self, profile_key: str) -> list[MembershipRecord]:
        m = segment_memberships
        query = (
            select(m)
            .where(m.c.profile_key == profile_key)
            .order_by(m.c.entered_at_ms, m.c.membership_id)
        )
        return [_membership(row._mapping) for row in self._c.execute(query)]

    def membership_changes(self, segment: str, bucket_ms: int) -> list[tuple[int, int, int]]:
        m = segment_memberships
        changes: dict[int, list[int]] = {}
        for column, slot in ((m.c.entered_at_ms, 0), (m.c.exited_at_ms, 1)):
            bucket = bucket_start(column, bucket_ms)
            query = (
                select(bucket, func.count())
                .where(m.c.segment == segment, column.is_not(None))
                .group_by(bucket)
            )
            for at, n in self._c.execute(query):
                changes.setdefault(int(at), [0, 0])[slot] += int(n)
        return [(at, entered, exited) for at, (entered, exited) in sorted(changes.items())]

    def matching(self, rule: Rule, now_ms: int) -> set[str]:
        return set(self._c.execute(self._select(rule, now_ms)).scalars())

    def preview(
        self, rule: Rule, now_ms: int, sample_size: int, timeout_ms: int | None = None
    ) -> tuple[int, list[str]]:
        query = self._select(rule, now_ms)
        with statement_deadline(self._c, timeout_ms):
            count = select(func.count()).select_from(query.subquery())
            size = self._c.execute(count).scalar_one()
            sample = list(
                self._c.execute(query.order_by("profile_key").limit(sample_size)).scalars()
            )
        return int(size), sample

    def _select(self, rule: Rule, now_ms: int) -> Select[str]:
        return select_members(rule, self._c.dialect.name, now_ms)


def _segment(m: Any) -> SegmentRecord:
    return SegmentRecord(**{name: m[name] for name in SegmentRecord.__slots__})


def _membership(m: Any) -> MembershipRecord:
    return MembershipRecord(**{name: m[name] for name in MembershipRecord.__slots__})


def _fields(record: SegmentRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in SegmentRecord.__slots__}
