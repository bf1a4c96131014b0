"""The batch ranking: every known person's best candidates, ranked once per model set.

Ranking one person costs milliseconds of CPU (seven sources over the whole catalog, features,
LightGBM), far too much to do again on every request of people who did nothing since. So
training ranks everyone in blocks, right after fitting, as of that moment, and keeps each
person's ``SHORTLIST_SIZE`` best candidates with their scores. A request then only filters the
shortlist (exclusions, availability, category) and runs the rerank stage on it, both cheap.

A shortlist is only used while it is true: it remembers how many interactions the person had
and the time of the latest one, and the request compares them with the store. Anyone who did
something since (or whose profile was merged, erased or re-created) is ranked live, on their
history as it is now.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from persona.identity import ANONYMOUS, USER, split_key
from persona.recommend.pipeline import RecommendationPipeline, Request, Shortlist
from persona.recommend.proposers import SourceBits, SourceNames, bits_type
from persona.recommend.request import History, known_candidates
from persona.runtime import scoring_threads

SHORTLIST_SIZE = 100  # candidates kept per person: n is at most 100, and filters remove some
MAX_VERIFIED = 1_000_000  # people known unchanged, kept in memory (about 150 MB at most)
MAX_LIVE = 20_000  # live-ranked shortlists kept (a few kB each)
MAX_CHANGED = 200_000  # people changed since the batch, remembered (about 30 MB at most)
RANKING_SLICE = 2_048  # people the batch ranking hands to a thread at a time

ExtraCandidates = Callable[[str], Mapping[str, list[str]]]
"""A person's candidates that only serving knows (segment favourites): item ids by source
name, for a profile key."""


@dataclass(frozen=True)
class Signature:
    """What a shortlist knew of its person: their interactions and the latest one's time."""

    interactions: int
    latest_ms: int


class ShortlistTable:
    """Shortlists of every person of a model set, by profile key."""

    def __init__(
        self,
        people: list[str],
        items: npt.NDArray[np.int32],
        scores: npt.NDArray[np.float32],
        sources: npt.NDArray[np.unsignedinteger[Any]],
        source_names: list[str],
        interactions: npt.NDArray[np.int64],
        latest_ms: npt.NDArray[np.int64],
        as_of_s: int,
    ) -> None:
        self.people = people
        self.items = items  # people x SHORTLIST_SIZE, -1 past the end of a shorter list
        self.scores = scores
        # bit j set: source_names[j] proposed the item; in the narrowest type that holds every
        # name's bit (a byte for up to 8 sources: a quarter of the table's uint32 at 10M people)
        self.sources = sources.astype(bits_type(len(source_names)), copy=False)
        self.source_names = source_names
        self.interactions = interactions
        self.latest_ms = latest_ms
        self.as_of_s = as_of_s
        self._row = {key: row for row, key in enumerate(people)}
        self._names = SourceNames(source_names)
        self._sizes = np.count_nonzero(items >= 0, axis=1) if len(items) else np.zeros(0)

    def __len__(self) -> int:
        return len(self.people)

    def matches(self, profile_key: str, now: Signature) -> bool:
        """Whether the person's shortlist was ranked on what the store holds ``now``."""
        row = self._row.get(profile_key)
        return row is not None and (
            int(self.interactions[row]),
            int(self.latest_ms[row]),
        ) == (now.interactions, now.latest_ms)

    def get(self, profile_key: str) -> Shortlist | None:
        """The person's shortlist (the caller knows it is still true of them)."""
        row = self._row.get(profile_key)
        if row is None:
            return None
        items = self.items[row]
        size = int(self._sizes[row])
        return Shortlist(
            items[:size].astype(np.int64),
            self.scores[row, :size],
            SourceBits(items[:size], self.sources[row, :size], self._names),
        )

    def matching(
        self,
        profile_keys: Sequence[str],
        interactions: npt.NDArray[np.int64],
        latest_ms: npt.NDArray[np.int64],
    ) -> list[str]:
        """Which of these profile keys hold, in the store now, exactly what their shortlist was
        ranked on (``interactions`` and ``latest_ms`` of each, read in bulk)."""
        rows = np.asarray([self._row.get(key, -1) for key in profile_keys], dtype=np.int64)
        known = rows >= 0
        same = np.zeros(len(rows), dtype=np.bool_)
        same[known] = (self.interactions[rows[known]] == interactions[known]) & (
            self.latest_ms[rows[known]] == latest_ms[known]
        )
        return [profile_keys[int(i)] for i in np.flatnonzero(same)]

    def without(self, profile_keys: Collection[str]) -> ShortlistTable:
        """The same table without these people (an erasure)."""
        keep = np.flatnonzero(~np.isin(np.asarray(self.people, dtype=str), list(profile_keys)))
        return ShortlistTable(
            [self.people[row] for row in keep],
            self.items[keep],
            self.scores[keep],
            self.sources[keep],
            self.source_names,
            self.interactions[keep],
            self.latest_ms[keep],
            self.as_of_s,
        )

    # -- persistence (the registry writes and reads the file) ----------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "people": np.asarray(self.people, dtype=str),
            "items": self.items,
            "scores": self.scores,
            "sources": self.sources,
            "source_names": np.asarray(self.source_names, dtype=str),
            "interactions": self.interactions,
            "latest_ms": self.latest_ms,
            "as_of_s": np.asarray(self.as_of_s, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, a: Mapping[str, np.ndarray]) -> ShortlistTable:
        return cls(
            [str(p) for p in a["people"]],
            a["items"],
            a["scores"],
            a["sources"],
            [str(n) for n in a["source_names"]],
            a["interactions"],
            a["latest_ms"],
            int(a["as_of_s"]),
        )


