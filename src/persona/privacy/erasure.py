"""Erasure: remove a person, every alias of them, and every trace the engine holds.

One write transaction deletes the person's rows from every table that holds people (storage
knows which: ``SubjectData``), the quarantine entries whose raw payload names them, and writes a
tombstone per id (a keyed hash, never the id). The event lake is held meanwhile: the erasure is
noted in it before the commit and its files holding the person's events are rewritten without
them after (``EventLake.deleting``; a crash in between leaves that to the lake's next sync or
read). After the commit, the model sets in ``models/`` are rewritten without the person's
interactions and the serving set is reloaded, and the database files are made to forget
(``Storage.forget_deleted``: on SQLite, which runs with ``secure_delete``, the write-ahead log is
checkpointed and truncated; on PostgreSQL the touched tables are vacuumed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from persona.clock import Clock
from persona.errors import AmbiguousSubjectError, NotFoundError
from persona.identity import Kind, anonymous_key, key_of, split_key, user_key
from persona.privacy.audit import AuditLog
from persona.privacy.personal import PersonalData
from persona.recommend.registry import ModelRegistry
from persona.storage.protocols import EventLake, LakeDeletions, Storage, SubjectData

log = logging.getLogger(__name__)
MAX_ROUNDS = 8  # alias chains are one link deep; a few rounds reach every id


@dataclass(slots=True)
class ErasureReport:
    subject_hash: str
    ids: int
    deleted: dict[str, int] = field(default_factory=dict)
    models_rewritten: int = 0
    model_rows_removed: int = 0
    lake_rows_removed: int = 0


@dataclass(slots=True)
class Subject:
    """Every profile key of one person (``u:`` and ``a:``) as ingest linked them."""

    keys: set[str]

    @property
    def ids(self) -> set[str]:
        """The ids behind the keys, without their namespace (for people to read)."""
        return {split_key(k)[1] for k in self.keys}


def resolve_subject(subjects: SubjectData, start: str) -> Subject:
    """The person filed under the profile key ``start``, with every key linked to it.

    The links are the aliases ingest made when an event named an anonymous id and a user id
    together (the first link of an anonymous id wins); the ids that events merely carry are not
    followed, so an event cannot claim somebody else's id into a person."""
    keys = {start}
    for _ in range(MAX_ROUNDS):
        found = set(keys)
        for alias, target in subjects.links(keys):
            found |= {alias, target}
        if found == keys:
            break
        keys = found
    return Subject(keys)


def subject_of(subjects: SubjectData, subject_id: str, id_type: Kind | None) -> Subject:
    """The person ``subject_id`` names: a user id or an anonymous id as ``id_type`` says.

    Without ``id_type``, the id names whoever something is held about: the user, or else the
    anonymous visitor; both when they are the same person. When a user and an unrelated
    anonymous visitor share the text, the caller must say which (AmbiguousSubjectError).
    """
    if id_type is not None:
        return resolve_subject(subjects, key_of(id_type, subject_id))
    user, visitor = user_key(subject_id), anonymous_key(subject_id)
    as_user = resolve_subject(subjects, user)
    if visitor in as_user.keys:
        return as_user
    as_visitor = resolve_subject(subjects, visitor)
    held = subjects.holding(as_user.keys | as_visitor.keys)
    if held & as_user.keys and held & as_visitor.keys:
        raise AmbiguousSubjectError(
            f"{subject_id!r} is both a user id and an unrelated anonymous id; say which with"
            " id_type=user or id_type=anonymous"
        )
    return as_visitor if held & as_visitor.keys else as_user


class ErasureService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        personal: PersonalData,
        audit: AuditLog,
        registry: ModelRegistry,
        on_models_changed: Callable[[], object],
        lake: EventLake | None = None,
    ) -> None:
        self._storage = storage
        self._lake = lake
        self._clock = clock
        self._personal = personal
        self._audit = audit
        self._registry = registry
        self._on_models_changed = on_models_changed  # reloads the serving model set
        self._cache_hooks: list[Callable[[set[str]], None]] = []

    def add_cache_hook(self, forget: Callable[[set[str]], None]) -> None:
        """Let an in-memory cache drop what it holds about the erased profile keys."""
        self._cache_hooks.append(forget)

    def is_erased(self, profile_key: str) -> bool:
        with self._storage.read() as uow:
            return bool(uow.tombstones.erased(self._personal.tombstone_hashes(profile_key)))

    def erase(self, subject_id: str, *, actor: str, id_type: Kind | None = None) -> ErasureReport:
        """Erase a person; NotFoundError when nothing at all is held about ``subject_id``."""
        target = self._personal.id_hash(subject_id)
        with self._lake_deletions() as lake, self._storage.write() as uow:
            subject = subject_of(uow.subjects, subject_id, id_type)
            report = ErasureReport(target, len(subject.keys))
            report.deleted = uow.subjects.delete(subject.keys)
            if not any(report.deleted.values()):
                raise NotFoundError(f"nothing is held about {subject_id!r}")
            hashes = {self._personal.id_hash(key) for key in subject.keys}
            if lake is not None:
                lake.erase(subject.keys, hashes)
            uow.tombstones.add(hashes, self._clock.now_ms())
            uow.erases_profiles(subject.keys)
            self._audit.write(
                uow,
                actor,
                "subject.erase",
                f"subject:{target}",
                {"ids": report.ids, "deleted": report.deleted},
            )
        report.lake_rows_removed = lake.removed if lake is not None else 0
        for forget in self._cache_hooks:
            forget(subject.keys)
        report.models_rewritten, report.model_rows_removed = self._rewrite_models(subject)
        if report.models_rewritten:
            self._on_models_changed()
        self._forget_on_disk([*report.deleted, "changes"])
        return report

    def _lake_deletions(self) -> AbstractContextManager[LakeDeletions | None]:
        return nullcontext() if self._lake is None else self._lake.deleting()

    def _rewrite_models(self, subject: Subject) -> tuple[int, int]:
        """Every stored model set without the person (model sets name people by profile key)."""
        return self._registry.erase_people(subject.keys)

    def _forget_on_disk(self, table_names: list[str]) -> None:
        """Make deleted rows unreadable from the database files, not only from SQL."""
        try:
            self._storage.forget_deleted(table_names)
        except Exception:
            log.exception("the database files could not be compacted after an erasure")
