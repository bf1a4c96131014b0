"""Predictions over the store: training, stored scores, rules on scores, backtesting (as of)."""

from __future__ import annotations

import numpy as np
import pytest

from persona.engine import Engine
from persona.predictions.scheduler import train_predictive_models
from persona.recommend.training import load_training_data
from persona.storage.tables.predictions import profile_scores
from tests.conftest import NOW_MS
from tests.predictions.synthetic import ingest_all, shop_events

DAY_S = 86_400
END_S = NOW_MS // 1000


@pytest.fixture
def shop(engine: Engine) -> dict[str, bool]:
    events, kinds = shop_events()
    ingest_all(engine, events)
    engine.predictions.create("purchase_7d", "purchase", 7, "buys within a week")
    return kinds


def test_training_scores_everyone_and_profiles_show_the_scores(
    engine: Engine, shop: dict[str, bool]
) -> None:
    result = engine.predictions.train("purchase_7d")
    e = result.evaluation
    assert e.people == 80 and 10 < e.positives < 70
    assert e.roc_auc is not None and e.roc_auc > 0.75
    assert result.scored == 80
    record = engine.predictions.get("purchase_7d")
    assert record.trained_at_ms is not None and record.evaluation is not None
    assert record.evaluation["roc_auc"] == pytest.approx(e.roc_auc)
    assert {"heuristic_roc_auc", "brier", "calibration"} <= set(record.evaluation)
    scores = {user: engine.profiles.get(user).scores for user in shop}
    assert all(set(s) == {"purchase_7d"} for s in scores.values())
    buyers = np.mean([s["purchase_7d"] for u, s in scores.items() if shop[u]])
    browsers = np.mean([s["purchase_7d"] for u, s in scores.items() if not shop[u]])
    assert buyers > 0.4 > 0.2 > browsers
    exported = dict(engine.predictions.export())
    assert exported["u:p0"] == scores["p0"]


def test_rules_on_scores_agree_in_batch_and_in_real_time(
    engine: Engine, shop: dict[str, bool]
) -> None:
    engine.predictions.train("purchase_7d")
    engine.segments.create("likely_buyers", "profile.scores.purchase_7d > 0.5")
    engine.segments.create("unscored", "not profile.scores.churn_30d >= 0")
    likely = {
        m.profile_key for m in engine.segments.members("likely_buyers", after=None, limit=500)
    }
    expected = {
        f"u:{user}" for user in shop if engine.profiles.get(user).scores["purchase_7d"] > 0.5
    }
    assert likely == expected and likely
    assert engine.segments.size("unscored") == 80  # no churn_30d score: the comparison is false
    # a score written without a refresh is read by the real-time path at the person's next event
    outsider = next(u for u in shop if f"u:{u}" not in likely)
    with engine.storage.write() as uow:
        uow.connection.execute(
            profile_scores.update()
            .where(profile_scores.c.profile_key == f"u:{outsider}")
            .values(probability=0.99)
        )
    assert outsider not in {
        m.profile_key for m in engine.segments.members("likely_buyers", after=None, limit=500)
    }
    engine.ingest.ingest([{"type": "view", "user_id": outsider, "item_id": "i1"}])
    assert "likely_buyers" in engine.segments.memberships(f"u:{outsider}")
    summary = engine.segments.refresh()
    assert summary.changes["likely_buyers"] == (0, 0)  # batch agrees with what real time did


def test_training_as_of_a_moment_reads_nothing_after_it(
    engine: Engine, shop: dict[str, bool]
) -> None:
    as_of_ms = (END_S - 20 * DAY_S) * 1000
    first = train_predictive_models(engine.clusters, engine.predictions, engine.segments, as_of_ms)
    assert not first.problems, first.problems
    scores_before = dict(engine.predictions.export())
    clusters_before = {c.segment: c.size for c in engine.clusters.clusters()}
    auc_before = first.predictions[0].evaluation.roc_auc
    # twenty more days of history appear after the moment (all of it before "now")
    later, _ = shop_events(seed=5, days=20, end_s=END_S - 1)
    ingest_all(engine, [{**e, "event_id": "late-" + e["event_id"]} for e in later])
    again = train_predictive_models(engine.clusters, engine.predictions, engine.segments, as_of_ms)
    assert again.predictions[0].evaluation.roc_auc == auc_before
    assert dict(engine.predictions.export()) == scores_before
    assert again.clusters is not None and first.clusters is not None
    assert again.clusters.model.ids == first.clusters.model.ids
    assert {c.segment: c.size for c in engine.clusters.clusters()} == clusters_before
    assert engine.clusters.model().trained_before_ms == as_of_ms  # type: ignore[union-attr]
    # the recommendation models read the same cut
    data = load_training_data(engine.storage, {}, before_ms=as_of_ms).interactions
    assert len(data.timestamps_ms) and int(data.timestamps_ms.max()) < as_of_ms
    everything = load_training_data(engine.storage, {}).interactions
    assert int(everything.timestamps_ms.max()) >= as_of_ms


def test_deleting_a_prediction_removes_its_scores(engine: Engine, shop: dict[str, bool]) -> None:
    engine.predictions.train("purchase_7d")
    engine.predictions.delete("purchase_7d")
    assert dict(engine.predictions.export()) == {}
    assert engine.profiles.get("p0").scores == {}


def test_a_merged_anonymous_profile_loses_its_scores(engine: Engine) -> None:
    engine.ingest.ingest([{"type": "view", "anonymous_id": "a1", "item_id": "i1"}])
    with engine.storage.write() as uow:
        uow.connection.execute(
            profile_scores.insert().values(
                profile_key="a:a1", name="purchase_7d", probability=0.4, scored_at_ms=NOW_MS
            )
        )
    assert engine.profiles.get("a1").scores == {"purchase_7d": 0.4}
    engine.ingest.ingest([{"type": "identify", "anonymous_id": "a1", "user_id": "u9"}])
    assert dict(engine.predictions.export()) == {}
