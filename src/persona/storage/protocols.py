"""The narrow storage interfaces the domains depend on.

Each need has its own small protocol. A ``UnitOfWork`` groups them over one transaction, so an
ingest call commits its events, quarantine records and profile updates together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from persona.storage.records import (
    ApiKeyRecord,
    EventRecord,
    Interaction,
    ItemRecord,
    ProfileRecord,
    QuarantineRecord,
)


@dataclass(slots=True)
class Appended:
    """What ``EventLog.appending`` inserted, known once its block has run."""

    ids: set[str] = field(default_factory=set)


class EventLog(Protocol):
    def payload_hashes(self, event_ids: Sequence[str]) -> dict[str, str]:
        """Stored payload hash of each of ``event_ids`` that is already in the log."""
        ...

    def append(self, events: Sequence[EventRecord]) -> set[str]:
        """Insert events whose id is new; return the ids actually inserted."""
        ...

    def appending(self, events: Sequence[EventRecord]) -> AbstractContextManager[Appended]:
        """``append`` while the block runs (where the backend can overlap it with the block's
        Python); the block must not use the transaction. ``Appended.ids`` is set after it."""
        ...

    def reassign_profile(self, from_key: str, to_key: str) -> int: ...

    def for_profile(self, profile_key: str, limit: int) -> list[EventRecord]:
        """The most recent events of a profile, newest first."""
        ...

    def item_history(self, profile_key: str, limit: int) -> list[tuple[str, str, int]]:
        """``(item_id, type, occurred_at_ms)`` of a profile's latest events with an item,
        newest first: what serving a recommendation reads on every request."""
        ...

    def get(self, event_id: str) -> EventRecord | None: ...

    def count(self) -> int: ...

    def interactions(self, batch_size: int = 50_000) -> Iterator[Interaction]:
        """Every event that names an item, as a light tuple, in event-time order."""
        ...

    def context_item_counts(
        self, field: str, since_ms: int, ignored_types: Sequence[str]
    ) -> list[tuple[str, str, int]]:
        """``(context value, item_id, events)`` for events since ``since_ms`` whose context has
        ``field`` (such as ``device`` or ``country``)."""
        ...

    def popular_items(self, limit: int, ignored_types: Sequence[str]) -> list[str]:
        """Item ids by how many events name them, most first."""
        ...

    def iter_all(self, batch_size: int = 10_000) -> Iterator[EventRecord]:
        """Every event in (occurred_at_ms, event_id) order."""
        ...


class QuarantineLog(Protocol):
    def add(self, records: Sequence[QuarantineRecord]) -> None: ...

    def list(
        self, *, after_id: int, limit: int, code: str | None = None
    ) -> list[QuarantineRecord]: ...

    def get(self, quarantine_id: int) -> QuarantineRecord | None: ...

    def mark_replayed(self, quarantine_id: int, event_id: str, at_ms: int) -> bool:
        """Mark an entry replayed; False when it already was (replay happens once)."""
        ...

    def count(self) -> int: ...


class ProfileStore(Protocol):
    def load(self, profile_keys: Sequence[str]) -> dict[str, ProfileRecord]: ...

    def save_states(self, states: Mapping[str, dict[str, Any]], at_ms: int) -> None:
        """Upsert aggregate states, leaving traits as they are."""
        ...

    def set_traits(
        self, profile_key: str, traits: dict[str, Any], empty_state: dict[str, Any], at_ms: int
    ) -> None: ...

    def delete(self, profile_keys: Sequence[str]) -> None: ...

    def resolve_aliases(self, alias_keys: Sequence[str]) -> dict[str, str]: ...

    def add_aliases(self, links: Mapping[str, str], at_ms: int) -> None: ...

    def aliases_of(self, profile_key: str) -> list[str]: ...

    def count(self) -> int: ...


class Catalog(Protocol):
    def upsert(self, items: Sequence[ItemRecord]) -> None: ...

    def get(self, item_id: str) -> ItemRecord | None: ...

    def categories_for(self, item_ids: Sequence[str]) -> dict[str, list[str]]: ...

    def unavailable_ids(self) -> list[str]: ...

    def list(self, *, after_id: str | None, limit: int) -> list[ItemRecord]: ...

    def count(self) -> int: ...


class KeyStore(Protocol):
    def add(self, record: ApiKeyRecord) -> None: ...

    def get(self, key_id: str) -> ApiKeyRecord | None: ...

    def list(self) -> list[ApiKeyRecord]: ...

    def revoke(self, key_id: str, at_ms: int) -> bool: ...


class UnitOfWork(Protocol):
    @property
    def events(self) -> EventLog: ...
    @property
    def quarantine(self) -> QuarantineLog: ...
    @property
    def profiles(self) -> ProfileStore: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def keys(self) -> KeyStore: ...

    def changes_profiles(self, profile_keys: Iterable[str]) -> None:
        """Declare that this write changes what reads show of these profiles, and of no other.

        Without a declaration a write may have changed any profile (its commit listeners hear
        ``None``); a write that changes none declares an empty list.
        """
        ...


CommitListener = Callable[[set[str] | None], None]
"""Called after a write commits: the profile keys it declared changed, or None (any)."""


class Storage(Protocol):
    def write(self) -> AbstractContextManager[UnitOfWork]:
        """A transaction that holds the write lock; commits on normal exit."""
        ...

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener`` after every committed write of this process (caches)."""
        ...

    def read(self) -> AbstractContextManager[UnitOfWork]: ...

    def read_beside_write(self) -> AbstractContextManager[UnitOfWork]:
        """``read`` for the holder of the write lock, without waiting for the shared pool."""
        ...

    def ping(self) -> None: ...

    def close(self) -> None: ...
