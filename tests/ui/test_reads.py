"""What the dashboard reads, below the web layer: activity and rejections over time, a
segment's size over time, the sequential test at every look, counters, keys by id, the model
registry's promotion by hand, and the session's signatures. On every storage backend."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from persona.access.keys import Scope
from persona.api.ui.session import SESSION_SECONDS, SessionSigner, session_secret
from persona.clock import FakeClock
from persona.decide.schema import DecisionRequest, PlacementIn
from persona.engine import Engine
from persona.errors import InvalidRequestError, NotFoundError
from persona.ingest.activity import series
from persona.recommend.training import train_model_set
from tests.conftest import NOW_MS
from tests.decide.placements import ab
from tests.recommend.synthetic import stock

MINUTE = 60_000


def test_events_by_type_fill_every_bucket_of_the_window(engine: Engine, clock: FakeClock) -> None:
    now_s = NOW_MS // 1000
    engine.ingest.ingest(
        [
            {"type": "view", "user_id": "a", "timestamp": now_s - 150},  # 2.5 minutes ago
            {"type": "view", "user_id": "b", "timestamp": now_s - 130},
            {"type": "click", "user_id": "a", "timestamp": now_s - 10},
            {"type": "view", "user_id": "c", "timestamp": now_s - 4000},  # before the window
        ]
    )
    found = engine.ingest.activity.events_by_type(NOW_MS - 3 * MINUTE, NOW_MS + MINUTE, MINUTE)
    assert found.starts_ms == [NOW_MS - 3 * MINUTE + n * MINUTE for n in range(4)]
    assert found.counts == {"click": [0, 0, 1, 0], "view": [2, 0, 0, 0]}
    assert found.total == 3
    with pytest.raises(ValueError, match="buckets"):
        engine.ingest.activity.events_by_type(0, NOW_MS, 1)  # far too many points
    with pytest.raises(ValueError, match="end after"):
        engine.ingest.activity.events_by_type(NOW_MS, NOW_MS, MINUTE)


def test_rejections_by_code_in_total_and_per_day(engine: Engine, clock: FakeClock) -> None:
    engine.ingest.ingest([{"type": "view"}, {"type": "view", "user_id": "u", "x": 1}])
    clock.advance(86_400)
    engine.ingest.ingest([{"type": "view"}])
    day = 86_400_000
    totals = engine.ingest.activity.rejection_totals()
    assert [(r.code, r.entries, r.replayed) for r in totals] == [
        ("missing_identity", 2, 0),
        ("unknown_field", 1, 0),
    ]
    now = clock.now_ms()
    per_day = engine.ingest.activity.rejections_by_code(now - 2 * day, now + 1, day)
    assert per_day.counts["missing_identity"][-2:] == [1, 1]
    assert sum(per_day.counts["unknown_field"]) == 1
    assert [e.code for e in engine.ingest.activity.quarantined(limit=2)] == [
        "missing_identity",
        "unknown_field",
    ]
    assert engine.ingest.activity.totals().quarantined == 3


def test_series_keep_only_the_buckets_of_the_window() -> None:
    found = series([(0, "a", 1), (10, "a", 2), (20, "b", 5), (30, "a", 9)], 5, 30, 10)
    assert found.starts_ms == [0, 10, 20]
    assert found.counts == {"a": [1, 2, 0], "b": [0, 0, 5]}


def test_a_segments_size_over_time_follows_its_entries_and_exits(
    engine: Engine, clock: FakeClock
) -> None:
    engine.segments.create("buyers", "did(purchase) within 1h")
    created = clock.now_ms()
    for person in ("a", "b", "c"):
        clock.advance(600)
        engine.ingest.ingest([{"type": "purchase", "user_id": person, "item_id": "i1"}])
    clock.advance(3000)  # a's purchase is over an hour old now
    engine.segments.refresh()
    history = engine.segments.size_history("buyers", points=20)
    step = (clock.now_ms() - created) // 20  # each point ends a step
    assert history[0][0] <= created + step + 1000 and history[-1][0] == clock.now_ms()
    assert len(history) in (20, 21)
    sizes = [size for _, size in history]
    assert max(sizes) == 3 and sizes[-1] == engine.segments.size("buyers") == 2
    assert sizes == sorted(sizes[: sizes.index(3) + 1]) + sizes[sizes.index(3) + 1 :]
    with pytest.raises(NotFoundError):
        engine.segments.size_history("missing")


def test_the_sequential_path_ends_where_the_results_are(engine: Engine, clock: FakeClock) -> None:
    engine.decisions.create("hero", PlacementIn.model_validate(ab("hero")).body())
    outcomes = []
    for i in range(250):
        clock.advance(1)
        [decision] = engine.decisions.decide(DecisionRequest(user_id=f"u{i}", placements=["hero"]))
        if i % (3 if decision.variant == "v1" else 5) == 0:
            outcomes.append(
                {"type": "click", "user_id": f"u{i}", "decision_id": decision.decision_id}
            )
    engine.ingest.ingest(outcomes)
    results = engine.experiments.results("hero")
    [path] = engine.experiments.sequential_paths("hero", "click_rate")
    rate = results.comparisons[0].click_rate
    assert rate is not None and path.arm == "v1" and path.metric == "click_rate"
    assert path.units == [100, 200, 250]
    assert path.p_value[-1] == pytest.approx(rate.sequential_p_value)
    assert path.difference[-1] == pytest.approx(rate.absolute_lift)
    assert rate.sequential_ci is not None
    assert (path.lower[-1], path.upper[-1]) == pytest.approx(rate.sequential_ci)
    assert path.p_value == sorted(path.p_value, reverse=True)  # never rises
    with pytest.raises(InvalidRequestError):
        engine.experiments.sequential_paths("hero", "revenue")


def test_counter_totals_are_this_process_counts(engine: Engine) -> None:
    engine.ingest.ingest([{"type": "view", "user_id": "u"}, {"type": "view"}])
    outcomes = engine.metrics.totals(engine.metrics.events)
    assert outcomes[("accepted",)] == 1 and outcomes[("rejected",)] == 1
    assert engine.metrics.totals(engine.metrics.rejections) == {("missing_identity",): 1.0}


def test_a_key_is_found_by_its_id_until_it_is_revoked(engine: Engine) -> None:
    created = engine.keys.create("reader", [Scope.READ])
    principal = engine.keys.active(created.key_id)
    assert principal is not None and principal.scopes == frozenset({Scope.READ})
    for unknown in ("0123456789ab", "dev", "", "psk_x", "A" * 40):
        assert engine.keys.active(unknown) is None
    engine.keys.revoke(created.key_id)
    assert engine.keys.active(created.key_id) is None


def test_a_stored_model_set_is_promoted_by_hand(engine: Engine, clock: FakeClock) -> None:
    stock(engine)  # a first model set, the champion
    clock.advance(60)
    train_model_set(
        engine.storage,
        engine.recommendations.registry,
        engine.clock,
        engine.settings.profiles.event_weights,
    )
    registry = engine.recommendations.registry
    champion = registry.champion()
    assert champion is not None and len(registry.versions()) == 2
    other = next(v.version for v in registry.versions() if v.version != champion.version)
    with pytest.raises(NotFoundError):
        registry.promote_stored("v-none")
    assert registry.promote_stored(other).version == other
    now = registry.champion()
    assert now is not None and now.version == other


def test_sessions_are_signed_expire_and_carry_their_own_csrf_token() -> None:
    signer = SessionSigner(b"s" * 32)
    session, cookie = signer.issue("abc123", now_s=1_000)
    assert signer.read(cookie, 1_000) == session
    assert signer.read(cookie, 1_000 + SESSION_SECONDS) is None  # expired
    assert SessionSigner(b"t" * 32).read(cookie, 1_000) is None  # another home's secret
    other, _ = signer.issue("abc123", now_s=1_000)
    assert signer.csrf_token(session) != signer.csrf_token(other)
    assert signer.csrf_matches(session, signer.csrf_token(session))
    assert not signer.csrf_matches(session, signer.csrf_token(other))
    assert not signer.csrf_matches(session, None) and not signer.csrf_matches(session, "")
    for broken in ("", "a.b.c", "%%%.%%%", "x" * 600, cookie.replace(".", "")):
        assert signer.read(broken, 1_000) is None


def test_the_session_secret_is_made_once_private_and_shared(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: session_secret(tmp_path), range(16)))
    assert len(secrets) == 1 and len(secrets.pop()) == 64
    path = tmp_path / "secrets" / "ui-session.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["ui-session.key"]  # no staging left
