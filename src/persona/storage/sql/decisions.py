"""Placements and their versions, the decision log, attributed outcomes, bandit counts.

Inserts that must happen at most once per key (outcomes and rewards, keyed by event id) use ON
CONFLICT DO NOTHING, and bandit counts are incremented in the database (ON CONFLICT DO UPDATE
... + delta), so two API processes never overwrite each other's counts.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from persona.storage.records import (
    DecisionRecord,
    OutcomeRecord,
    PlacementRecord,
    StreamMessage,
    VersionRecord,
)
from persona.storage.sql.common import chunks, upsert_insert
from persona.storage.sql.stream import SqlOutbox
from persona.storage.tables.decide import (
    bandit_arms,
    bandit_rewards,
    decision_outcomes,
    decisions,
    placement_versions,
    placements,
)

# A batch of the decision log in one statement, its rows one JSON array parameter, run as a
# transaction of its own (``SqlStorage.write_statement``). ``executemany`` would run a statement
# per row, and the driver gives up the interpreter lock around each one: with the event loop
# busy, taking it back costs up to a switch interval (5 ms) each time.
SQLITE_LOG = """
INSERT INTO decisions (
    decision_id, placement, version, variant, profile_key, context, policy, cohort, holdout,
    bucket, reason, decided_at_ms
)
SELECT
    json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
    json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
    json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]'),
    json_extract(value, '$[9]'), json_extract(value, '$[10]'), json_extract(value, '$[11]')
