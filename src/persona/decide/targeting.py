"""Who may see a variant: segment membership and request context, checked per decision.

The facts of one request (the person's current segments and the resolved context) are built
once and every variant's ``Targeting`` is a plain predicate over them, so the same check serves
every policy and is testable without storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from persona.clock import utc
from persona.decide.bandits import DEFAULT_BUCKET
from persona.decide.schema import DecisionContext, Targeting, ThompsonConfig


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What targeting reads: segments the person is in now, and the context with defaults."""

    segments: frozenset[str]
    device: str | None
    country: str | None
    hour: int
    weekday: int

    @classmethod
    def of(cls, context: DecisionContext, segments: frozenset[str], now_ms: int) -> RequestFacts:
        moment = utc(now_ms)
        return cls(
            segments=segments,
            device=context.device,
            country=context.country,
            hour=context.hour if context.hour is not None else moment.hour,
            weekday=context.weekday if context.weekday is not None else moment.weekday(),
        )


def matches(targeting: Targeting, facts: RequestFacts) -> bool:
    """True when every condition of ``targeting`` holds (an empty list is no condition)."""
    if targeting.segments and not facts.segments.issuperset(targeting.segments):
        return False
    if targeting.not_segments and not facts.segments.isdisjoint(targeting.not_segments):
        return False
    if targeting.device and facts.device not in targeting.device:
        return False
    if targeting.country and facts.country not in targeting.country:
        return False
    if targeting.hours and facts.hour not in targeting.hours:
        return False
    return not (targeting.weekdays and facts.weekday not in targeting.weekdays)


def bucket_of(config: ThompsonConfig, facts: RequestFacts) -> str:
    """The bandit bucket of a request: a context value, a segment, or the single default."""
    by = config.bucket_by
    if by is None:
        return DEFAULT_BUCKET
    if by == "segment":
        for segment in config.bucket_segments:
            if segment in facts.segments:
                return f"segment:{segment}"
        return DEFAULT_BUCKET
    value = getattr(facts, by)
    return DEFAULT_BUCKET if value is None else f"{by}:{str(value)[:64]}"
