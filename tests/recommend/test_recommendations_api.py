"""Recommendations over HTTP: real-time changes, cold start, fallbacks, the model registry."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.clock import FakeClock
from persona.engine import Engine
from persona.recommend.pipeline import RecommendationPipeline
from persona.recommend.schema import RecommendationsOut
from persona.recommend.service import REFRESH_PAUSE_FACTOR
from persona.recommend.settings import RecommendSettings
from persona.recommend.training import train_model_set
from tests.conftest import NOW_MS
from tests.recommend.serving import load, recommendations, train, train_twice
from tests.recommend.synthetic import START_S, catalog, events


def strip_scores(items: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [(i["item_id"], i["sources"]) for i in items]


def acted(client: TestClient, person: str, item: str = "i1") -> None:
    """``person`` views ``item`` now: their batch shortlist no longer describes them."""
    viewed = {"type": "view", "user_id": person, "item_id": item, "timestamp": NOW_MS // 1000}
    assert client.post("/v1/events", json=viewed).status_code == 200


def test_without_a_model_the_answer_comes_from_popular_items(client: TestClient) -> None:
    load(client)
    body = recommendations(client, "p1", n=5)
    assert body["source"] == "popular" and body["reason"] == "no trained model set"
    assert len(body["items"]) == 5
    seen = {e["item_id"] for e in events() if e["user_id"] == "p1"}
    assert not seen & {i["item_id"] for i in body["items"]}


def test_ranked_items_with_sources_version_and_request_id(trained: TestClient) -> None:
    body = recommendations(trained, "p0", n=10)
    assert body["source"] == "pipeline"
    assert body["model_version"] and body["request_id"]
    assert len(body["items"]) == 10
    assert len({i["item_id"] for i in body["items"]}) == 10
    assert all(i["sources"] for i in body["items"])
    seen = {e["item_id"] for e in events() if e["user_id"] == "p0"}
    assert not seen & {i["item_id"] for i in body["items"]}


def test_every_item_says_why_and_history_reasons_name_the_persons_own_items(
    trained: TestClient,
) -> None:
    seen = {e["item_id"] for e in events() if e["user_id"] == "p0"}
    titles = {item["item_id"]: item["title"] for item in catalog()}
    body = recommendations(trained, "p0", n=10)
    kinds = [i["explanation"]["kind"] for i in body["items"]]
    assert "history" in kinds, kinds
    for item in body["items"]:
        explanation = item["explanation"]
        if explanation["kind"] == "history":
            named = explanation["items"]
            assert 1 <= len(named) <= 2
            assert {n["item_id"] for n in named} <= seen
            assert all(n["title"] == titles[n["item_id"]] for n in named)
    stranger = recommendations(trained, "never-seen-anyone", n=5)
    assert {i["explanation"]["kind"] for i in stranger["items"]} <= {
        "trending",
        "trending_in_category",
        "popular",
        "taste",
        "new",
    }


def test_the_item_just_bought_is_gone_from_the_next_answer(
    trained: TestClient, engine: Engine
) -> None:
    first = recommendations(trained, "p0", n=5)["items"][0]["item_id"]
    bought = {
        "event_id": "buy-1",
        "type": "purchase",
        "user_id": "p0",
        "item_id": first,
        "timestamp": START_S + 90 * 86_400,
    }
    started = time.perf_counter()
    assert trained.post("/v1/events", json=bought).status_code == 200
    after = recommendations(trained, "p0", n=5)
    assert time.perf_counter() - started < 1.0
    assert first not in {i["item_id"] for i in after["items"]}


def test_an_answer_is_reused_until_the_person_does_something(trained: TestClient) -> None:
    first = recommendations(trained, "p0", n=5)
    again = recommendations(trained, "p0", n=5)
    assert (first["cached"], again["cached"]) == (False, True)
    assert again["items"] == first["items"]
    assert recommendations(trained, "p0", n=6)["cached"] is False  # another question
    viewed = {"type": "view", "user_id": "p1", "item_id": "i3", "timestamp": START_S + 90 * 86_400}
    assert trained.post("/v1/events", json=viewed).status_code == 200
    assert recommendations(trained, "p0", n=5)["cached"] is True  # someone else acted
    viewed["user_id"] = "p0"
    assert trained.post("/v1/events", json=viewed).status_code == 200
    assert recommendations(trained, "p0", n=5)["cached"] is False


def test_revoking_consent_drops_the_cached_personal_answer(trained: TestClient) -> None:
    recommendations(trained, "p0", n=5)
    assert recommendations(trained, "p0", n=5)["cached"] is True
    revoked = trained.put("/v1/users/p0/consent", json={"personalization": "revoked"})
    assert revoked.status_code == 200, revoked.text
    after = recommendations(trained, "p0", n=5)
    assert (after["cached"], after["source"]) == (False, "trending")
    assert after["reason"] == "no personalization consent"


def test_a_cold_start_answer_is_dropped_with_the_first_event(trained: TestClient) -> None:
    assert recommendations(trained, "newcomer", n=5)["cached"] is False
    assert recommendations(trained, "newcomer", n=5)["cached"] is True
    viewed = {"type": "view", "anonymous_id": "newcomer", "item_id": "i3"}
    assert trained.post("/v1/events", json=viewed).status_code == 200
    assert recommendations(trained, "newcomer", n=5)["cached"] is False


def test_every_answer_has_the_documented_shape(trained: TestClient, engine: Engine) -> None:
    answers = [recommendations(trained, "p0", n=5), recommendations(trained, "p0", n=5)]
    engine.recommendations.budget_ms = 0.001
    answers.append(recommendations(trained, "someone", n=3))  # a fallback
    for body in answers:
        assert RecommendationsOut.model_validate(body).model_dump(mode="json") == body


def _context_views(client: TestClient, items: list[str], **context: str) -> None:
    """Views by 30 other people, in ``context``, on ``items``, in the last days."""
    at = NOW_MS // 1000 - 86_400
    views = [
        {"type": "view", "user_id": f"ctx{n}", "item_id": item, "timestamp": at, "context": context}
        for n in range(30)
        for item in items
    ]
    assert client.post("/v1/events", json=views).status_code == 200
    # The counts are read as the model set loads, then at most once a minute: read them now.
    engine_of(client).recommendations.context_trends.forget()


def engine_of(client: TestClient) -> Engine:
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    return engine


def test_a_newcomer_gets_what_is_trending_in_their_context(trained: TestClient) -> None:
    on_mobile = ["i7", "i11", "i19"]
    _context_views(trained, on_mobile, device="mobile")
    _context_views(trained, ["i2", "i4", "i6"], device="desktop", country="FR")
    body = recommendations(trained, "first-visit", n=3, device="mobile")
    assert (body["source"], body["items"][0]["sources"]) == (
        "context_trending",
        ["context_trending"],
    )
    assert {i["item_id"] for i in body["items"]} == set(on_mobile)
    assert recommendations(trained, "first-visit", n=3)["source"] == "pipeline"  # no context


def test_a_known_person_without_history_gets_trending_for_their_country_trait(
    trained: TestClient,
) -> None:
    in_france = ["i2", "i4", "i6"]
    _context_views(trained, in_france, country="FR")
    assert trained.put("/v1/users/crm-only/traits", json={"country": "FR"}).status_code == 200
    body = recommendations(trained, "crm-only", n=3)
    assert body["source"] == "context_trending"
    assert {i["item_id"] for i in body["items"]} == set(in_france)
    assert recommendations(trained, "crm-only", n=3, country="DE")["source"] == "pipeline"


def test_what_the_persons_segments_favour_joins_the_candidates(
    trained: TestClient, engine: Engine
) -> None:
    segment = {"name": "regulars", "rule": "profile.event_count >= 1"}
    assert trained.post("/v1/segments", json=segment).status_code in (200, 201)
    engine.segments.refresh()
    seen = {e["item_id"] for e in events() if e["user_id"] == "p0"}
    favourite = next(f"i{i}" for i in range(80) if f"i{i}" not in seen)
    _context_views(trained, [favourite])  # 30 members view it, in no particular context
    body = recommendations(trained, "p0", n=80)
    proposed = {i["item_id"]: i["sources"] for i in body["items"]}
    assert "segment_trending" in proposed[favourite]
    assert not seen & proposed.keys()


def test_someone_never_seen_gets_a_list(trained: TestClient) -> None:
    body = recommendations(trained, "brand-new-visitor", n=8)
    assert body["source"] == "pipeline" and len(body["items"]) == 8


def test_people_never_seen_share_one_answer_until_they_act(trained: TestClient) -> None:
    """Nothing in a stranger's answer depends on who asks: one ranking serves them all, per
    question; their first event gives them an answer of their own."""
    first = recommendations(trained, "visitor-1", n=6)
    second = recommendations(trained, "visitor-2", n=6)
    assert (first["source"], first["cached"]) == ("pipeline", False)
    assert second["cached"] is True and second["items"] == first["items"]
    other = recommendations(trained, "visitor-3", n=6, category="comedy")
    assert other["cached"] is False  # another question
    assert all(int(i["item_id"][1:]) % 4 == 1 for i in other["items"])

    shown = first["items"][0]["item_id"]
    viewed = {"type": "view", "anonymous_id": "visitor-2", "item_id": shown}
    assert trained.post("/v1/events", json=viewed).status_code == 200
    own = recommendations(trained, "visitor-2", n=6)
    assert own["cached"] is False and shown not in {i["item_id"] for i in own["items"]}
    assert recommendations(trained, "visitor-4", n=6)["items"] == first["items"]


def test_filters_category_and_exclude(trained: TestClient) -> None:
    body = recommendations(trained, "p0", n=5, category="comedy", exclude=["i1", "i5"])
    ids = {i["item_id"] for i in body["items"]}
    assert ids and all(int(i[1:]) % 4 == 1 for i in ids)
    assert not ids & {"i1", "i5"}


def test_people_who_did_nothing_since_training_are_answered_from_their_shortlists(
    trained: TestClient, engine: Engine
) -> None:
    """At the default budget; the same items the live ranking gives at the same moment."""
    service = engine.recommendations
    service.budget_ms = RecommendSettings().budget_ms
    served = service._served
    assert served is not None and served.shortlists is not None
    hour = NOW_MS // 1000 // 3600 % 24  # the batch ranked at the training clock's hour
    for person in ("p0", "p1", "p2", "p3"):
        from_shortlist = recommendations(trained, person, n=10)
        assert from_shortlist["source"] == "pipeline", from_shortlist
        live = recommendations(trained, person, n=10, hour=hour)  # a context: ranked live
        assert live["source"] == "pipeline" and not live["cached"]
        # the same list; scores kept in single precision
        assert strip_scores(from_shortlist["items"]) == strip_scores(live["items"])
        assert [i["score"] for i in from_shortlist["items"]] == pytest.approx(
            [i["score"] for i in live["items"]], rel=1e-6
        )


def test_shortlists_are_verified_in_bulk_when_a_model_set_is_loaded(
    trained: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One read compares everyone with the store: their first requests read nothing of their
    own; someone who acted before the load is not taken, and is ranked live."""
    acted(trained, "p3")
    service = engine.recommendations
    service.refresh()
    assert service.verification is not None
    service.verification.result(timeout=30)
    reads: list[str] = []
    one_read = service.requests.signature
    monkeypatch.setattr(service.requests, "signature", lambda p: reads.append(p) or one_read(p))
    for person in ("p0", "p1", "p2"):
        assert recommendations(trained, person, n=5)["source"] == "pipeline"
    assert reads == []
    served = service._served
    assert served is not None
    ranked: list[int] = []
    core = served.pipeline._shortlists
    monkeypatch.setattr(served.pipeline, "_shortlists", lambda r: ranked.append(len(r)) or core(r))
    assert recommendations(trained, "p3", n=5)["source"] == "pipeline"
    assert (reads, ranked) == (["p3"], [1])
    acted(trained, "p1")  # a change heard after the bulk read: p1 is ranked live again
    assert recommendations(trained, "p1", n=5)["source"] == "pipeline"
    assert ranked == [1, 1]


