"""``Persona``: the blocking client, on ``httpx.Client``.

Each method builds its ``Call`` (``calls``) and performs it here; what to retry and how long
to wait is ``retry``'s. ``async_.AsyncPersona`` is the same class over ``httpx.AsyncClient``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import httpx

from persona.client import calls
from persona.client.calls import DEFAULT_TIMEOUT, Call, QueuedEvent, client_headers
from persona.client.models import (
    Decision,
    DecisionContext,
    Event,
    EventFields,
    IngestResult,
    Item,
    ItemIn,
    MemberPage,
    Profile,
    ProfileSegments,
    Recommendations,
    Segment,
    SimilarItems,
    TraitsWritten,
)
from persona.client.retry import RetryPolicy

T = TypeVar("T")


class Persona:
    """A client of one persona server.

    ``api_key`` is a key's secret (``psk_…``), sent as a bearer token; a server in
    development mode needs none. ``timeout`` (seconds, or an ``httpx.Timeout``) bounds each
    try; ``retry`` says how often a failed try is repeated. ``transport`` replaces httpx's
    own (a proxy, a test's). Use it as a context manager, or ``close()`` it: it keeps
    connections open between calls.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._rng = self.retry.jitter_source()
        self._http = httpx.Client(
            base_url=base_url,
            headers=client_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def perform(self, call: Call[T]) -> T:
        """Send ``call``, repeating it as the retry policy allows; its answer, or the typed
        error of the last try."""
        attempts = self.retry.start(idempotent=call.idempotent, rng=self._rng)
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=call.content,
                    headers=call.headers,
                )
            except httpx.RequestError as exc:
                delay = attempts.after_failure(exc)
            else:
                if response.is_success:
                    return call.answer(response)
                delay = attempts.after_answer(response)
            time.sleep(delay)

    # --- events ---------------------------------------------------------------------------

    def send_events(
        self, events: Iterable[Event | Mapping[str, Any] | QueuedEvent]
    ) -> IngestResult:
        """Store events, in requests of at most 1000. Each gets an id first if it has none, so
        a repeated try counts it once. Rejected events are in the result
        (``raise_for_rejections()`` turns them into an error); the others are stored."""
        queued = calls.queue_events(events)
        results = [self.perform(calls.send_events(batch)) for batch in calls.batches(queued)]
        return calls.merge_results(results)

    def track(self, type: str, **fields: Unpack[EventFields]) -> IngestResult:
        """Store one event: ``track("view", user_id="42", item_id="1")``."""
        return self.send_events([Event(type=type, **fields)])

    def identify(
        self,
        user_id: str,
        anonymous_id: str,
        *,
        event_id: str | None = None,
        timestamp: datetime | float | str | None = None,
    ) -> IngestResult:
        """Link an anonymous visitor to a user: their profiles and histories merge."""
        event = Event(
            type="identify",
            user_id=user_id,
            anonymous_id=anonymous_id,
            event_id=event_id,
            timestamp=timestamp,
        )
        return self.send_events([event])

    # --- profiles ---------------------------------------------------------------------------

    def profile(self, person_id: str) -> Profile:
        """The profile of a user id or an anonymous id (``NotFoundError`` when none)."""
        return self.perform(calls.get_profile(person_id))

    def set_traits(self, user_id: str, traits: Mapping[str, Any]) -> Profile | TraitsWritten:
        """Replace a user's CRM traits; the profile for a key that may read it."""
        return self.perform(calls.put_traits(user_id, traits))

    def profile_segments(self, person_id: str) -> ProfileSegments:
        return self.perform(calls.get_profile_segments(person_id))

    # --- recommendations and decisions ------------------------------------------------------

    def recommendations(
        self,
        person_id: str,
        n: int = 10,
        *,
        category: str | None = None,
        exclude: Iterable[str] = (),
        placement: str | None = None,
        device: str | None = None,
        country: str | None = None,
        hour: int | None = None,
    ) -> Recommendations:
        """Ranked items for a person; ``device``, ``country`` and ``hour`` are the context."""
        call = calls.get_recommendations(
            person_id,
            n=n,
            category=category,
            exclude=exclude,
            placement=placement,
            device=device,
            country=country,
            hour=hour,
        )
        return self.perform(call)

    def similar(
        self,
        item_id: str,
        n: int = 10,
        *,
        category: str | None = None,
        exclude: Iterable[str] = (),
        user_id: str | None = None,
    ) -> SimilarItems:
        """Items like ``item_id``; ``user_id`` leaves out what that person already has."""
        call = calls.get_similar_items(
            item_id, n=n, category=category, exclude=exclude, user_id=user_id
        )
        return self.perform(call)

    def decide(
        self,
        placements: Sequence[str],
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        context: DecisionContext | Mapping[str, Any] | None = None,
        page_cap: int | None = None,
    ) -> list[Decision]:
        """A variant for each placement. Not repeated after the request may have arrived: the
        server logs each decision, and a repeat would log a second one."""
        call = calls.decide(
            placements,
            user_id=user_id,
            anonymous_id=anonymous_id,
            context=context,
            page_cap=page_cap,
        )
        return self.perform(call)

    # --- catalog ----------------------------------------------------------------------------

    def item(self, item_id: str) -> Item:
        return self.perform(calls.get_item(item_id))

    def put_item(self, item: ItemIn | Mapping[str, Any]) -> Item:
        """Create or replace one item."""
        return self.perform(calls.put_item(item))

    def upsert_items(self, items: Sequence[ItemIn | Mapping[str, Any]]) -> int:
        """Create or replace up to 1000 items in one transaction; how many."""
        return self.perform(calls.upsert_items(items))

    # --- segments ---------------------------------------------------------------------------

    def segments(self) -> list[Segment]:
        return self.perform(calls.list_segments())

    def segment_members(
        self, name: str, *, after: str | None = None, limit: int = 100
    ) -> MemberPage:
        """A page of a segment's members (a key with the ``members`` scope)."""
        return self.perform(calls.list_segment_members(name, after=after, limit=limit))
