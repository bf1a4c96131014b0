"""The storage contract of the decide domain and of the audit log, on every backend."""

from __future__ import annotations

import pytest

from persona.engine import Engine
from persona.storage.records import DecisionRecord, OutcomeRecord


def decision(decision_id: str, unit: str = "u:1", **fields: object) -> DecisionRecord:
    values: dict[str, object] = {
        "decision_id": decision_id,
        "placement": "hero",
        "version": 1,
        "variant": "a",
        "profile_key": unit,
        "context": {"device": "mobile", "nested": [1, {"x": 2.5}]},
        "policy": "ab",
        "cohort": "arm",
        "holdout": False,
        "bucket": "*",
        "reason": "split",
        "decided_at_ms": 100,
    }
    values.update(fields)
    return DecisionRecord(**values)  # type: ignore[arg-type]


def outcome(event_id: str, decision_id: str, kind: str, **fields: object) -> OutcomeRecord:
    values: dict[str, object] = {
        "event_id": event_id,
        "decision_id": decision_id,
        "placement": "hero",
        "version": 1,
        "variant": "a",
        "cohort": "arm",
        "profile_key": "u:1",
        "kind": kind,
        "value": None,
        "occurred_at_ms": 200,
    }
    values.update(fields)
    return OutcomeRecord(**values)  # type: ignore[arg-type]


