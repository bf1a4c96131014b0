"""The Python client against a real ``persona serve``: API keys checked, one process.

One server for the module (about 3 s to start); each test works on people of its own, so
the tests do not depend on each other's events. What is faked is only the network: a
transport that loses an answer after the server acted on the request, and a socket that
accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from persona.access.keys import Scope
from persona.client import (
    AsyncEventBatcher,
    AsyncPersona,
    BatchResult,
    EventBatcher,
    EventsRejectedError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    Persona,
    PersonaError,
    RetryPolicy,
    TimedOutError,
    TransportError,
    UnauthorizedError,
    models,
)
from persona.client.errors import ProblemError
from persona.decide.schema import PlacementIn, parse_placement
from persona.engine import Engine
from persona.settings import Settings
from tests.server import free_port, start_server

pytestmark = pytest.mark.slow

# Retries in a test wait milliseconds, not the default's fractions of a second.
QUICK = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, seed=1)


@dataclass(frozen=True)
class Server:
    url: str
    admin_key: str
    ingest_key: str  # may write events, may not read profiles

    def client(self, **options: Any) -> Persona:
        return Persona(self.url, options.pop("api_key", self.admin_key), retry=QUICK, **options)


def _prepare(home: Path) -> tuple[str, str]:
    """Keys and a placement in the home the server will open; the admin and ingest secrets."""
    engine = Engine.open(Settings(home=home, database_url=f"sqlite:///{home / 'persona.db'}"))
    try:
        placement = parse_placement(
            {
                "name": "home_hero",
                "policy": "ab",
                "variants": [
                    {"id": "control", "payload": {"title": "Welcome"}},
                    {"id": "bold", "payload": {"title": "Deals for you"}},
                ],
                "fallback": "control",
            },
            named=True,
        )
        assert isinstance(placement, PlacementIn)
        engine.decisions.create(placement.name, placement.body())
        engine.segments.create("buyers", "count(purchase) >= 1", "bought something")
        admin = engine.keys.create("client tests", [Scope.ADMIN]).secret
        ingest = engine.keys.create("client tests, ingest", [Scope.INGEST]).secret
        return admin, ingest
    finally:
        engine.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("client")
    admin, ingest = _prepare(home)
    port = free_port()
    process = start_server(home, port, "--workers", "1")
    try:
        yield Server(f"http://127.0.0.1:{port}", admin, ingest)
    finally:
        process.terminate()
        process.wait(timeout=15)


def _person() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def test_events_sent_through_the_client_arrive_in_the_profile(server: Server) -> None:
    user, visitor = _person(), _person()
    with server.client() as client:
        assert client.put_item({"item_id": "sku-1", "title": "Kettle", "categories": ["Home"]})
        viewed = client.track("view", anonymous_id=visitor, item_id="sku-1")
        client.identify(user, visitor)
        client.track("purchase", user_id=user, item_id="sku-1", value=19.5)
        profile = client.profile(visitor)

    assert viewed.accepted == 1 and viewed.events[0].event_id  # an id given by the client
    assert profile.profile_id == user and visitor in profile.aliases
    assert profile.counts == {"view": 1, "identify": 1, "purchase": 1}
    assert profile.rfm.frequency == 1 and profile.rfm.monetary == 19.5
    assert "Home" in profile.category_affinities


class LosesFirstAnswer(httpx.HTTPTransport):
    """Sends every request; the first answer is read and then lost, as when a connection
    breaks after the server committed: the client cannot tell it was stored."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        self.bodies.append(request.content)
        if len(self.bodies) == 1:
            response.close()
            raise httpx.ReadError("connection reset before the answer", request=request)
        return response


def test_a_batch_retried_after_a_lost_answer_is_counted_once(server: Server) -> None:
    user = _person()
    transport = LosesFirstAnswer()
    results: list[BatchResult] = []
    with (
        server.client(transport=transport) as client,
        EventBatcher(client, max_events=5, on_result=results.append) as batcher,
    ):
        ids = [batcher.track("view", user_id=user, item_id=f"sku-{i}") for i in range(5)]

    assert len(transport.bodies) == 2 and transport.bodies[0] == transport.bodies[1]
    [sent] = results
    assert sent.error is None and sent.result is not None
    # the first try stored all five; the retry, the same ids and bytes, stored none
    assert (sent.result.accepted, sent.result.duplicates) == (0, 5)
    assert [e.event_id for e in sent.result.events] == ids
    with server.client() as client:
        assert client.profile(user).event_count == 5


