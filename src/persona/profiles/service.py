"""Profile updates inside the ingest transaction, identity merges, reads and traits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

from persona.cache import AnswerCache
from persona.clock import DAY_MS, Clock, iso_z
from persona.errors import NotFoundError, WriteConflictError
from persona.identity import anonymous_key, split_key, user_key
from persona.profiles.aggregate import AggregateRules, Foldable, ProfileState
from persona.profiles.schema import Profile
from persona.profiles.shared_cache import SharedProfileCache
from persona.storage.protocols import Storage, UnitOfWork
from persona.storage.records import ProfileRecord

IDENTIFY = "identify"


class IdentifiedEvent(Foldable, Protocol):
    """What profile updates read from an accepted event."""

    @property
    def user_id(self) -> str | None: ...
    @property
    def anonymous_id(self) -> str | None: ...


ProfileFacet = Callable[[UnitOfWork, str], dict[str, Any]]
"""Fields another domain adds to a profile read (segments: memberships), from the same snapshot."""


TraitsFilter = Callable[[str, dict[str, Any]], dict[str, Any]]
"""Called with a user id and traits before a write; returns what is stored (privacy)."""


def _iso(ms: int | None) -> str | None:
    """A time in milliseconds as pydantic writes a UTC datetime (``...Z``)."""
    return None if ms is None else iso_z(ms)


@dataclass(slots=True)
class ProfileUpdate:
    """The profile changes of one batch of events: keyed (``ProfileService.prepare``), loaded,
    folded, saved."""

    rules: AggregateRules
    events: Sequence[IdentifiedEvent]
    keys: dict[str, str] = field(default_factory=dict)  # event id -> profile key
    raw_keys: dict[str, str] = field(default_factory=dict)  # the same before later links
    wanted: set[str] = field(default_factory=set)  # profiles to load
    links: dict[str, str] = field(default_factory=dict)  # anonymous key -> user key
    new_links: dict[str, str] = field(default_factory=dict)
    linked: dict[str, bool] = field(default_factory=dict)  # alias -> had events before its link
    states: dict[str, ProfileState] = field(default_factory=dict)
    traits: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)  # saved states
    merged_away: list[str] = field(default_factory=list)
    grouped: dict[str, list[tuple[IdentifiedEvent, Sequence[str]]]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)

    def load(self, reader: UnitOfWork) -> None:
        """Read the stored states and the items' categories, and group the events by profile.

        ``reader`` may be another transaction than the writing one, as long as it sees the
        same profiles and catalog (ingest reads beside the insert of the events; the write
        lock it holds keeps every other writer out, and it has changed neither yet).
        """
        events = self.events
        if not events:
            return
        records = reader.profiles.load(list(self.wanted))
        self.states = {k: ProfileState.from_dict(r.state) for k, r in records.items()}
        self.traits = {k: r.traits for k, r in records.items()}
        categories = reader.catalog.categories_for(list({e.item_id for e in events if e.item_id}))
        grouped, raw_keys = self.grouped, self.raw_keys
        for event in events:
            item_categories = categories.get(event.item_id, ()) if event.item_id else ()
            grouped.setdefault(raw_keys[event.event_id], []).append((event, item_categories))
        self.merged_away = [a for a, early in self.linked.items() if early or a in self.states]

    def fold(self) -> None:
        """Merge linked anonymous profiles and fold the events; touches no storage."""
        states, grouped = self.states, self.grouped
        for alias in self.merged_away:
            target = self.links[alias]
            absorbed = states.pop(alias, None)
            if absorbed is not None:
                states.setdefault(target, ProfileState()).merge(absorbed, self.rules)
                self.dirty.add(target)
            earlier = grouped.pop(alias, None)  # events under the alias before it was linked
            if earlier:
                grouped.setdefault(target, []).extend(earlier)
        for key, folded in grouped.items():
            states.setdefault(key, ProfileState()).apply_many(folded, self.rules)
            self.dirty.add(key)

    def save(self, uow: UnitOfWork, now_ms: int) -> None:
        if not self.dirty and not self.new_links:
            return
        self.documents = {k: self.states[k].to_dict() for k in self.dirty}
        uow.profiles.save_states(self.documents, now_ms)
        if self.merged_away:
            uow.profiles.delete(self.merged_away)
            uow.events.reassign_profiles({a: self.links[a] for a in self.merged_away})
        uow.profiles.add_aliases(self.new_links, now_ms)


class ProfileService:
    def __init__(
        self,
        storage: Storage,
        clock: Clock,
        rules: AggregateRules,
        cache: AnswerCache[_Rendered] | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self.rules = rules
        self._facets: list[ProfileFacet] = []
        self._traits_filter: TraitsFilter | None = None
        self._cache: AnswerCache[_Rendered] = cache if cache is not None else AnswerCache(0, 0)
        self._shared: SharedProfileCache | None = None  # see share_cache
        if self._cache.enabled:
            storage.add_commit_listener(self._committed)
            storage.add_reset_listener(self._cache.clear)

    def sizes(self) -> dict[str, int]:
        """Entries of the profile read cache (``Metrics.watch_tables``)."""
        return {f"cache.{name}": count for name, count in self._cache.sizes().items()}

    def add_facet(self, facet: ProfileFacet) -> None:
        """Let ``facet`` add fields to every profile read, inside the read's transaction."""
        self._facets.append(facet)

    def apply_events(
        self, uow: UnitOfWork, events: Sequence[IdentifiedEvent], now_ms: int
    ) -> dict[str, str]:
        """Fold accepted events into their profiles; returns the profile key of each event.

        The steps of ``prepare``, for callers with nothing to do between them.
        """
        update = self.prepare(uow, events)
        update.load(uow)
        update.fold()
        update.save(uow, now_ms)
        return update.keys

    def hold(self, uow: UnitOfWork, update: ProfileUpdate) -> ProfileUpdate:
        """In a write beside others (``UnitOfWork.locks_profiles``), lock every profile a
        prepared ``update`` may change, all at once (in one order, so that two writes never
        wait for each other in a circle): the ids its events name and the people their
        anonymous ids were linked to when it was prepared. The write has stored its events
        already: the locks are taken as late as they can be, since writes that share a person
        (most batches sent side by side do) wait for each other's.

        Returns the update to apply. An anonymous id linked since the update was prepared (by
        a write that committed meanwhile) has its person locked too, this write's events
        stored under the anonymous id moved to them (the linking write moved the others), and
        the update prepared again; the database refuses one of two writes whose second locks
        meet the other's (``WriteConflictError``, and the caller runs it again), as it does
        one that links the same anonymous id at once."""
        if not uow.locks_profiles or not update.events:
            return update
        anon_keys = [anonymous_key(e.anonymous_id) for e in update.events if e.anonymous_id]
        stored = {k: v for k, v in update.links.items() if k not in update.new_links}
        named = {user_key(e.user_id) for e in update.events if e.user_id}.union(anon_keys)
        uow.lock_profiles(named.union(stored.values()))
        now = uow.profiles.resolve_aliases(anon_keys)
        if now == stored:
            return update
        moved = {alias: person for alias, person in now.items() if alias not in stored}
        kept = all(now.get(alias) == person for alias, person in stored.items())
        if not kept or set(moved).intersection(update.new_links):
            raise WriteConflictError("an anonymous id was linked by a write beside this one")
        uow.lock_profiles(moved.values())
        uow.events.reassign_profiles(moved)
        return self.prepare(uow, update.events)

    def prepare(self, uow: UnitOfWork, events: Sequence[IdentifiedEvent]) -> ProfileUpdate:
        """Find each event's profile (``keys``), following identity links.

        Then ``load(reader)``, ``fold()`` (pure computation) and ``save(uow, now_ms)``. An
        ``identify`` event that carries both ids links the anonymous id to the user: the
        anonymous profile is merged into the user's, its events are moved over, and later events
        under either id land in the user's profile. An anonymous id is linked to the first user
        it is identified with; later links of it are ignored.
        """
        update = ProfileUpdate(self.rules, events)
        if not events:
            return update
        anon_keys = {anonymous_key(e.anonymous_id) for e in events if e.anonymous_id}
        links = uow.profiles.resolve_aliases(list(anon_keys))
        update.wanted = {user_key(e.user_id) for e in events if e.user_id}
        update.wanted |= {links.get(k, k) for k in anon_keys}

        # Links and each event's profile follow the arrival order; the fold is commutative, so
        # it runs afterwards, once per profile, over that profile's events.
        raw_keys = update.raw_keys
        seen: set[str] = set()  # the keys of the events so far
        for event in events:
            if event.type == IDENTIFY and event.user_id and event.anonymous_id:
                alias, target = anonymous_key(event.anonymous_id), user_key(event.user_id)
                if alias not in links:
                    links[alias] = update.new_links[alias] = target
                    # merged if the alias has a stored profile or events earlier in the batch
                    update.linked[alias] = alias in seen
            if event.user_id:
                key = user_key(event.user_id)
            else:
                alias = anonymous_key(event.anonymous_id or "")
                key = links.get(alias, alias)
            seen.add(key)
            raw_keys[event.event_id] = key
        update.links = links
        update.keys = {eid: links.get(k, k) for eid, k in raw_keys.items()} if links else raw_keys
        return update

    def resolve(self, uow: UnitOfWork, person_id: str) -> str | None:
        """The profile key for a user id, or for an anonymous id (following its link)."""
        record = self._find(uow, person_id)
        return record.profile_key if record else None

    def _find(self, uow: UnitOfWork, person_id: str) -> ProfileRecord | None:
        key = user_key(person_id)
        record = uow.profiles.load([key]).get(key)
        if record is None:
            alias = anonymous_key(person_id)
            key = uow.profiles.resolve_aliases([alias]).get(alias, alias)
            record = uow.profiles.load([key]).get(key)
        return record

    def get(self, person_id: str) -> Profile:
        return Profile.model_validate(self.document(person_id))

    def get_json(self, person_id: str) -> bytes:
        """The profile as the JSON of ``Profile`` (the route's answer, serialized once)."""
        return orjson.dumps(self.document(person_id))

    def document(self, person_id: str) -> dict[str, Any]:
        """The profile of a user id or anonymous id, as the JSON values of ``Profile``.

        Reads come from the cache until a commit changes the person (see ``persona.cache``);
        the two fields that count days up to now are computed at every read.
        """
        return self._rendered(person_id).at(self._clock.now_ms())

    def key_and_segments(self, person_id: str) -> tuple[str, list[str]] | None:
        """The merged profile key of a user id or anonymous id and the segments it is in now,
        from the same cached read as ``document``; None when there is no such profile."""
        try:
            rendered = self._rendered(person_id)
        except NotFoundError:
            return None
        return rendered.profile_key, rendered.document["segments"]

    def _rendered(self, person_id: str) -> _Rendered:
        cached = self._cache.get(person_id)
        if cached is None:
            ticket = self._cache.ticket()
            cached = self._shared_read(person_id)
            keys = {user_key(person_id), anonymous_key(person_id), cached.profile_key}
            self._cache.put(person_id, keys, ticket, cached)
        return cached

    def _shared_read(self, person_id: str) -> _Rendered:
        """``_read`` through the cache all processes share, when there is one. A person read
        through an alias (a visitor since identified) is not kept there: their profile's key
        is known only after the read, too late to take its version before it."""
        shared = self._shared
        if shared is None:
            return self._read(person_id)
        found = shared.get(person_id)
        if found is not None:
            return _Rendered(**found)
        own = [user_key(person_id), anonymous_key(person_id)]
        versions = shared.versions(own)
        rendered = self._read(person_id)
        if versions is not None and rendered.profile_key in own:
            shared.put(person_id, own, versions, asdict(rendered))
        return rendered

    def forget(self, profile_keys: set[str]) -> None:
        """Drop every rendered profile of these keys, from this process's memory and from
        the cache the processes share (an erasure)."""
        self._cache.invalidate(profile_keys)
        if self._shared is not None:
            self._shared.changed(profile_keys)

    def share_cache(self, shared: SharedProfileCache) -> None:
        """Read through ``shared`` (Redis) too, and outdate its entries after each commit this
        process makes or hears of."""
        self._shared = shared
        self._storage.add_commit_listener(shared.changed)

    def _read(self, person_id: str) -> _Rendered:
        with self._storage.read() as uow:
            record = self._find(uow, person_id)
            if record is None:
                raise NotFoundError(f"no profile for {person_id!r}")
            key = record.profile_key
            aliases = [split_key(a)[1] for a in uow.profiles.aliases_of(key)]
            facets: dict[str, Any] = {}
            for facet in self._facets:
                facets.update(facet(uow, key))
        return _render(key, record.state, record.traits, record.updated_at_ms, aliases, facets)

    def _committed(self, changed: set[str] | None) -> None:
        if changed is None:
            self._cache.clear()
        elif changed:
            self._cache.invalidate(changed)

    def set_traits_filter(self, check: TraitsFilter) -> None:
        """Let privacy transform (or refuse) traits before they are stored."""
        self._traits_filter = check

    def set_traits(self, user_id: str, traits: dict[str, Any]) -> Profile:
        key = user_key(user_id)
        now = self._clock.now_ms()
        if self._traits_filter is not None:
            traits = self._traits_filter(user_id, traits)
        with self._storage.write() as uow:
            uow.profiles.set_traits(key, traits, ProfileState().to_dict(), now)
            uow.changes_profiles([key])
        return self.get(user_id)