@dataclass(frozen=True)
class LiveShortlist:
    """A shortlist ranked at request time, on the history the store held then."""

    profile_key: str
    read_at: int  # ``Freshness.now()`` before the history was read
    shortlist: Shortlist
    history: History


class Freshness:
    """Which shortlist is still true of each person, as this process knows it.

    The batch shortlist: the first request of a person compares the store with it
    (``Signature``); after that, only a commit that changes the person (``changed``: every
    write names the profiles it touched, this process's at once and other processes' through
    the store's change feed) makes it stale. Someone who acted since is ranked live, and that
    ranking's shortlist serves their next requests (``keep_live``) until they act again. Most
    requests then read nothing from the store at all.
    """

    def __init__(self) -> None:
        self._verified: dict[str, str] = {}  # person id -> profile key with a true shortlist
        self._resets = 0  # times this process may have missed changes (``unknown``)
        self._lock = threading.Lock()  # ``unknown`` against ``verified_in_bulk``
        self._clock = 0  # counts the changes heard
        # Profile key -> ``_clock`` at its last change: the keys changed since the batch, at
        # most MAX_CHANGED. Past that they are forgotten at ``_forgot_at`` together with
        # everything that relied on them: people are compared with the store again.
        self._last_change: dict[str, int] = {}
        self._forgot_at = 0
        self._live: dict[str, LiveShortlist] = {}  # person id -> shortlist ranked live

    def known(self, person_id: str) -> str | None:
        """The person's profile key, when their batch shortlist is known to be true."""
        key = self._verified.get(person_id)
        return key if key is not None and key not in self._last_change else None

    def verified(self, person_id: str, profile_key: str, read_at: int) -> None:
        """The store showed the person unchanged since the batch, in a read that started at
        ``read_at`` (``now``). A commit listener that ran meanwhile has marked the key stale
        already, and stale wins (``known``), unless the changes were forgotten since: then
        the read is not trusted."""
        if read_at < self._forgot_at:
            return
        if len(self._verified) >= MAX_VERIFIED:
            self._verified.clear()  # back to one read per person: correct, only slower
        self._verified[person_id] = profile_key

    def now(self) -> int:
        """Read before a person's history: ``keep_live`` needs it."""
        return self._clock

    @property
    def resets(self) -> int:
        """Read before a bulk read of the store: ``verified_in_bulk`` needs it."""
        return self._resets

    def verified_in_bulk(self, profile_keys: Iterable[str], resets: int) -> int:
        """The store showed these people unchanged since the batch, in one read that started
        after ``resets`` was read (and after the change feed's position was noted, so every
        later change is heard): their first requests need no read of their own. Only user
        keys are taken (a user id resolves to its own key). Nothing is taken when this
        process may have missed changes since; returns how many were taken."""
        found = {split_key(key)[1]: key for key in profile_keys if key.startswith(USER)}
        with self._lock:
            if resets != self._resets:
                return 0
            room = max(0, MAX_VERIFIED - len(self._verified))
            taken = dict(itertools.islice(found.items(), room))
            self._verified.update(taken)
        return len(taken)

    def keep_live(self, person_id: str, live: LiveShortlist) -> None:
        """Serve ``live`` to the person until a change of theirs heard after ``read_at``."""
        if self._last_change.get(live.profile_key, 0) > live.read_at or (
            live.read_at < self._forgot_at
        ):
            return  # they changed while being ranked (or may have: the changes were forgotten)
        if len(self._live) >= MAX_LIVE:
            self._live.clear()
        self._live[person_id] = live

    def live(self, person_id: str) -> LiveShortlist | None:
        found = self._live.get(person_id)
        if found is None or self._last_change.get(found.profile_key, 0) > found.read_at:
            return None
        return found

    def changed(self, profile_keys: Iterable[str]) -> None:
        self._clock += 1
        if len(self._last_change) >= MAX_CHANGED:
            # Reads begun before this moment are not trusted (``verified``, ``keep_live``);
            # then everyone is compared with the store again (``unknown``, which also turns
            # away bulk reads begun before, through ``resets``).
            self._forgot_at = self._clock
            self._last_change = {}
            self.unknown()
        for key in profile_keys:
            self._last_change[key] = self._clock
            if key.startswith((USER, ANONYMOUS)):
                # The id may now resolve to another profile (a first event under the user id).
                person = split_key(key)[1]
                self._verified.pop(person, None)
                self._live.pop(person, None)

    def unknown(self) -> None:
        """Check everyone against the store again (this process may have missed changes)."""
        with self._lock:
            self._resets += 1
            self._verified = {}
            self._live = {}

    def is_stale(self, profile_key: str) -> bool:
        return profile_key in self._last_change

    def sizes(self) -> dict[str, int]:
        return {
            "verified": len(self._verified),
            "changed": len(self._last_change),
            "live": len(self._live),
        }