FROM json_each(?)
"""


def log_rows(records: Sequence[DecisionRecord]) -> str:
    """The one parameter of ``SQLITE_LOG``: the records as a JSON array of arrays, the context
    as the JSON text the column type writes."""
    rows = [
        (
            r.decision_id,
            r.placement,
            r.version,
            r.variant,
            r.profile_key,
            orjson.dumps(r.context).decode(),
            r.policy,
            r.cohort,
            int(r.holdout),
            r.bucket,
            r.reason,
            r.decided_at_ms,
        )
        for r in records
    ]
    return orjson.dumps(rows).decode()


class SqlDecisionStore:
    def __init__(self, connection: Connection, outbox: SqlOutbox | None = None) -> None:
        self._c = connection
        self._outbox = outbox

    def _placement_query(self) -> Any:
        p, v = placements, placement_versions
        return select(
            p.c.name,
            p.c.current_version,
            p.c.status,
            v.c.policy,
            v.c.config,
            p.c.created_at_ms,
            p.c.updated_at_ms,
            v.c.created_at_ms.label("version_created_at_ms"),
        ).join(v, (v.c.placement == p.c.name) & (v.c.version == p.c.current_version))

    def placements(self, names: Collection[str] | None = None) -> dict[str, PlacementRecord]:
        query = self._placement_query().order_by(placements.c.name)
        if names is not None:
            query = query.where(placements.c.name.in_(list(names)))
        return {row[0]: PlacementRecord(*row) for row in self._c.execute(query)}

    def versions(self, name: str) -> list[VersionRecord]:
        v = placement_versions
        rows = self._c.execute(select(v).where(v.c.placement == name).order_by(v.c.version))
        return [VersionRecord(*row) for row in rows]

    def version(self, name: str, version: int) -> VersionRecord | None:
        v = placement_versions
        row = self._c.execute(
            select(v).where(v.c.placement == name, v.c.version == version)
        ).first()
        return VersionRecord(*row) if row else None

    def create(self, name: str, policy: str, config: dict[str, Any], now_ms: int) -> None:
        self._c.execute(
            placements.insert().values(
                name=name,
                current_version=1,
                status="active",
                created_at_ms=now_ms,
                updated_at_ms=now_ms,
            )
        )
        self._add_version(name, 1, policy, config, now_ms)

    def add_version(
        self, name: str, version: int, policy: str, config: dict[str, Any], now_ms: int
    ) -> None:
        self._add_version(name, version, policy, config, now_ms)
        self._c.execute(
            update(placements)
            .where(placements.c.name == name)
            .values(current_version=version, updated_at_ms=now_ms)
        )

    def _add_version(
        self, name: str, version: int, policy: str, config: dict[str, Any], now_ms: int
    ) -> None:
        self._c.execute(
            placement_versions.insert().values(
                placement=name, version=version, policy=policy, config=config, created_at_ms=now_ms
            )
        )

    def set_status(self, name: str, status: str, now_ms: int) -> None:
        self._c.execute(
            update(placements)
            .where(placements.c.name == name)
            .values(status=status, updated_at_ms=now_ms)
        )

    def log(self, records: Sequence[DecisionRecord]) -> None:
        if records:
            self._c.execute(decisions.insert(), [asdict(r) for r in records])
        if records and self._outbox is not None:
            self._outbox.add(
                [
                    StreamMessage(
                        f"decision:{r.decision_id}", "decision", _announced(r), r.profile_key
                    )
                    for r in records
                ]
            )

    def decisions(self, decision_ids: Collection[str]) -> dict[str, DecisionRecord]:
        found: dict[str, DecisionRecord] = {}
        for chunk in chunks(decision_ids):
            rows = self._c.execute(select(decisions).where(decisions.c.decision_id.in_(chunk)))
            found.update((row[0], DecisionRecord(*row)) for row in rows)
        return found

    def for_profile(self, profile_key: str, limit: int) -> list[DecisionRecord]:
        d = decisions
        rows = self._c.execute(
            select(d)
            .where(d.c.profile_key == profile_key)
            .order_by(d.c.decided_at_ms.desc(), d.c.decision_id.desc())
            .limit(limit)
        )
        return [DecisionRecord(*row) for row in rows]

    def exposures(
        self, placement: str, version: int, cohorts: Collection[str]
    ) -> list[tuple[str, str | None, str, int, int]]:
        d = decisions
        rows = self._c.execute(
            select(
                d.c.cohort, d.c.variant, d.c.profile_key, func.count(), func.min(d.c.decided_at_ms)
            )
            .where(d.c.placement == placement, d.c.version == version, d.c.cohort.in_(cohorts))
            .group_by(d.c.cohort, d.c.variant, d.c.profile_key)
        )
        return [(c, v, k, int(n), int(first)) for c, v, k, n, first in rows]

    def outcome_totals(
        self, placement: str, version: int, cohorts: Collection[str]
    ) -> list[tuple[str, str | None, str, str, int, float | None]]:
        o = decision_outcomes
        rows = self._c.execute(
            select(
                o.c.cohort,
                o.c.variant,
                o.c.profile_key,
                o.c.kind,
                func.count(),
                func.sum(o.c.value),
            )
            .where(o.c.placement == placement, o.c.version == version, o.c.cohort.in_(cohorts))
            .group_by(o.c.cohort, o.c.variant, o.c.profile_key, o.c.kind)
        )
        return [
            (c, v, k, kind, int(n), None if total is None else float(total))
            for c, v, k, kind, n, total in rows
        ]

    def add_outcomes(self, records: Sequence[OutcomeRecord]) -> None:
        if records:
            t = decision_outcomes
            insert = upsert_insert(self._c, t)
            statement = insert.on_conflict_do_nothing(index_elements=[t.c.event_id])
            self._c.execute(
                statement,
                [
                    {
                        "event_id": r.event_id,
                        "decision_id": r.decision_id,
                        "placement": r.placement,
                        "version": r.version,
                        "variant": r.variant,
                        "cohort": r.cohort,
                        "profile_key": r.profile_key,
                        "kind": r.kind,
                        "value": r.value,
                        "occurred_at_ms": r.occurred_at_ms,
                    }
                    for r in records
                ],
            )

    def arm_counts(
        self, placement: str, version: int, bucket: str
    ) -> dict[str, tuple[float, float]]:
        a = bandit_arms
        rows = self._c.execute(
            select(a.c.variant, a.c.successes, a.c.failures).where(
                a.c.placement == placement, a.c.version == version, a.c.bucket == bucket
            )
        )
        return {variant: (float(s), float(f)) for variant, s, f in rows}

    def all_arm_counts(self, placement: str, version: int) -> dict[str, dict[str, list[float]]]:
        a = bandit_arms
        rows = self._c.execute(
            select(a.c.bucket, a.c.variant, a.c.successes, a.c.failures)
            .where(a.c.placement == placement, a.c.version == version)
            .order_by(a.c.bucket, a.c.variant)
        )
        found: dict[str, dict[str, list[float]]] = {}
        for bucket, variant, s, f in rows:
            found.setdefault(bucket, {})[variant] = [float(s), float(f)]
        return found

    def applied_rewards(
        self, event_ids: Collection[str], decision_ids: Collection[str]
    ) -> tuple[set[str], dict[str, set[str]]]:
        """Event ids already applied, and the kinds already applied per decision."""
        r = bandit_rewards
        seen: set[str] = set()
        kinds: dict[str, set[str]] = {}
        for chunk in chunks(event_ids):
            seen.update(
                self._c.execute(select(r.c.event_id).where(r.c.event_id.in_(chunk))).scalars()
            )
        for chunk in chunks(decision_ids):
            rows = self._c.execute(
                select(r.c.decision_id, r.c.kind).where(r.c.decision_id.in_(chunk))
            )
            for decision_id, kind in rows:
                kinds.setdefault(decision_id, set()).add(kind)
        return seen, kinds

    def apply_rewards(
        self,
        rewards: Sequence[tuple[str, str, str]],
        deltas: Mapping[tuple[str, int, str, str], tuple[float, float]],
        now_ms: int,
    ) -> None:
        """Record ``(event_id, decision_id, kind)`` rows and add the count deltas per arm."""
        if rewards:
            self._c.execute(
                bandit_rewards.insert(),
                [
                    {"event_id": e, "decision_id": d, "kind": k, "applied_at_ms": now_ms}
                    for e, d, k in rewards
                ],
            )
        a = bandit_arms
        for (placement, version, bucket, variant), (ds, df) in deltas.items():
            statement = upsert_insert(self._c, a).values(
                placement=placement,
                version=version,
                bucket=bucket,
                variant=variant,
                successes=ds,
                failures=df,
                updated_at_ms=now_ms,
            )
            statement = statement.on_conflict_do_update(
                index_elements=[a.c.placement, a.c.version, a.c.bucket, a.c.variant],
                set_={
                    "successes": a.c.successes + statement.excluded.successes,
                    "failures": a.c.failures + statement.excluded.failures,
                    "updated_at_ms": now_ms,
                },
            )
            self._c.execute(statement)


def _announced(record: DecisionRecord) -> dict[str, Any]:
    """A decision as the change stream tells it (its context stays in the store)."""
    return {
        "decision_id": record.decision_id,
        "placement": record.placement,
        "version": record.version,
        "variant": record.variant,
        "profile_key": record.profile_key,
        "policy": record.policy,
        "cohort": record.cohort,
        "holdout": record.holdout,
        "reason": record.reason,
        "decided_at_ms": record.decided_at_ms,
    }
