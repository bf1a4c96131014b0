"""The real-time evaluator: one rule, one profile, its recent events, at a given time.

A rule is compiled once into nested closures (``compile_rule``), so evaluating 50 rules for a
profile is 50 calls over data already in memory. What each quantity means is shared with the
batch evaluator (``storage.sql.segment_rules``); the agreement test in ``tests/segments`` holds
the two to the same answers:

- a comparison with a missing value, or with a value of another JSON type than the literal,
  is false (and ``not`` of it is true);
- numbers compare as floating point; ``profile.*_days`` is ``(now - t) / 86,400,000``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from persona.clock import DAY_MS
from persona.rules import (
    And,
    Comparison,
    Count,
    Did,
    EventQuery,
    Field,
    Membership,
    Not,
    Operator,
    Or,
    Rule,
    Scalar,
    SegmentRef,
)
from persona.storage.records import RecentEvent

MICROS = 1_000_000.0


@dataclass(slots=True)
class ProfileFacts:
    """What the evaluator reads about one person.

    ``events`` must hold at least every event the rules' windows can see (the service loads
    those newer than the longest window); ``segments`` holds the person's current memberships;
    ``scores`` the person's rows of ``profile_scores`` (``profile.scores.<name>``).
    """

    profile_key: str
    state: Mapping[str, Any]
    traits: Mapping[str, Any] | None
    events: Sequence[RecentEvent] = ()
    segments: set[str] = field(default_factory=set)
    item_categories: Mapping[str, Sequence[str]] = field(default_factory=dict)
    scores: Mapping[str, float] = field(default_factory=dict)  # prediction name -> probability
    _by_type: dict[str, list[RecentEvent]] | None = None

    def events_of(self, event_type: str) -> list[RecentEvent]:
        if self._by_type is None:
            self._by_type = {}
            for event in self.events:
                self._by_type.setdefault(event.type, []).append(event)
        return self._by_type.get(event_type, [])


Predicate = Callable[[ProfileFacts, int], bool]
Quantity = Callable[[ProfileFacts, int], Any]


def compile_rule(rule: Rule) -> Predicate:
    """A function ``(facts, now_ms) -> bool`` that decides the rule for one profile.

    Closures are specialised by shape (two operands, numeric literal, ...) because real-time
    evaluation runs every rule for every touched profile inside the ingest transaction.
    """
    match rule:
        case Did(query=query):
            return _exists(query)
        case Comparison(left=Count(query=query), op=op, value=value):
            counter, compare = _counter(query), _OPERATORS[op]
            return lambda facts, now: compare(counter(facts, now), value)
        case Comparison(left=Field() as target, op=op, value=value):
            quantity, test = _field(target), _comparison(op, value)
            return lambda facts, now: test(quantity(facts, now))
        case Membership(target=target, values=values):
            quantity, test = _field(target), _membership(values)
            return lambda facts, now: test(quantity(facts, now))
        case SegmentRef(name=name):
            return lambda facts, _now: name in facts.segments
        case Not(operand=operand):
            inner = compile_rule(operand)
            return lambda facts, now: not inner(facts, now)
        case And(operands=operands):
            return _all([compile_rule(o) for o in operands])
        case Or(operands=operands):
            return _any([compile_rule(o) for o in operands])
    raise TypeError(f"not a rule: {rule!r}")  # pragma: no cover


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda facts, now: first(facts, now) and second(facts, now)

    def every(facts: ProfileFacts, now: int) -> bool:
        for part in parts:  # noqa: SIM110 - a plain loop spares a generator per call
            if not part(facts, now):
                return False
        return True

    return every


def _any(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda facts, now: first(facts, now) or second(facts, now)

    def some(facts: ProfileFacts, now: int) -> bool:
        for part in parts:  # noqa: SIM110 - a plain loop spares a generator per call
            if part(facts, now):
                return True
        return False

    return some


def evaluate(rule: Rule, facts: ProfileFacts, now_ms: int) -> bool:
    """Decide ``rule`` for one profile (compiles on every call; keep ``compile_rule`` for loops)."""
    return compile_rule(rule)(facts, now_ms)


# -- events ------------------------------------------------------------------------------------
def _counter(query: EventQuery) -> Callable[[ProfileFacts, int], int]:
    event_type, item, category, window = (
        query.event_type,
        query.item,
        query.category,
        query.window_ms,
    )

    def count(facts: ProfileFacts, now: int) -> int:
        cutoff = None if window is None else now - window
        total = 0
        for event in facts.events_of(event_type):
            if cutoff is not None and event.occurred_at_ms < cutoff:
                continue
            if item is not None and event.item_id != item:
                continue
            if category is not None and (
                event.item_id is None
                or category not in facts.item_categories.get(event.item_id, ())
            ):
                continue
            total += 1
        return total

    return count


def _exists(query: EventQuery) -> Predicate:
    event_type, window = query.event_type, query.window_ms
    if query.item is not None or query.category is not None:
        counter = _counter(query)
        return lambda facts, now: counter(facts, now) > 0
    if window is None:
        return lambda facts, _now: bool(facts.events_of(event_type))

    def recent(facts: ProfileFacts, now: int) -> bool:
        cutoff = now - window
        return any(event.occurred_at_ms >= cutoff for event in facts.events_of(event_type))

    return recent


# -- fields ------------------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _days_since(key: str) -> Quantity:
    def days(facts: ProfileFacts, now: int) -> float | None:
        at = _number(facts.state.get(key))
        return None if at is None else (now - at) / DAY_MS

    return days


def _path(document: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)
    return document


def _field(target: Field) -> Quantity:
    path = target.path
    if target.root == "traits":
        return lambda facts, _now: _path(facts.traits, path)
    if target.root == "context":
        return lambda facts, _now: _path(facts.state.get("last_context"), path)
    head = path[0]
    if head == "event_count":
        return lambda facts, _now: _number(facts.state.get("event_count"))
    if head == "frequency":
        return lambda facts, _now: _number(facts.state.get("purchases"))
    if head == "monetary":

        def monetary(facts: ProfileFacts, _now: int) -> float | None:
            micros = _number(facts.state.get("revenue_micros"))
            return None if micros is None else micros / MICROS

        return monetary
    if head == "recency_days":
        return _days_since("last_purchase_ms")
    if head == "last_seen_days":
        return _days_since("last_seen_ms")
    if head == "first_seen_days":
        return _days_since("first_seen_ms")
    if head == "sessions":

        def sessions(facts: ProfileFacts, _now: int) -> int | None:
            value = facts.state.get("sessions")
            return len(value) if isinstance(value, list) else None

        return sessions
    key = path[1]
    if head == "count":
        return lambda facts, _now: _number_or_zero(_path(facts.state, ("counts", key)))
    if head == "affinity":
        return lambda facts, _now: _number_or_zero(_path(facts.state, ("affinity", key)))
    if head == "scores":
        return lambda facts, _now: _number(facts.scores.get(key))
    raise ValueError(f"unknown profile field {target.to_text()}")  # parse_rule rejects these


def _number_or_zero(value: Any) -> float | None:
    return 0.0 if value is None else _number(value)


# -- comparisons -------------------------------------------------------------------------------
# JSON-decoded values are exact builtins, so a class test tells numbers from booleans (bool is
# a subclass of int) faster than isinstance.
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _comparison(op: Operator, literal: Scalar) -> Callable[[Any], bool]:
    compare = _OPERATORS[op]
    if isinstance(literal, bool):
        return lambda value: value.__class__ is bool and compare(value, literal)
    if isinstance(literal, str):
        return lambda value: value.__class__ is str and compare(value, literal)
    return lambda value: (
        (value.__class__ is float or value.__class__ is int) and compare(value, literal)
    )


def _membership(values: Sequence[Scalar]) -> Callable[[Any], bool]:
    wanted = frozenset(values)
    if isinstance(values[0], str):
        return lambda value: value.__class__ is str and value in wanted
    return lambda value: (value.__class__ is float or value.__class__ is int) and value in wanted
