"""Subject export: everything held about a person, as versioned JSON with a published schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from persona.clock import Clock
from persona.errors import NotFoundError
from persona.privacy.audit import AuditLog, connection_of
from persona.privacy.consent import ConsentService
from persona.privacy.erasure import resolve_subject
from persona.privacy.personal import PersonalData
from persona.privacy.schema import (
    ExportConsent,
    ExportDecision,
    ExportEvent,
    ExportMembership,
    SubjectExport,
)
from persona.profiles.schema import Profile
from persona.profiles.service import ProfileService
from persona.storage.sql import SqlStorage
from persona.storage.tables import events, profiles
from persona.storage.tables.decide import decisions
from persona.storage.tables.predictions import profile_scores
from persona.storage.tables.privacy import held_events
from persona.storage.tables.segments import segment_memberships


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def export_json_schema() -> dict[str, Any]:
    schema = SubjectExport.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://persona.local/schemas/export.schema.json"
    return schema


def write_json_schema(path: Path) -> None:
    path.write_text(json.dumps(export_json_schema(), indent=2, sort_keys=True) + "\n")


class ExportService:
    def __init__(
        self,
        storage: SqlStorage,
        clock: Clock,
        profiles_service: ProfileService,
        consent: ConsentService,
        personal: PersonalData,
        audit: AuditLog,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._profiles = profiles_service
        self._consent = consent
        self._personal = personal
        self._audit = audit

    def export(self, subject_id: str, *, actor: str) -> SubjectExport:
        with self._storage.read() as uow:
            connection = connection_of(uow)
            subject = resolve_subject(connection, subject_id)
            keys = sorted(subject.keys)
            found_events = self._events(connection, keys)
            consents = self._consent.history(connection, keys)
            traits_rows = connection.execute(
                select(profiles.c.traits).where(profiles.c.profile_key.in_(keys))
            ).all()
            memberships = connection.execute(
                select(segment_memberships)
                .where(segment_memberships.c.profile_key.in_(keys))
                .order_by(segment_memberships.c.membership_id)
            ).all()
            scores = connection.execute(
                select(profile_scores.c.name, profile_scores.c.probability).where(
                    profile_scores.c.profile_key.in_(keys)
                )
            ).all()
            decided = connection.execute(
                select(decisions)
                .where(decisions.c.profile_key.in_(keys))
                .order_by(decisions.c.decided_at_ms)
            ).all()
        if not (found_events or consents or traits_rows or memberships or decided):
            raise NotFoundError(f"nothing is held about {subject_id!r}")
        profile = self._profile(subject_id)
        traits: dict[str, Any] = {}
        for (row_traits,) in traits_rows:
            traits.update(self._personal.decrypt(row_traits or {}))
        export = SubjectExport(
            subject_id=subject_id,
            exported_at=_at(self._clock.now_ms()),
            profile=profile,
            traits=traits,
            aliases=sorted(subject.ids),
            events=found_events,
            consents=[
                ExportConsent(
                    purpose=c.purpose,
                    status=c.status,
                    effective_at=_at(c.effective_at_ms),
                    source=c.source,
                    recorded_at=_at(c.recorded_at_ms),
                )
                for c in consents
            ],
            segment_memberships=[
                ExportMembership(
                    segment=m.segment,
                    entered_at=_at(m.entered_at_ms),
                    exited_at=None if m.exited_at_ms is None else _at(m.exited_at_ms),
                )
                for m in memberships
            ],
            scores={name: float(p) for name, p in scores},
            decisions=[
                ExportDecision(
                    decision_id=d.decision_id,
                    placement=d.placement,
                    variant=d.variant,
                    reason=d.reason,
                    decided_at=_at(d.decided_at_ms),
                )
                for d in decided
            ],
        )
        self._audit.record(
            actor,
            "subject.export",
            f"subject:{self._personal.id_hash(subject_id)}",
            {"events": len(found_events), "consents": len(consents)},
        )
        return export

    def _profile(self, subject_id: str) -> Profile | None:
        try:
            profile = self._profiles.get(subject_id)
        except NotFoundError:
            return None
        return profile.model_copy(update={"traits": self._personal.decrypt(profile.traits)})

    def _events(self, connection: Connection, keys: list[str]) -> list[ExportEvent]:
        found = []
        for table, used in ((events, True), (held_events, False)):
            rows = connection.execute(
                select(table).where(table.c.profile_key.in_(keys)).order_by(table.c.occurred_at_ms)
            )
            for r in rows:
                found.append(
                    ExportEvent(
                        event_id=r.event_id,
                        type=r.type,
                        user_id=r.user_id,
                        anonymous_id=r.anonymous_id,
                        item_id=r.item_id,
                        occurred_at=_at(r.occurred_at_ms),
                        received_at=_at(r.received_at_ms),
                        value=r.value,
                        properties=self._personal.decrypt(r.properties),
                        context=self._personal.decrypt(r.context),
                        used=used,
                    )
                )
        found.sort(key=lambda e: (e.occurred_at, e.event_id))
        return found
