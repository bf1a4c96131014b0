"""Full erasure on the MovieLens demo: a trained model set, then one person erased everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from persona.api.app import create_app
from persona.demo.movielens import movie_items, rating_events, ratings_frame
from persona.engine import Engine
from persona.recommend.service import NO_CONSENT
from persona.recommend.training import train_model_set
from persona.settings import Settings
from tests.privacy.scan import files_containing, rows_containing

USERS = 40  # a reduced load keeps the test fast; every mechanism is the same at full size


def _person(user: int) -> str:
    return f"mlu-{user:04d}x"  # distinctive, so a byte scan cannot match by accident


def test_erase_one_movielens_person_everywhere(tmp_path: Path) -> None:
    frame = ratings_frame()
    frame = frame[frame["userId"] <= USERS].reset_index(drop=True)
    engine = Engine.open(Settings(home=tmp_path, dev_mode=True))
    try:
        items = movie_items(frame)
        for start in range(0, len(items), 1000):
            engine.catalog.upsert(items[start : start + 1000])
        events = []
        for event in rating_events(frame):
            person = _person(int(event["user_id"]))
            event["user_id"] = person
            event["event_id"] = f"{person}-{event['item_id']}"
            events.append(event)
        for start in range(0, len(events), 1000):
            assert engine.ingest.ingest(events[start : start + 1000]).rejected == 0
        doomed, other = _person(7), _person(8)
        alias = "anon-for-" + doomed
        engine.ingest.ingest([{"type": "identify", "user_id": doomed, "anonymous_id": alias}])
        train_model_set(
            engine.storage,
            engine.recommendations.registry,
            engine.clock,
            engine.settings.profiles.event_weights,
        )
        assert engine.recommendations.reload() is not None
        needles = [doomed, alias]
        assert files_containing(tmp_path / "models", needles)  # the model holds them before

        with TestClient(create_app(engine)) as client:
            before = client.get(f"/v1/users/{other}/recommendations", params={"n": 5}).json()
            report = client.delete(f"/v1/subjects/{doomed}")
            assert report.status_code == 200, report.text
            body = report.json()
            assert body["ids_erased"] == 2
            assert body["models_rewritten"] >= 1
            assert body["model_rows_removed"] > 0

            assert rows_containing(engine, needles) == {}
            assert files_containing(tmp_path, needles) == {}
            served = engine.recommendations._served
            assert served is not None and served.pipeline.data is not None
            assert not set(needles) & {u.split(":", 1)[-1] for u in served.pipeline.data.user_ids}
            stored = engine.recommendations.registry.load_interactions(served.version)
            assert int(stored.users.max()) < len(stored.user_ids)
            assert np.all(stored.users >= 0)

            after = client.get(f"/v1/users/{other}/recommendations", params={"n": 5})
            assert after.status_code == 200
            assert after.json()["items"]
            assert after.json()["source"] == before["source"]

            # a person who withdraws personalization gets the trending list, marked as such
            withdrawn, also = _person(9), _person(10)
            for person in (withdrawn, also):
                client.put(f"/v1/users/{person}/consent", json={"personalization": "revoked"})
            plain = client.get(f"/v1/users/{withdrawn}/recommendations", params={"n": 5})
            assert plain.json()["source"] == "trending"
            assert plain.json()["reason"] == NO_CONSENT
            assert plain.json()["items"]
            batch = dict(
                engine.recommendations.recommend_all(5, engine.settings.profiles.event_weights)
            )
            assert doomed not in batch
            # batch lists ignore their histories: both are ranked as newcomers, identically
            assert [i.item_id for i in batch[withdrawn]] == [i.item_id for i in batch[also]]
            assert batch[withdrawn]
    finally:
        engine.close()
