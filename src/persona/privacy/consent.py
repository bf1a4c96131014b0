"""Consent per person and purpose, with its history, and the question "granted at time t?".

Every change is a new row (effective time, source, recorded time); nothing is overwritten, so
the status at the time of any past event can be answered. Without any record for a purpose the
answer follows ``consent_required``: false means granted (the person never objected), true means
not granted. A person's consent is looked up under their user id and, for an anonymous id,
under the anonymous id and the user it was linked to.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from persona.cache import BULK_INVALIDATION, AnswerCache
from persona.clock import Clock
from persona.errors import InvalidRequestError, SubjectErasedError
from persona.identity import ANONYMOUS, anonymous_key, is_user_key, split_key, user_key
from persona.jobs import PeriodicJob
from persona.privacy.audit import AuditLog
from persona.storage.protocols import ConsentLog, Storage, UnitOfWork
from persona.storage.records import ConsentChange, ConsentEntry

ANALYTICS = "analytics"
PERSONALIZATION = "personalization"
# What folding an event into profiles, segments, models and decisions needs.
USE_PURPOSES = (ANALYTICS, PERSONALIZATION)
DECISION_SECONDS = 1.0  # how long another process's consent change may go unseen here
MAX_DECISIONS = 200_000  # (person, purpose) decisions kept, the least recently used dropped
HOLDERS_SECONDS = 60.0  # a snapshot of who has consent records answers this long at most
MAX_CHANGED = 1_000_000  # keys changed since the snapshot, kept to overrule it


@dataclass(frozen=True)
class _Holders:
    keys: frozenset[str]  # every key a person's consent could be found through
    expires_at: float  # time.monotonic()


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    REVOKED = "revoked"


@dataclass(slots=True)
class ConsentBook:
    """The consent history of a set of profile keys, loaded in one query."""

    required: bool
    # (key, purpose) -> effective times (sorted) and the status from each
    _times: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    _statuses: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # anonymous key -> user key

    def add(self, key: str, purpose: str, status: str, at_ms: int) -> None:
        times = self._times.setdefault((key, purpose), [])
        statuses = self._statuses.setdefault((key, purpose), [])
        slot = bisect.bisect_right(times, at_ms)
        times.insert(slot, at_ms)
        statuses.insert(slot, status)

    def status(self, keys: Sequence[str], purpose: str, at_ms: int) -> str | None:
        """The status in force at ``at_ms`` under the first of ``keys`` that has one."""
        for key in keys:
            times = self._times.get((key, purpose))
            if times:
                slot = bisect.bisect_right(times, at_ms)
                if slot:
                    return self._statuses[(key, purpose)][slot - 1]
        return None

    def granted(self, keys: Sequence[str], purpose: str, at_ms: int) -> bool:
        status = self.status(keys, purpose, at_ms)
        if status is None:
            return not self.required
        return status == ConsentStatus.GRANTED

    def decides_nothing(self) -> bool:
        """True when no one in the book has a record and consent is not required: every
        purpose is granted to everyone, at any time."""
        return not self._times and not self.required

    def refused(
        self,
        user_key: str | None,
        anonymous_key: str | None,
        purposes: Sequence[str],
        at_ms: int,
    ) -> list[str]:
        """The ``purposes`` not granted at ``at_ms`` to the person with these keys."""
        if not self._times:  # no one in the book has a record: the default decides alone
            return list(purposes) if self.required else []
        keys = self.keys_for(user_key, anonymous_key)
        return [p for p in purposes if not self.granted(keys, p, at_ms)]

    def keys_for(self, user_key: str | None, anonymous_key: str | None) -> list[str]:
        keys = [user_key] if user_key else []
        if anonymous_key:
            linked = self.links.get(anonymous_key)
            if linked and linked not in keys:
                keys.append(linked)
            keys.append(anonymous_key)
        return keys


def load_book(store: ConsentLog, keys: Iterable[str], required: bool) -> ConsentBook:
    """Consent rows of ``keys`` and of the users their anonymous keys link to: one query."""
    book = ConsentBook(required)
    wanted = sorted(set(keys))
    if not wanted:
        return book
    anonymous = [k for k in wanted if k.startswith(ANONYMOUS)]
    _fill(book, store.book(wanted, anonymous))
    return book


def _fill(book: ConsentBook, entries: Iterable[ConsentEntry]) -> None:
    """Add each change once (one found directly and through a link comes twice), and the links
    the changes were found through."""
    seen: set[int] = set()
    for consent_id, key, purpose, status, at_ms, via in entries:
        if via is not None:
            book.links[via] = key
        if consent_id not in seen:
            seen.add(consent_id)
            book.add(key, purpose, status, at_ms)


class ConsentService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        audit: AuditLog,
        purposes: Sequence[str],
        *,
        required: bool,
        hash_id: Callable[[str], str],
        tombstones_of: Callable[[str], list[str]],
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._audit = audit
        self.purposes = tuple(purposes)
        self.required = required
        self._change_listeners: list[Callable[[Collection[str]], None]] = []
        self._hash_id = hash_id
        self._tombstones_of = tombstones_of  # the tombstones that mark a profile key erased
        # Decisions of ``allows_person`` (asked on every recommendation), by (person, purpose):
        # kept DECISION_SECONDS at most, dropped at once by a commit that names the person.
        self._decisions: AnswerCache[bool] = AnswerCache(MAX_DECISIONS, DECISION_SECONDS)
        # Who has any consent record, read in bulk by a server (``refresh_holders``): anyone
        # else is answered by the default without a read, unless a commit named them since.
        self._holders: _Holders | None = None
        self._heard = 0  # commits heard
        self._changed: dict[str, int] = {}  # key -> ``_heard`` at the last commit naming it
        self._lock = threading.Lock()
        storage.add_commit_listener(self._committed)
        storage.add_reset_listener(self._forget_everything)

    def check(self, changes: Mapping[str, str]) -> dict[str, ConsentStatus]:
        """Validated ``{purpose: status}``; unknown purposes or statuses are refused."""
        if not changes:
            raise InvalidRequestError("name at least one purpose")
        checked = {}
        for purpose, status in changes.items():
            if purpose not in self.purposes:
                known = ", ".join(self.purposes)
                raise InvalidRequestError(f"unknown purpose {purpose!r}; known: {known}")
            try:
                checked[purpose] = ConsentStatus(status)
            except ValueError:
                raise InvalidRequestError(
                    f"consent status must be granted, denied or revoked, not {status!r}"
                ) from None
        return checked

    def record(
        self,
        uow: UnitOfWork,
        profile_key: str,
        changes: Mapping[str, ConsentStatus],
        *,
        effective_at_ms: int,
        source: str,
        actor: str,
    ) -> None:
        """Write the changes and their audit entry in the caller's transaction."""
        now = self._clock.now_ms()
        uow.consents.add(
            [
                ConsentChange(
                    profile_key=profile_key,
                    purpose=purpose,
                    status=status.value,
                    effective_at_ms=effective_at_ms,
                    source=source,
                    recorded_at_ms=now,
                )
                for purpose, status in changes.items()
            ]
        )
        self._audit.write(
            uow,
            actor,
            "consent.change",
            self.target(profile_key),
            {
                "purposes": {p: s.value for p, s in changes.items()},
                "effective_at_ms": effective_at_ms,
                "source": source,
            },
        )

    def target(self, profile_key: str) -> str:
        return f"subject:{self._hash_id(split_key(profile_key)[1])}"

    def set(
        self,
        user_id: str,
        changes: Mapping[str, str],
        *,
        actor: str,
        effective_at_ms: int | None = None,
    ) -> dict[str, str]:
        """Record consent given through the API; returns the current status of every purpose."""
        checked = self.check(changes)
        at = effective_at_ms if effective_at_ms is not None else self._clock.now_ms()
        key = user_key(user_id)
        with self._storage.write() as uow:
            if uow.tombstones.erased(self._tombstones_of(key)):
                raise SubjectErasedError("this person was erased; their consent is not recorded")
            self.record(uow, key, checked, effective_at_ms=at, source="api", actor=actor)
            uow.changes_profiles([key])  # other processes drop answers that assumed consent
        self._committed({key})
        for listener in self._change_listeners:
            listener({key})
        return self.current(key)

    def add_change_listener(self, listener: Callable[[Collection[str]], None]) -> None:
        """Call ``listener`` with the profile keys whose consent changed, after the commit
        (consent given by events reaches caches through ingest's commit listeners)."""
        self._change_listeners.append(listener)

    def current(self, profile_key: str, at_ms: int | None = None) -> dict[str, str]:
        """The status of every purpose now (``unset`` where no record exists)."""
        at = at_ms if at_ms is not None else self._clock.now_ms()
        with self._storage.read() as uow:
            book = load_book(uow.consents, [profile_key], self.required)
        keys = _own_keys(book, profile_key)
        return {p: book.status(keys, p, at) or "unset" for p in self.purposes}

    def allows(self, profile_key: str, purpose: str) -> bool:
        """Whether ``purpose`` is granted now for a profile key (one read)."""
        with self._storage.read() as uow:
            book = load_book(uow.consents, [profile_key], self.required)
        return book.granted(_own_keys(book, profile_key), purpose, self._clock.now_ms())

    def allows_person(self, person_id: str, purpose: str) -> bool:
        """Whether ``purpose`` is granted now for a user or anonymous id (one short read, or
        none when it was read less than ``DECISION_SECONDS`` ago).

        Changes through this process drop the decision at once; those of another process
        are seen within ``DECISION_SECONDS``.
        """
        decided = self._decisions.get((person_id, purpose))
        if decided is not None:
            return decided
        user, anonymous = user_key(person_id), anonymous_key(person_id)
        if self._without_records(user, anonymous):
            return not self.required
        ticket = self._decisions.ticket()
        book = ConsentBook(self.required)
        with self._storage.read() as uow:
            _fill(book, uow.consents.of_person(user, anonymous, purpose))
        granted = book.granted(book.keys_for(user, anonymous), purpose, self._clock.now_ms())
        # Not kept when a commit naming the person came meanwhile (see ``AnswerCache.put``).
        self._decisions.put((person_id, purpose), (user, anonymous), ticket, granted)
        return granted

    def sizes(self) -> dict[str, int]:
        """Entries of this service's in-memory tables (``Metrics.watch_tables``)."""
        holders = self._holders
        return {
            **{f"decisions.{name}": count for name, count in self._decisions.sizes().items()},
            "changed": len(self._changed),
            "holders": 0 if holders is None else len(holders.keys),
        }

    def refresh_holders(self) -> int:
        """Read who has any consent record, in bulk (``persona serve`` does every
        ``HOLDERS_SECONDS / 2``): a person without any is answered by the default with no read
        of their own. Only a process that follows the other processes' changes may use it."""
        heard = self._heard
        # The change feed's position is noted before the read: every later change is heard.
        self._storage.follow_changes()
        with self._storage.read() as uow:
            keys = uow.consents.holders()
        with self._lock:
            self._changed = {key: n for key, n in self._changed.items() if n > heard}
            self._holders = _Holders(frozenset(keys), time.monotonic() + HOLDERS_SECONDS)
        return len(keys)

    def _without_records(self, user: str, anonymous: str) -> bool:
        """Whether the snapshot shows no record either key could reach, and no commit named
        either since it was read."""
        holders = self._holders
        if holders is None or time.monotonic() > holders.expires_at:
            return False
        changed = self._changed
        return not (
            user in holders.keys
            or anonymous in holders.keys
            or user in changed
            or anonymous in changed
        )

    def _committed(self, changed: Collection[str] | None) -> None:
        """Forget the decisions of the people a commit changed (consent given by an event, a
        link between ids, an erasure ...)."""
        if changed is None or len(changed) > BULK_INVALIDATION:  # a bulk import's batch
            self._forget_everything()
            return
        if changed:
            self._decisions.invalidate(changed)
            with self._lock:
                self._heard += 1
                for key in changed:
                    self._changed[key] = self._heard
                if len(self._changed) > MAX_CHANGED:  # until the next snapshot: reads
                    self._holders = None
                    self._changed = {}

    def _forget_everything(self) -> None:
        """This process may have missed changes: no decision and no snapshot is trusted."""
        self._decisions.clear()
        with self._lock:
            self._holders = None

    def history(self, uow: UnitOfWork, keys: Sequence[str]) -> list[ConsentChange]:
        """Every change recorded under ``keys``, in recording order."""
        return uow.consents.history(keys)


def _own_keys(book: ConsentBook, profile_key: str) -> list[str]:
    """The keys whose consent counts for ``profile_key``: its own and those linked to it."""
    if is_user_key(profile_key):
        return book.keys_for(profile_key, None)
    return book.keys_for(None, profile_key)


def consent_holders_job(consent: ConsentService) -> PeriodicJob:
    """Every server process keeps its snapshot of who has consent records: twice per lifetime
    of a snapshot, after the first read, which the server makes before taking requests."""
    return PeriodicJob("consent-holders", HOLDERS_SECONDS / 2, consent.refresh_holders)
