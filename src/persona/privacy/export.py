"""Subject export: everything held about a person, as versioned JSON with a published schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from persona.clock import Clock, utc
from persona.errors import NotFoundError
from persona.identity import Kind
from persona.privacy.audit import AuditLog
from persona.privacy.erasure import subject_of
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
from persona.storage.protocols import Storage
from persona.storage.records import EventRecord, HeldEventRecord


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
        storage: Storage,
        clock: Clock,
        profiles_service: ProfileService,
        personal: PersonalData,
        audit: AuditLog,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._profiles = profiles_service
        self._personal = personal
        self._audit = audit

    def export(self, subject_id: str, *, actor: str, id_type: Kind | None = None) -> SubjectExport:
        with self._storage.read() as uow:
            subject = subject_of(uow.subjects, subject_id, id_type)
            stored = uow.subjects.export(sorted(subject.keys))
        found_events = self._events(stored.events, stored.held_events)
        consents = stored.consents
        if not (
            found_events or consents or stored.traits or stored.memberships or stored.decisions
        ):
            raise NotFoundError(f"nothing is held about {subject_id!r}")
        profile = self._profile(subject_id, subject.keys)
        traits: dict[str, Any] = {}
        for row_traits in stored.traits:
            traits.update(self._personal.decrypt(row_traits or {}))
        export = SubjectExport(
            subject_id=subject_id,
            exported_at=utc(self._clock.now_ms()),
            profile=profile,
            traits=traits,
            aliases=sorted(subject.ids),
            events=found_events,
            consents=[
                ExportConsent(
                    purpose=c.purpose,
                    status=c.status,
                    effective_at=utc(c.effective_at_ms),
                    source=c.source,
                    recorded_at=utc(c.recorded_at_ms),
                )
                for c in consents
            ],
            segment_memberships=[
                ExportMembership(
                    segment=m.segment,
                    entered_at=utc(m.entered_at_ms),
                    exited_at=None if m.exited_at_ms is None else utc(m.exited_at_ms),
                )
                for m in stored.memberships
            ],
            scores=dict(stored.scores),
            decisions=[
                ExportDecision(
                    decision_id=d.decision_id,
                    placement=d.placement,
                    variant=d.variant,
                    reason=d.reason,
                    decided_at=utc(d.decided_at_ms),
                )
                for d in stored.decisions
            ],
        )
        self._audit.record(
            actor,
            "subject.export",
            f"subject:{self._personal.id_hash(subject_id)}",
            {"events": len(found_events), "consents": len(consents)},
        )
        return export

    def _profile(self, subject_id: str, keys: set[str]) -> Profile | None:
        try:
            profile = self._profiles.get(subject_id)
        except NotFoundError:
            return None
        if profile.profile_key not in keys:
            return None  # the same text in the other namespace: somebody else's profile
        return profile.model_copy(update={"traits": self._personal.decrypt(profile.traits)})

    def _events(self, used: list[EventRecord], held: list[HeldEventRecord]) -> list[ExportEvent]:
        found = []
        for records, was_used in ((used, True), (held, False)):
            for r in records:
                found.append(
                    ExportEvent(
                        event_id=r.event_id,
                        type=r.type,
                        user_id=r.user_id,
                        anonymous_id=r.anonymous_id,
                        item_id=r.item_id,
                        occurred_at=utc(r.occurred_at_ms),
                        received_at=utc(r.received_at_ms),
                        value=r.value,
                        properties=self._personal.decrypt(r.properties),
                        context=self._personal.decrypt(r.context),
                        used=was_used,
                    )
                )
        found.sort(key=lambda e: (e.occurred_at, e.event_id))
        return found
