"""``AsyncPersona``: the client for asyncio (or trio), on ``httpx.AsyncClient``.

The same methods as ``sync.Persona``, awaited: each builds its ``Call`` (``calls``) and
performs it here; what to retry and how long to wait is ``retry``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack

import anyio
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


class AsyncPersona:
    """A client of one persona server, for async code; the arguments are ``Persona``'s. Use it
    as an async context manager, or ``await aclose()`` it."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._rng = self.retry.jitter_source()
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=client_headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def perform(self, call: Call[T]) -> T:
        """Send ``call``, repeating it as the retry policy allows; its answer, or the typed
        error of the last try."""
        attempts = self.retry.start(idempotent=call.idempotent, rng=self._rng)
        while True:
            try:
                response = await self._http.request(
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
            await anyio.sleep(delay)

    # --- events ---------------------------------------------------------------------------

    async def send_events(
        self, events: Iterable[Event | Mapping[str, Any] | QueuedEvent]
    ) -> IngestResult:
        """Store events, in requests of at most 1000. Each gets an id first if it has none, so
        a repeated try counts it once. Rejected events are in the result
        (``raise_for_rejections()`` turns them into an error); the others are stored."""
        queued = calls.queue_events(events)
        results = [await self.perform(calls.send_events(batch)) for batch in calls.batches(queued)]
        return calls.merge_results(results)

    async def track(self, type: str, **fields: Unpack[EventFields]) -> IngestResult:
        """Store one event: ``track("view", user_id="42", item_id="1")``."""
        return await self.send_events([Event(type=type, **fields)])

    async def identify(
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
        return await self.send_events([event])

    # --- profiles ---------------------------------------------------------------------------

    async def profile(self, person_id: str) -> Profile:
        """The profile of a user id or an anonymous id (``NotFoundError`` when none)."""
        return await self.perform(calls.get_profile(person_id))

    async def set_traits(self, user_id: str, traits: Mapping[str, Any]) -> Profile | TraitsWritten:
        """Replace a user's CRM traits; the profile for a key that may read it."""
        return await self.perform(calls.put_traits(user_id, traits))

    async def profile_segments(self, person_id: str) -> ProfileSegments:
        return await self.perform(calls.get_profile_segments(person_id))

    # --- recommendations and decisions ------------------------------------------------------

    async def recommendations(
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
        return await self.perform(call)

    async def similar(
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
        return await self.perform(call)

    async def decide(
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
        return await self.perform(call)

    # --- catalog ----------------------------------------------------------------------------

    async def item(self, item_id: str) -> Item:
        return await self.perform(calls.get_item(item_id))

    async def put_item(self, item: ItemIn | Mapping[str, Any]) -> Item:
        """Create or replace one item."""
        return await self.perform(calls.put_item(item))

    async def upsert_items(self, items: Sequence[ItemIn | Mapping[str, Any]]) -> int:
        """Create or replace up to 1000 items in one transaction; how many."""
        return await self.perform(calls.upsert_items(items))

    # --- segments ---------------------------------------------------------------------------

    async def segments(self) -> list[Segment]:
        return await self.perform(calls.list_segments())

    async def segment_members(
        self, name: str, *, after: str | None = None, limit: int = 100
    ) -> MemberPage:
        """A page of a segment's members (a key with the ``members`` scope)."""
        return await self.perform(calls.list_segment_members(name, after=after, limit=limit))