def test_a_server_takes_requests_once_its_start_up_reads_are_done(
    trained: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`persona serve` starts taking requests after the shortlists' bulk check and the read of
    who holds consent, so its first requests do not share the cores with them; a check that
    outlasts ``server.warmup_seconds`` goes on in the background."""
    service = engine.recommendations
    service.refresh()  # served already: the server's start finds the champion in service
    assert service.verification is not None
    service.verification.result(timeout=30)
    checked = threading.Event()
    verify = service._verify_in_bulk

    def slow(served: Any) -> None:
        time.sleep(0.5)
        verify(served)
        checked.set()

    monkeypatch.setattr(service, "_verify_in_bulk", slow)
    holders: list[int] = []
    read = engine.privacy.consent.refresh_holders
    monkeypatch.setattr(
        engine.privacy.consent, "refresh_holders", lambda: holders.append(read()) or holders[-1]
    )
    service._served = None  # as in a new process: the start loads the champion
    with TestClient(create_app(engine, background_jobs=True)):
        assert checked.is_set() and len(holders) == 1
    checked.clear()
    service._served = None
    server = engine.settings.server.model_copy(update={"warmup_seconds": 0.1})
    monkeypatch.setattr(engine, "settings", engine.settings.model_copy(update={"server": server}))
    started = time.monotonic()
    with TestClient(create_app(engine, background_jobs=True)):
        assert not checked.is_set() and time.monotonic() - started < 0.5
    assert checked.wait(30)


def test_a_shortlist_is_left_for_live_ranking_once_the_person_acts(
    trained: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live ranking then serves the person's next requests, until they act again."""
    served = engine.recommendations._served
    assert served is not None
    ranked: list[int] = []
    core = served.pipeline._shortlists

    def counted(requests: Any) -> Any:
        ranked.append(len(requests))
        return core(requests)

    monkeypatch.setattr(served.pipeline, "_shortlists", counted)
    first = recommendations(trained, "p2", n=5)
    assert (first["source"], ranked) == ("pipeline", [])
    top = first["items"][0]["item_id"]
    acted(trained, "p2", top)
    after = recommendations(trained, "p2", n=5)
    assert (after["source"], after["cached"], ranked) == ("pipeline", False, [1])
    assert top not in {i["item_id"] for i in after["items"]}
    other = recommendations(trained, "p2", n=7)  # another question: the live shortlist
    assert (other["source"], other["cached"], ranked) == ("pipeline", False, [1])
    assert top not in {i["item_id"] for i in other["items"]} and len(other["items"]) == 7
    second = after["items"][0]["item_id"]
    acted(trained, "p2", second)
    again = recommendations(trained, "p2", n=5)
    assert ranked == [1, 1] and second not in {i["item_id"] for i in again["items"]}


def test_filters_apply_to_shortlists(trained: TestClient) -> None:
    first = recommendations(trained, "p0", n=5)["items"]
    excluded = first[0]["item_id"]
    again = recommendations(trained, "p0", n=5, exclude=excluded)
    assert again["source"] == "pipeline"
    assert excluded not in {i["item_id"] for i in again["items"]}
    assert [i["item_id"] for i in again["items"]][:3] == [i["item_id"] for i in first[1:4]]


def test_unavailable_items_are_never_recommended(trained: TestClient) -> None:
    top = recommendations(trained, "p0", n=3)["items"][0]["item_id"]
    response = trained.put(f"/v1/items/{top}", json={"available": False, "categories": []})
    assert response.status_code == 200, response.text
    assert top not in {i["item_id"] for i in recommendations(trained, "p0", n=10)["items"]}


@pytest.mark.parametrize("stage", ["_shortlists", "finish"])
def test_a_failing_pipeline_answers_from_trending(
    trained: TestClient, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """``finish`` (the rerank stage) fails for a person served from their shortlist as for
    one ranked live; ``_shortlists`` (the ranking) fails the live path only."""

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("stage failed")

    monkeypatch.setattr(RecommendationPipeline, stage, broken)
    body = recommendations(trained, "p0", n=5)
    if stage == "finish":
        assert body["source"] == "trending" and body["reason"] == "pipeline failed"
        assert len(body["items"]) == 5
    else:  # p0 did nothing since training: the shortlist answers, without ranking
        assert body["source"] == "pipeline"
    acted(trained, "p0")
    body = recommendations(trained, "p0", n=5)  # stale shortlist: ranked live, which fails
    assert body["source"] == "trending" and body["reason"] == "pipeline failed"
    assert len(body["items"]) == 5


def test_an_exceeded_budget_answers_from_trending(
    trained: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    acted(trained, "p0")  # their shortlist is stale: ranked live
    pipeline = engine.recommendations._served.pipeline  # type: ignore[union-attr]
    rank = pipeline._shortlists  # the ranking core of rank and shortlists

    def slow_rank(*args: Any, **kwargs: Any) -> Any:
        # A ranking of a few milliseconds can, rarely, finish before the request thread
        # gets the interpreter back to check its budget: this one never does.
        time.sleep(0.2)
        return rank(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_shortlists", slow_rank)
    engine.recommendations.budget_ms = 0.001
    body = recommendations(trained, "p0", n=5)
    assert body["source"] == "trending" and body["reason"] == "latency budget exceeded"
    assert len(body["items"]) == 5


def test_a_ranking_that_missed_its_budget_answers_the_next_ask(
    trained: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = engine.recommendations
    pipeline = service._served.pipeline  # type: ignore[union-attr]
    rank = pipeline._shortlists  # the ranking core of rank and shortlists

    def slow_rank(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)  # far past the budget below, however loaded the machine is
        return rank(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_shortlists", slow_rank)
    service.budget_ms = 10
    acted(trained, "p0")  # their shortlist is stale: ranked live
    assert recommendations(trained, "p0", n=5)["source"] == "trending"
    deadline = time.monotonic() + 30
    while not len(service.cache) and time.monotonic() < deadline:
        time.sleep(0.01)  # the ranking goes on in the background
    again = recommendations(trained, "p0", n=5)
    assert (again["source"], again["cached"]) == ("pipeline", True)


def test_an_aged_answer_is_served_while_the_person_is_ranked_again(
    trained: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = engine.recommendations
    acted(trained, "p0")  # their shortlist is stale: ranked live
    first = recommendations(trained, "p0", n=5)
    assert (first["source"], first["cached"]) == ("pipeline", False)
    # The refresh must rank: without the shortlist that ranking kept, it would answer from it.
    service._served.freshness.unknown()  # type: ignore[union-attr]
    pipeline = service._served.pipeline  # type: ignore[union-attr]
    rank = pipeline._shortlists  # the ranking core of rank and shortlists
    rankings: list[float] = []

    def slow_rank(*args: Any, **kwargs: Any) -> Any:
        rankings.append(time.monotonic())
        time.sleep(0.5)  # a request that waited for this would show it
        return rank(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_shortlists", slow_rank)
    # One lifetime later: the answer is aged (and not yet too old to serve).
    ttl = service.cache.ttl_seconds
    monkeypatch.setattr(service.cache, "_now", lambda: time.monotonic() + ttl)
    started = time.monotonic()
    aged = recommendations(trained, "p0", n=5)
    assert time.monotonic() - started < 0.5
    assert (aged["cached"], aged["items"]) == (True, first["items"])
    deadline = time.monotonic() + 30
    while not rankings or service._refreshing:  # ranked again in the background, and stored
        assert time.monotonic() < deadline
        time.sleep(0.01)
    again = recommendations(trained, "p0", n=5)
    assert (again["source"], again["cached"]) == ("pipeline", True)
    assert len(rankings) == 1 and not service._refreshing  # the new answer is not aged


def test_aged_answers_are_refreshed_a_quarter_of_the_time_at_most(
    trained: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = engine.recommendations
    for person in ("p0", "p1"):
        acted(trained, person)  # their shortlists are stale: ranked live
        recommendations(trained, person, n=5)
    service._served.freshness.unknown()  # type: ignore[union-attr]  # refreshes must rank
    pipeline = service._served.pipeline  # type: ignore[union-attr]
    rank = pipeline._shortlists  # the ranking core of rank and shortlists
    rankings: list[float] = []

    def slow_rank(*args: Any, **kwargs: Any) -> Any:
        rankings.append(time.monotonic())
        time.sleep(0.2)
        return rank(*args, **kwargs)

    monkeypatch.setattr(pipeline, "_shortlists", slow_rank)
    ttl = service.cache.ttl_seconds
    monkeypatch.setattr(service.cache, "_now", lambda: time.monotonic() + ttl)
    for person in ("p0", "p1"):
        assert recommendations(trained, person, n=5)["cached"] is True
    deadline = time.monotonic() + 30
    while len(rankings) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # the second refresh waits three times as long as the first took (0.2 s or more)
    assert rankings[1] - rankings[0] >= 0.2 * (1 + REFRESH_PAUSE_FACTOR)


def test_bounds_on_n(trained: TestClient) -> None:
    response = trained.get("/v1/users/p0/recommendations", params={"n": 1000})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_models_lists_versions_with_metrics(trained: TestClient, engine: Engine) -> None:
    body = trained.get("/v1/models").json()
    assert body["serving"] == engine.recommendations.served_version
    (version,) = body["versions"]
    assert version["champion"] is True
    assert 0.0 <= version["metrics"]["ndcg@10"] <= 1.0
    assert "ease" in version["sources"]


def test_a_worse_challenger_is_not_promoted(engine: Engine, client: TestClient) -> None:
    load(client)
    train(engine)
    registry = engine.recommendations.registry
    champion = registry.champion()
    assert champion is not None
    # Make the serving version look unbeatable: the next training must not replace it.
    manifest = champion.manifest | {"metrics": {"ndcg@10": 1.0}}
    (champion.path / "manifest.json").write_text(__import__("json").dumps(manifest))
    outcome = train_model_set(
        engine.storage, registry, engine.clock, engine.settings.profiles.event_weights
    )
    assert not outcome.promoted
    assert registry.champion() is not None
    assert registry.champion().version == champion.version  # type: ignore[union-attr]


def test_a_model_set_is_promoted_and_rolled_back_by_the_api_and_audited(
    engine: Engine, client: TestClient, clock: FakeClock
) -> None:
    first, second = train_twice(client, engine, clock, second_wins=True)
    assert second.promoted
    engine.recommendations.reload()
    served = lambda: recommendations(client, "p1")["model_version"]  # noqa: E731
    assert served() == second.version.version

    back = client.post("/v1/models/rollback")
    assert back.status_code == 200, back.text
    assert back.json() == {"serving": first.version, "previous": second.version.version}
    assert served() == first.version
    again = client.post(f"/v1/models/{second.version.version}/promote")
    assert again.json() == {"serving": second.version.version, "previous": first.version}
    assert served() == second.version.version
    assert client.post("/v1/models/no-such-version/promote").status_code == 404
    with engine.storage.read() as uow:
        actions = [e.action for e in uow.audit.page(after_id=0, limit=100)]
    assert actions.count("model.promote") == 2


def test_distinct_requests_cannot_grow_the_answer_cache_past_its_bytes(
    trained: TestClient, engine: Engine
) -> None:
    cache = engine.recommendations.cache
    assert cache.max_bytes == engine.settings.recommend.cache_megabytes * 1024 * 1024
    cache.max_bytes = 200_000  # a bound a test can reach
    for n in range(60):
        exclude = [f"{n}-{'x' * 100}-{i}" for i in range(200)]  # about 35 KB of key each
        recommendations(trained, "p1", exclude=exclude)
    assert 0 < cache.bytes <= 200_000
    assert len(cache) < 60
