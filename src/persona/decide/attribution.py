"""Attribution: impressions, clicks and conversions that carry a ``decision_id`` become the
decision's outcomes, and the rewards of bandits.

It runs inside the ingest write transaction (an ingest listener). Ingest has already dropped
events it stored before, and the outcome and reward tables are keyed by event id on top of it,
so replaying an event never counts an outcome or a reward twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from persona.clock import MINUTE_MS
from persona.decide.placements import (
    ARM,
    CLICK,
    CONVERSION,
    IMPRESSION,
    PlacementConfigs,
)
from persona.decide.settings import DecisionSettings
from persona.ingest.service import AppliedBatch
from persona.storage.protocols import DecisionStore, UnitOfWork
from persona.storage.records import DecisionRecord, OutcomeRecord

TRIAL, SUCCESS = "trial", "success"  # what a bandit reward recorded
CLOCK_SKEW_MS = 5 * MINUTE_MS  # an outcome may carry a client time this much before its decision


class Attribution:
    def __init__(
        self, settings: DecisionSettings, purchase_types: Iterable[str], configs: PlacementConfigs
    ) -> None:
        self.settings = settings
        self.purchase_types = frozenset(purchase_types)
        self._configs = configs

    def outcome_kind(self, event_type: str) -> str | None:
        if event_type == IMPRESSION:
            return IMPRESSION
        if event_type == CLICK:
            return CLICK
        if event_type in self.purchase_types:
            return CONVERSION
        return None

    def on_events(self, uow: UnitOfWork, applied: AppliedBatch) -> None:
        """Ingest listener: attribute outcomes carrying a ``decision_id`` and reward bandits.

        An outcome counts when its event time falls between the decision (less a small clock
        skew allowance) and the end of the attribution window after it.
        """
        relevant = [
            (e.decision_id, e)
            for e in applied.events
            if e.decision_id and self.outcome_kind(e.type) is not None
        ]
        if not relevant:
            return
        store = uow.decisions
        found = store.decisions({decision_id for decision_id, _ in relevant})
        window = self.settings.attribution_window_ms
        outcomes: list[OutcomeRecord] = []
        for decision_id, event in relevant:
            decision = found.get(decision_id)
            if decision is None or decision.variant is None:
                continue
            elapsed = event.occurred_at_ms - decision.decided_at_ms
            if not -CLOCK_SKEW_MS <= elapsed <= window:
                continue
            kind = self.outcome_kind(event.type)
            assert kind is not None
            outcomes.append(
                OutcomeRecord(
                    event.event_id,
                    decision.decision_id,
                    decision.placement,
                    decision.version,
                    decision.variant,
                    decision.cohort,
                    decision.profile_key,
                    kind,
                    event.value,
                    event.occurred_at_ms,
                )
            )
        store.add_outcomes(outcomes)
        self._reward(store, outcomes, found, applied.now_ms)

    def _reward(
        self,
        store: DecisionStore,
        outcomes: Sequence[OutcomeRecord],
        found: Mapping[str, DecisionRecord],
        now_ms: int,
    ) -> None:
        """Move bandit counts once per event id and at most one trial and success per decision.

        A decision's first impression counts as a failed trial; its first rewarded event turns
        that into a success (or adds a success when no impression was seen). Replays and second
        clicks change nothing.
        """
        bandit = [
            o for o in outcomes if found[o.decision_id].policy == "thompson" and o.cohort == ARM
        ]
        if not bandit:
            return
        seen, applied = store.applied_rewards(
            [o.event_id for o in bandit], {o.decision_id for o in bandit}
        )
        rewards: list[tuple[str, str, str]] = []
        deltas: dict[tuple[str, int, str, str], tuple[float, float]] = {}
        for outcome in bandit:
            if outcome.event_id in seen or outcome.variant is None:
                continue
            decision = found[outcome.decision_id]
            config = self._configs.stored(store, decision.placement, decision.version)
            if config is None or config.thompson is None:
                continue
            kinds = applied.setdefault(decision.decision_id, set())
            delta: tuple[float, float] | None = None
            if outcome.kind == IMPRESSION and not kinds:
                delta, kind = (0.0, 1.0), TRIAL
            elif outcome.kind == config.thompson.reward and SUCCESS not in kinds:
                delta, kind = (1.0, -1.0 if TRIAL in kinds else 0.0), SUCCESS
            if delta is None:
                continue
            kinds.add(kind)
            seen.add(outcome.event_id)
            rewards.append((outcome.event_id, decision.decision_id, kind))
            key = (decision.placement, decision.version, decision.bucket, outcome.variant)
            s, f = deltas.get(key, (0.0, 0.0))
            deltas[key] = (s + delta[0], f + delta[1])
        store.apply_rewards(rewards, deltas, now_ms)