def test_the_batcher_sends_when_the_oldest_event_has_waited_long_enough(server: Server) -> None:
    user = _person()
    arrived = threading.Event()
    with (
        server.client() as client,
        EventBatcher(client, max_wait=0.2, on_result=lambda _: arrived.set()) as batcher,
    ):
        batcher.track("view", user_id=user, item_id="sku-1")
        assert arrived.wait(5), "not sent within 5 s"
        assert len(batcher) == 0
        assert client.profile(user).event_count == 1


def test_rejected_events_of_a_stored_batch_reach_the_caller(server: Server) -> None:
    user = _person()
    with server.client() as client, EventBatcher(client, max_wait=60) as batcher:
        batcher.track("view", user_id=user, item_id="sku-1")
        batcher.add({"type": "view", "item_id": "sku-2"})  # nobody: missing_identity
        [sent] = batcher.flush()
        answer = client.send_events([{"type": "view", "item_id": "sku-3"}])

    [(event, outcome)] = sent.rejected
    assert outcome.code == "missing_identity" and event.as_dict()["item_id"] == "sku-2"
    assert sent.result is not None and sent.result.accepted == 1
    with pytest.raises(EventsRejectedError) as raised:
        answer.raise_for_rejections()
    assert raised.value.rejections[0].code == "missing_identity"


def _unknown_item(server: Server) -> None:
    with server.client() as client:
        client.item("no-such-item")


def _unknown_placement(server: Server) -> None:
    with server.client() as client:
        client.decide(["no_such_placement"], user_id=_person())


def _no_key(server: Server) -> None:
    with server.client(api_key=None) as client:
        client.profile(_person())


def _mistyped_key(server: Server) -> None:
    with server.client(api_key=server.admin_key[:-4] + "AAAA") as client:
        client.profile(_person())


def _key_without_the_scope(server: Server) -> None:
    with server.client(api_key=server.ingest_key) as client:
        client.profile(_person())


def _too_many_items(server: Server) -> None:
    with server.client() as client:
        client.recommendations(_person(), n=1000)


ERRORS: list[tuple[Callable[[Server], None], type[PersonaError], int, str]] = [
    (_unknown_item, NotFoundError, 404, "not_found"),
    (_unknown_placement, NotFoundError, 404, "unknown_placement"),
    (_no_key, UnauthorizedError, 401, "unauthorized"),
    (_mistyped_key, UnauthorizedError, 401, "unauthorized"),
    (_key_without_the_scope, ForbiddenError, 403, "not_enough_permissions"),
    (_too_many_items, InvalidRequestError, 422, "invalid_request"),
]


@pytest.mark.parametrize(
    ("call", "error", "status", "code"), ERRORS, ids=[e[0].__name__.strip("_") for e in ERRORS]
)
def test_an_error_answer_becomes_its_typed_exception(
    server: Server,
    call: Callable[[Server], None],
    error: type[PersonaError],
    status: int,
    code: str,
) -> None:
    with pytest.raises(error) as raised:
        call(server)
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.request_id and raised.value.detail