def rank_everyone(
    pipeline: RecommendationPipeline,
    as_of_s: int,
    extra_candidates: ExtraCandidates | None = None,
    size: int = SHORTLIST_SIZE,
    threads: int | None = None,
) -> ShortlistTable:
    """Rank every person of the fitted data as of ``as_of_s``: slices of people on
    ``threads`` threads (default: one per core), each slice in blocks. The heavy steps (sparse
    products, top-k searches, partial sorts, LightGBM) run outside the interpreter's lock;
    requests are built a slice at a time, so memory does not grow with everyone's."""
    data = pipeline.data
    assert data is not None
    people = data.user_ids
    histories = pipeline.histories()
    items = np.full((len(people), size), -1, dtype=np.int32)
    scores = np.zeros((len(people), size), dtype=np.float32)
    sources = np.zeros((len(people), size), dtype=np.uint32)
    names = SourceNames([source.name for source in pipeline.sources])  # the ranking's order
    threads = threads or os.cpu_count() or 1
    # Fewer people than a slice a thread are still shared out (MovieLens's 671 on one thread
    # took 1.5 s of the training, on two 1.0 s).
    slice_ = max(1, min(RANKING_SLICE, -(-len(people) // threads)))

    def rank_slice(start: int) -> None:
        requests = [
            Request(
                histories[u],
                as_of_s,
                hour=as_of_s // 3600 % 24,
                context=pipeline.person_context(u),
                extra=known_candidates(data, extra_candidates(people[u]))
                if extra_candidates
                else {},
            )
            for u in range(start, min(start + slice_, len(people)))
        ]
        for row, shortlist in enumerate(pipeline.shortlists(requests, size), start=start):
            n = len(shortlist.items)
            items[row, :n] = shortlist.items
            scores[row, :n] = shortlist.scores
            sources[row, :n] = names.recode(shortlist.proposers.bits, shortlist.proposers.names)

    with scoring_threads("persona-rank", threads) as pool:
        for _ in pool.map(rank_slice, range(0, len(people), slice_)):
            pass  # re-raises a slice's failure
    interactions = np.bincount(data.users, minlength=data.n_users).astype(np.int64)
    latest_ms = np.full(data.n_users, -1, dtype=np.int64)
    np.maximum.at(latest_ms, data.users, data.timestamps_ms)
    return ShortlistTable(
        list(people), items, scores, sources, names.names, interactions, latest_ms, as_of_s
    )
