"""A Python client of persona's HTTP API (docs/client.md).

``Persona`` (blocking) and ``AsyncPersona`` have the same methods; ``EventBatcher`` and
``AsyncEventBatcher`` queue events and send them in batches. Failed calls raise
``PersonaError`` subclasses chosen by the answer's status and machine code.

The client needs httpx and pydantic only: it imports nothing of the server, and mirrors its
JSON in ``models`` (a test holds the two to the same fields). Stable: the names below keep
their meaning across minor versions; the modules behind them may move.
"""

from __future__ import annotations

from persona.client.async_ import AsyncPersona
from persona.client.batching import AsyncEventBatcher, BatchResult, EventBatcher
from persona.client.calls import QueuedEvent
from persona.client.errors import (
    BadRequestError,
    ConflictError,
    EventsRejectedError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PersonaError,
    ProblemError,
    RateLimitedError,
    ServerBusyError,
    ServerError,
    TimedOutError,
    TransportError,
    UnauthorizedError,
)
from persona.client.models import (
    Decision,
    DecisionContext,
    Event,
    EventOutcome,
    Explanation,
    IngestResult,
    Item,
    ItemIn,
    Member,
    MemberPage,
    NamedItem,
    Profile,
    ProfileSegments,
    Recommendations,
    RecommendedItem,
    Segment,
    SimilarItems,
    TraitsWritten,
)
from persona.client.retry import NO_RETRY, RetryPolicy
from persona.client.sync import Persona

__all__ = [
    "NO_RETRY",
    "AsyncEventBatcher",
    "AsyncPersona",
    "BadRequestError",
    "BatchResult",
    "ConflictError",
    "Decision",
    "DecisionContext",
    "Event",
    "EventBatcher",
    "EventOutcome",
    "EventsRejectedError",
    "Explanation",
    "ForbiddenError",
    "IngestResult",
    "InvalidRequestError",
    "Item",
    "ItemIn",
    "Member",
    "MemberPage",
    "NamedItem",
    "NotFoundError",
    "PayloadTooLargeError",
    "Persona",
    "PersonaError",
    "ProblemError",
    "Profile",
    "ProfileSegments",
    "QueuedEvent",
    "RateLimitedError",
    "Recommendations",
    "RecommendedItem",
    "RetryPolicy",
    "Segment",
    "ServerBusyError",
    "ServerError",
    "SimilarItems",
    "TimedOutError",
    "TraitsWritten",
    "TransportError",
    "UnauthorizedError",
]