class CountingTransport(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.tries = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.tries += 1
        return super().handle_request(request)


def test_an_invalid_request_names_each_input_and_is_not_repeated(server: Server) -> None:
    transport = CountingTransport()
    with server.client(transport=transport) as client, pytest.raises(InvalidRequestError) as raised:
        client.recommendations(_person(), n=1000)
    assert [e.path for e in raised.value.errors] == ["query.n"]
    assert transport.tries == 1


def test_segments_are_listed_and_small_ones_keep_their_members(server: Server) -> None:
    with server.client() as client:
        names = [segment.name for segment in client.segments()]
        with pytest.raises(InvalidRequestError) as raised:
            client.segment_members("buyers")  # fewer people than the k-anonymity threshold
    assert "buyers" in names and raised.value.code == "k_anonymity"


def test_similar_items_answer_and_an_unknown_item_is_not_found(server: Server) -> None:
    with Persona(server.url, server.admin_key, retry=QUICK) as client:
        client.put_item({"item_id": "sku-similar", "title": "A thing", "categories": ["things"]})
        answer = client.similar("sku-similar", n=3)
        assert answer.item_id == "sku-similar"
        assert answer.source in {"similar", "trending", "none"} and answer.items is not None
        with pytest.raises(NotFoundError):
            client.similar("no-such-item")


def test_the_async_client_does_the_same_round_trip(server: Server) -> None:
    user = _person()

    async def session() -> tuple[models.Profile, str, list[models.Decision]]:
        async with AsyncPersona(server.url, server.admin_key, retry=QUICK) as client:
            await client.track("view", user_id=user, item_id="sku-1")
            async with AsyncEventBatcher(client, max_wait=60) as batcher:
                for i in range(3):
                    batcher.track("click", user_id=user, item_id=f"sku-{i}")
            # leaving the block sent the three
            decisions = await client.decide(["home_hero"], user_id=user, context={"device": "web"})
            await client.track("impression", user_id=user, decision_id=decisions[0].decision_id)
            recommended = await client.recommendations(user, n=3)
            return await client.profile(user), recommended.user_id, decisions

    profile, recommended_for, decisions = asyncio.run(session())
    assert profile.counts == {"view": 1, "click": 3, "impression": 1}
    assert recommended_for == user
    assert decisions[0].placement == "home_hero" and decisions[0].variant in {"control", "bold"}


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def test_a_server_that_does_not_answer_in_time_raises_timed_out(silent_port: int) -> None:
    started = time.monotonic()
    with (
        Persona(f"http://127.0.0.1:{silent_port}", timeout=0.2, retry=QUICK) as client,
        pytest.raises(TimedOutError) as raised,
    ):
        client.profile("42")
    assert isinstance(raised.value, TimeoutError) and raised.value.code == "timeout"
    assert "3 tries" in str(raised.value) and raised.value.status is None
    assert time.monotonic() - started < 3


def test_no_server_at_all_raises_a_transport_error() -> None:
    with (
        Persona(f"http://127.0.0.1:{free_port()}", retry=QUICK) as client,
        pytest.raises(TransportError) as raised,
    ):
        client.profile("42")
    assert raised.value.code == "connection_failed" and not isinstance(raised.value, TimeoutError)


# --- the client's models are the server's JSON ------------------------------------------------

ANSWERS: dict[type[BaseModel], str] = {
    models.IngestResult: "IngestResponse",
    models.EventOutcome: "EventOutcome",
    models.Profile: "Profile",
    models.Rfm: "Rfm",
    models.RecentItem: "RecentItem",
    models.TraitsWritten: "TraitsWritten",
    models.Recommendations: "RecommendationsOut",
    models.RecommendedItem: "RecommendedItemOut",
    models.Explanation: "ExplanationOut",
    models.NamedItem: "NamedItemOut",
    models.SimilarItems: "SimilarItemsOut",
    models.Decision: "DecisionOut",
    models.Decisions: "DecisionsOut",
    models.Item: "Item",
    models.UpsertResult: "UpsertResult",
    models.Segment: "Segment",
    models.SegmentList: "SegmentList",
    models.Member: "Member",
    models.MemberPage: "MemberPage",
    models.Stay: "Stay",
    models.ProfileSegments: "ProfileSegments",
    ProblemError: "ProblemError",
}
REQUESTS: dict[type[BaseModel], str] = {
    models.DecisionContext: "DecisionContext",
    models.ItemIn: "ItemIn",
}


@pytest.fixture(scope="module")
def openapi(server: Server) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{server.url}/openapi.json").json()
    return document


def test_every_client_model_is_compared_with_the_server() -> None:
    defined = {
        value
        for value in vars(models).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == models.__name__
        and not value.__name__.startswith("_")
    }
    assert defined == {*ANSWERS, *REQUESTS, models.Event} - {ProblemError}


@pytest.mark.parametrize("model", list(ANSWERS), ids=lambda m: m.__name__)
def test_an_answer_model_has_the_servers_fields(
    openapi: dict[str, Any], model: type[BaseModel]
) -> None:
    schema = openapi["components"]["schemas"][ANSWERS[model]]
    assert set(model.model_fields) == set(schema["properties"])
    # what the client requires, the server always sends
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert required <= set(schema.get("required", []))


def _event_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    body = openapi["paths"]["/v1/events"]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]["oneOf"][0]
    return schema


@pytest.mark.parametrize("model", [*REQUESTS, models.Event], ids=lambda m: m.__name__)
def test_a_request_model_has_the_servers_fields(
    openapi: dict[str, Any], model: type[BaseModel]
) -> None:
    if model is models.Event:
        schema = _event_schema(openapi)
    else:
        schema = openapi["components"]["schemas"][REQUESTS[model]]
    assert set(model.model_fields) == set(schema["properties"])
    # the client may not leave out what the server requires
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(schema.get("required", [])) <= required