@dataclass(frozen=True, slots=True)
class _Rendered:
    """A profile's JSON values as read, and the times its day counts start from."""

    profile_key: str
    document: dict[str, Any]
    last_seen_ms: int | None
    last_purchase_ms: int | None

    def at(self, now_ms: int) -> dict[str, Any]:
        document = dict(self.document)  # shallow: the cached one is shared between readers
        document["days_since_last_seen"] = _days_between(self.last_seen_ms, now_ms)
        document["rfm"] = {
            **self.document["rfm"],
            "recency_days": _days_between(self.last_purchase_ms, now_ms),
        }
        return document


def _days_between(then_ms: int | None, now_ms: int) -> float | None:
    return None if then_ms is None else max(0.0, (now_ms - then_ms) / DAY_MS)


def _render(
    key: str,
    state_doc: dict[str, Any],
    traits: dict[str, Any] | None,
    updated_at_ms: int,
    aliases: list[str],
    facets: dict[str, Any],
) -> _Rendered:
    """The fields of ``Profile`` as JSON values, built directly: a profile holds dozens of
    recent items, and a model per item plus a datetime each cost more than the whole read."""
    state = ProfileState.from_dict(state_doc)
    affinities = sorted(state.affinity.items(), key=lambda kv: (-kv[1], kv[0]))
    kind, person_id = split_key(key)
    document: dict[str, Any] = {
        "profile_id": person_id,
        "kind": kind,
        "aliases": aliases,
        "traits": traits or {},
        "event_count": state.event_count,
        "counts": dict(sorted(state.counts.items())),
        "first_seen_at": _iso(state.first_seen_ms),
        "last_seen_at": _iso(state.last_seen_ms),
        "days_since_last_seen": None,
        "rfm": {"recency_days": None, "frequency": state.purchases, "monetary": state.revenue},
        "category_affinities": {name: round(score, 6) for name, score in affinities},
        "recent_items": [{"item_id": i, "at": _iso(t)} for i, t, _ in state.recent],
        "last_context": state.last_context,
        "session_count": state.session_count,
        "segments": [],
        "scores": {},
        "updated_at": _iso(updated_at_ms),
    }
    document.update(facets)
    return _Rendered(key, document, state.last_seen_ms, state.last_purchase_ms)