class TestDecisionStore:
    def test_placements_versions_and_status(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            uow.decisions.create("hero", "ab", {"variants": [{"id": "a"}]}, 10)
            uow.decisions.create("side", "fixed", {"k": 1}, 11)
            uow.decisions.add_version("hero", 2, "thompson", {"variants": [{"id": "b"}]}, 20)
            uow.decisions.set_status("side", "paused", 30)
        with engine.storage.read() as uow:
            found = uow.decisions.placements()
            assert list(found) == ["hero", "side"]
            hero = found["hero"]
            assert (hero.version, hero.policy, hero.status) == (2, "thompson", "active")
            assert (hero.created_at_ms, hero.updated_at_ms, hero.version_created_at_ms) == (
                10,
                20,
                20,
            )
            assert hero.config == {"variants": [{"id": "b"}]}
            assert (found["side"].status, found["side"].updated_at_ms) == ("paused", 30)
            assert list(uow.decisions.placements(["side", "missing"])) == ["side"]
            assert [v.version for v in uow.decisions.versions("hero")] == [1, 2]
            first = uow.decisions.version("hero", 1)
            assert first is not None and (first.policy, first.created_at_ms) == ("ab", 10)
            assert uow.decisions.version("hero", 3) is None

    def test_the_log_in_its_own_transaction_and_inside_one(self, engine: Engine) -> None:
        logged = [decision("d1"), decision("d2", context=None, variant=None, holdout=True)]
        engine.storage.log_decisions(logged)
        engine.storage.log_decisions([])
        with engine.storage.write() as uow:
            uow.decisions.log([decision("d3")])
        with engine.storage.read() as uow:
            found = uow.decisions.decisions(["d1", "d2", "d3", "missing"])
        assert found == {"d1": logged[0], "d2": logged[1], "d3": decision("d3")}

    def test_a_profiles_latest_decisions_newest_first(self, engine: Engine) -> None:
        engine.storage.log_decisions(
            [
                decision("d1", "u:1", decided_at_ms=10),
                decision("d2", "u:2", decided_at_ms=20),
                decision("d3", "u:1", decided_at_ms=30),
                decision("d4", "u:1", decided_at_ms=20),
            ]
        )
        with engine.storage.read() as uow:
            latest = uow.decisions.for_profile("u:1", 2)
            assert uow.decisions.for_profile("u:9", 5) == []
        assert [d.decision_id for d in latest] == ["d3", "d4"]
        assert latest[0] == decision("d3", "u:1", decided_at_ms=30)

    def test_many_decisions_beyond_one_parameter_chunk(self, engine: Engine) -> None:
        engine.storage.log_decisions([decision(f"d{i}") for i in range(2000)])
        with engine.storage.read() as uow:
            assert len(uow.decisions.decisions([f"d{i}" for i in range(2000)])) == 2000

    def test_exposures_and_outcomes_per_unit_and_arm(self, engine: Engine) -> None:
        engine.storage.log_decisions(
            [
                decision("d1", "u:1", decided_at_ms=50),
                decision("d2", "u:1", decided_at_ms=40),
                decision("d3", "u:2", variant="b"),
                decision("d4", "u:3", cohort="holdout", variant=None),
                decision("d5", "u:4", cohort="exploit"),
                decision("d6", "u:5", version=2),
            ]
        )
        with engine.storage.write() as uow:
            uow.decisions.add_outcomes(
                [
                    outcome("e1", "d1", "impression"),
                    outcome("e2", "d2", "impression"),
                    outcome("e3", "d1", "conversion", value=5.0),
                    outcome("e4", "d2", "conversion", value=2.5),
                    outcome("e5", "d3", "click", variant="b", profile_key="u:2"),
                ]
            )
        with engine.storage.write() as uow:  # an event id counts once
            uow.decisions.add_outcomes([outcome("e3", "d1", "conversion", value=99.0)])
        with engine.storage.read() as uow:
            exposures = uow.decisions.exposures("hero", 1, ["arm", "holdout"])
            totals = uow.decisions.outcome_totals("hero", 1, ["arm", "holdout"])
        assert sorted(exposures, key=str) == sorted(
            [
                ("arm", "a", "u:1", 2, 40),
                ("arm", "b", "u:2", 1, 100),
                ("holdout", None, "u:3", 1, 100),
            ],
            key=str,
        )
        assert sorted(totals, key=str) == sorted(
            [
                ("arm", "a", "u:1", "conversion", 2, 7.5),
                ("arm", "a", "u:1", "impression", 2, None),
                ("arm", "b", "u:2", "click", 1, None),
            ],
            key=str,
        )

    def test_rewards_apply_once_and_counts_add_up(self, engine: Engine) -> None:
        arm = ("hero", 1, "*", "a")
        with engine.storage.write() as uow:
            uow.decisions.apply_rewards([("e1", "d1", "click")], {arm: (1.0, 0.0)}, 10)
        with engine.storage.write() as uow:
            uow.decisions.apply_rewards(
                [("e2", "d2", "impression")],
                {arm: (0.0, 1.0), ("hero", 1, "mobile", "b"): (2.0, 3.0)},
                20,
            )
        with engine.storage.read() as uow:
            assert uow.decisions.arm_counts("hero", 1, "*") == {"a": (1.0, 1.0)}
            assert uow.decisions.arm_counts("hero", 2, "*") == {}
            assert uow.decisions.all_arm_counts("hero", 1) == {
                "*": {"a": [1.0, 1.0]},
                "mobile": {"b": [2.0, 3.0]},
            }
            seen, kinds = uow.decisions.applied_rewards(["e1", "e2", "e9"], ["d1", "d2", "d9"])
        assert seen == {"e1", "e2"}
        assert kinds == {"d1": {"click"}, "d2": {"impression"}}


class TestAuditTrail:
    def test_append_and_page_in_order(self, engine: Engine) -> None:
        with engine.storage.write() as uow:
            for i in range(5):
                uow.audit.append(i, "k1", "segment.create", f"segment:s{i}", {"i": i})
        with engine.storage.read() as uow:
            first = uow.audit.page(after_id=0, limit=3)
            rest = uow.audit.page(after_id=first[-1].audit_id, limit=10)
        assert [e.target for e in first + rest] == [f"segment:s{i}" for i in range(5)]
        assert (rest[-1].at_ms, rest[-1].actor, rest[-1].details) == (4, "k1", {"i": 4})

    def test_the_database_refuses_to_change_an_entry(self, engine: Engine) -> None:
        from sqlalchemy import update

        from persona.storage.tables.privacy import audit_log

        with engine.storage.write() as uow:
            uow.audit.append(1, "k1", "key.create", "key:k2", {})

        def rewrite() -> None:
            with engine.storage.engine.begin() as connection:
                connection.execute(update(audit_log).values(actor="someone else"))

        with pytest.raises(Exception, match=r"(?i)audit"):
            rewrite()
