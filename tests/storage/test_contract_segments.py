"""The storage contract of segments and predictions, on every backend."""

from __future__ import annotations

from persona.clock import FakeClock
from persona.engine import Engine
from persona.rules import parse_rule
from persona.storage.records import MembershipRecord, PredictionRecord, SegmentRecord
from tests.storage.test_contract import event


def segment(
    name: str, kind: str = "rule", rule: str | None = "profile.monetary > 1"
) -> SegmentRecord:
    return SegmentRecord(name, kind, rule, f"about {name}", 1, 2)


class TestSegmentStore:
    def test_definitions_insert_replace_delete(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.segments.insert(segment("b"))
            uow.segments.insert(segment("a", kind="cluster", rule=None))
            uow.segments.replace(SegmentRecord("b", "rule", 'traits.plan = "gold"', "new", 1, 5))
            uow.segments.enter("b", ["u:1"], 3)
        with engine.storage.read() as uow:
            assert [d.name for d in uow.segments.definitions()] == ["a", "b"]
            assert uow.segments.get("b") == SegmentRecord(
                "b", "rule", 'traits.plan = "gold"', "new", 1, 5
            )
            assert uow.segments.get("missing") is None
        with engine.storage.write() as uow:
            uow.segments.delete("b")
        with engine.storage.read() as uow:
            assert uow.segments.get("b") is None
            assert uow.segments.history("u:1") == []  # the history went with it

    def test_stays_open_close_and_are_kept(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.segments.enter("s", ["u:2", "u:1", "a:x"], 10)
            uow.segments.enter("t", ["u:1"], 11)
        with engine.storage.write() as uow:
            uow.segments.exit("s", ["u:2", "u:9"], 20)
            uow.segments.exit_all(["a:x"], 21)
            uow.segments.enter("s", ["u:2"], 30)
        with engine.storage.read() as uow:
            assert uow.segments.open_members("s") == {"u:1", "u:2"}
            assert uow.segments.member_count("s") == 2
            assert uow.segments.open_segments_of("u:1") == ["s", "t"]
            assert uow.segments.open_segments_of("a:x") == []
            assert uow.segments.open_memberships_of(["u:1", "u:2", "a:x"]) == {
                "u:1": {"s", "t"},
                "u:2": {"s"},
            }
            assert [m.profile_key for m in uow.segments.members("s", after=None, limit=1)] == [
                "u:1"
            ]
            assert uow.segments.members("s", after="u:1", limit=5) == [
                MembershipRecord("s", "u:2", 30, None)
            ]
            assert [(m.entered_at_ms, m.exited_at_ms) for m in uow.segments.history("u:2")] == [
                (10, 20),
                (30, None),
            ]

    def test_entries_and_exits_per_bucket(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.segments.enter("s", ["u:1", "u:2", "u:3"], 1_005)
            uow.segments.enter("other", ["u:1"], 1_005)
        with engine.storage.write() as uow:
            uow.segments.exit("s", ["u:1"], 1_010)
            uow.segments.exit("s", ["u:2"], 3_000)
            uow.segments.enter("s", ["u:1"], 3_999)
        with engine.storage.read() as uow:
            assert uow.segments.membership_changes("s", 1_000) == [
                (1_000, 3, 1),
                (3_000, 1, 1),
            ]
            assert uow.segments.membership_changes("missing", 1_000) == []
            changes = uow.segments.membership_changes("s", 10)
        # the running sum of entries less exits ends at the members of now
        assert sum(entered - exited for _, entered, exited in changes) == 2

    def test_what_members_did(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.events.append(
                [
                    event("e1", "u:1", 100, item_id="i1"),
                    event("e2", "u:2", 100, item_id="i1"),
                    event("e3", "u:2", 5, item_id="i2"),  # too old
                    event("e4", "u:1", 100, item_id="i3", type="impression"),
                ]
            )
            uow.segments.enter("s", ["u:1", "u:2"], 1)
            uow.segments.enter("t", ["u:2"], 1)
            uow.segments.exit("t", ["u:2"], 2)
        with engine.storage.read() as uow:
            assert uow.segments.segment_item_counts(50, ["impression"]) == [("s", "i1", 2)]

    def test_a_rule_evaluated_for_everyone(self, engine: Engine, clock: FakeClock) -> None:
        engine.ingest.ingest(
            [
                {"type": "purchase", "user_id": "1", "item_id": "i1", "value": 20.0},
                {"type": "purchase", "user_id": "2", "item_id": "i1", "value": 5.0},
                {"type": "view", "user_id": "3", "item_id": "i1"},
                {"type": "purchase", "user_id": "4", "item_id": "i2", "value": 50.0},
            ]
        )
        rule = parse_rule("profile.monetary > 10")
        now = clock.now_ms()
        with engine.storage.read() as uow:
            assert uow.segments.matching(rule, now) == {"u:1", "u:4"}
            assert uow.segments.preview(rule, now, 1) == (2, ["u:1"])
            assert uow.segments.preview(parse_rule("did(view) within 1d"), now, 5) == (1, ["u:3"])


def prediction(name: str) -> PredictionRecord:
    return PredictionRecord(name, "purchase", 30, "buys soon", 1, None, None)


class TestPredictionStore:
    def test_definitions_and_training(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.predictions.insert(prediction("b"))
            uow.predictions.insert(prediction("a"))
            uow.predictions.record_training("b", 7, {"auc": 0.75, "bins": [1, 2]})
        with engine.storage.read() as uow:
            assert [d.name for d in uow.predictions.definitions()] == ["a", "b"]
            trained = uow.predictions.get("b")
            assert trained is not None
            assert (trained.trained_at_ms, trained.evaluation) == (7, {"auc": 0.75, "bins": [1, 2]})
            assert uow.predictions.get("missing") is None

    def test_scores_replace_read_forget_delete(self, engine: Engine) -> None:
        keys = [f"u:{i:04d}" for i in range(2500)]  # beyond one write chunk and one IN list
        with engine.storage.write() as uow:
            uow.predictions.insert(prediction("buy"))
            uow.predictions.insert(prediction("churn"))
            uow.predictions.replace_scores("buy", ["u:x", "u:y"], [0.1, 0.2], 1)
            uow.predictions.replace_scores("buy", keys, [i / 2500 for i in range(2500)], 2)
            uow.predictions.replace_scores("churn", ["u:0001", "u:0002"], [0.5, 0.25], 2)
        with engine.storage.read() as uow:
            assert uow.predictions.scores_of("u:x") == {}  # replaced: gone
            assert uow.predictions.scores_of("u:0001") == {"buy": 0.0004, "churn": 0.5}
            assert len(uow.predictions.scores_by_profile(keys)) == 2500
            assert uow.predictions.scores_by_profile(["u:0002", "u:x"]) == {
                "u:0002": {"buy": 0.0008, "churn": 0.25}
            }
            everyone = list(uow.predictions.all_scores())
            assert [key for key, _ in everyone] == keys
            assert everyone[1] == ("u:0001", {"buy": 0.0004, "churn": 0.5})
        with engine.storage.write() as uow:
            uow.predictions.forget(keys[:2000])
            uow.predictions.delete("churn")
        with engine.storage.read() as uow:
            assert uow.predictions.scores_of("u:0001") == {}
            assert uow.predictions.scores_of("u:2400") == {"buy": 0.96}
            assert uow.predictions.get("churn") is None
            assert len(list(uow.predictions.all_scores())) == 500
