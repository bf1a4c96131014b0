"""What ingest asks privacy, once per batch: transform personal values, refuse erased people,
record consent events, and keep events without consent out of everything that learns.

The cost on the fast path is two indexed queries per batch (tombstones, consent history), never
one per event, and a dictionary scan of each event's properties and context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from persona.errors import InvalidRequestError
from persona.identity import anonymous_key, user_key
from persona.ingest.service import Rejection, ValidEvent
from persona.privacy.consent import USE_PURPOSES, ConsentService, load_book
from persona.privacy.personal import PersonalData
from persona.storage.protocols import Tombstones, UnitOfWork
from persona.storage.records import HeldEventRecord

CONSENT_EVENT = "consent"


@dataclass(slots=True)
class Screened:
    used: list[ValidEvent] = field(default_factory=list)  # folded, stored, seen by listeners
    kept: list[ValidEvent] = field(default_factory=list)  # consent events: recorded, set aside
    held: list[ValidEvent] = field(default_factory=list)  # no consent: set aside, never used
    duplicates: list[ValidEvent] = field(default_factory=list)
    refused: list[Rejection] = field(default_factory=list)  # answered rejected, not quarantined


class PrivacyGate:
    def __init__(self, personal: PersonalData, consent: ConsentService, policy: str) -> None:
        self.personal = personal
        self.consent = consent
        self.store_unconsented = policy == "store"

    def scrub(self, document: dict[str, Any]) -> dict[str, Any] | None:
        return self.personal.scrub(document)

    @property
    def payload_key(self) -> bytes:
        return self.personal.derived_key(b"payload-hash")

    def scrub_raw(self, raw: str) -> str:
        return self.personal.scrub_raw(raw)

    def screen(self, uow: UnitOfWork, events: Sequence[ValidEvent], now_ms: int) -> Screened:
        result = Screened()
        if not events:
            return result
        users = {e.user_id for e in events if e.user_id}
        anonymous = {e.anonymous_id for e in events if e.anonymous_id}
        keys = [*map(user_key, users), *map(anonymous_key, anonymous)]
        erased = self._erased(uow.tombstones, keys)
        book = load_book(uow.consents, keys, self.consent.required)
        if not erased and book.decides_nothing() and CONSENT_EVENT not in {e.type for e in events}:
            result.used = list(events)  # the common case, without a look at each event
            return result
        consent_events = []
        for event in events:
            if erased and not erased.isdisjoint(_keys(event)):
                result.refused.append(
                    Rejection(
                        event.index,
                        "subject_erased",
                        "this person was erased; events about them are refused",
                        None,
                        "",
                        event.event_id,
                        quarantine=False,
                    )
                )
            elif event.type == CONSENT_EVENT:
                checked = self._consent_changes(event)
                if isinstance(checked, Rejection):
                    result.refused.append(checked)
                    continue
                key = _keys(event)[0] or _keys(event)[1] or ""
                for purpose, status in checked.items():
                    book.add(key, purpose, status.value, event.occurred_at_ms)
                consent_events.append((event, key, checked))
            else:
                missing = book.refused(*_keys(event), USE_PURPOSES, event.occurred_at_ms)
                if not missing:
                    result.used.append(event)
                elif self.store_unconsented:
                    result.held.append(event)
                else:
                    result.refused.append(
                        Rejection(
                            event.index,
                            "consent_not_granted",
                            f"not granted at the event's time: {', '.join(missing)}",
                            None,
                            "",
                            event.event_id,
                            quarantine=False,
                        )
                    )
        candidates = [*result.held, *(e for e, _, _ in consent_events)]
        known = uow.held_events.held([e.event_id for e in candidates]) if candidates else set()
        for event, key, checked in consent_events:
            if event.event_id in known:
                result.duplicates.append(event)
                continue
            self.consent.record(
                uow,
                key,
                checked,
                effective_at_ms=event.occurred_at_ms,
                source="event",
                actor="ingest",
            )
            result.kept.append(event)
        self._hold(uow, result, known, now_ms)
        return result

    def _erased(self, tombstones: Tombstones, keys: list[str]) -> set[str]:
        """The profile keys among ``keys`` that were erased."""
        if not tombstones.any():
            return set()
        hashes: dict[str, set[str]] = {}
        for key in keys:
            for digest in self.personal.tombstone_hashes(key):
                hashes.setdefault(digest, set()).add(key)
        return set().union(*(hashes[h] for h in tombstones.erased(list(hashes))))

    def _consent_changes(self, event: ValidEvent) -> dict[str, Any] | Rejection:
        purposes = (event.properties or {}).get("purposes")
        try:
            if not isinstance(purposes, dict):
                raise InvalidRequestError('a consent event needs properties {"purposes": {...}}')
            return dict(self.consent.check(purposes))
        except InvalidRequestError as exc:
            return Rejection(
                event.index,
                "invalid_consent",
                exc.detail,
                "properties.purposes",
                "",
                event.event_id,
                quarantine=False,
            )

    def _hold(self, uow: UnitOfWork, result: Screened, known: set[str], now_ms: int) -> None:
        """Store the kept and held events aside, once per event id: a retry is a duplicate."""

        def first_time(events: list[ValidEvent]) -> list[ValidEvent]:
            fresh = []
            for event in events:
                if event.event_id in known:
                    result.duplicates.append(event)
                else:
                    known.add(event.event_id)
                    fresh.append(event)
            return fresh

        result.kept, result.held = first_time(result.kept), first_time(result.held)
        fresh = [*result.kept, *result.held]
        if fresh:
            uow.held_events.hold(
                [
                    HeldEventRecord(
                        event_id=e.event_id,
                        type=e.type,
                        profile_key=_keys(e)[0] or _keys(e)[1] or "",
                        user_id=e.user_id,
                        anonymous_id=e.anonymous_id,
                        item_id=e.item_id,
                        occurred_at_ms=e.occurred_at_ms,
                        received_at_ms=now_ms,
                        value=e.value,
                        properties=e.properties,
                        context=e.context,
                        reason="consent" if e.type == CONSENT_EVENT else "not consented",
                    )
                    for e in fresh
                ]
            )


def _keys(event: ValidEvent) -> tuple[str | None, str | None]:
    return (
        user_key(event.user_id) if event.user_id else None,
        anonymous_key(event.anonymous_id) if event.anonymous_id else None,
    )
