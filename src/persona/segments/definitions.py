"""What makes a set of segment definitions valid: names, references to other segments, and
the order in which segments that refer to each other are evaluated."""

from __future__ import annotations

from collections.abc import Mapping
from graphlib import CycleError, TopologicalSorter

from persona.errors import InvalidRequestError, InvalidRuleError
from persona.rules import SEGMENT_NAME, Rule, SegmentRef, parse_rule, references, walk
from persona.storage.records import SegmentRecord

RULE = "rule"


def dependency_order(rules: Mapping[str, Rule]) -> list[str]:
    """Names ordered so that every segment comes after the segments it refers to."""
    graph = {name: references(rule) & rules.keys() for name, rule in rules.items()}
    return list(TopologicalSorter(graph).static_order())


def rules_of(definitions: Mapping[str, SegmentRecord]) -> dict[str, Rule]:
    return {
        name: parse_rule(d.rule)
        for name, d in definitions.items()
        if d.kind == RULE and d.rule is not None
    }


def check_name(name: str) -> None:
    if not SEGMENT_NAME.fullmatch(name):
        raise InvalidRequestError(
            f"{name!r} is not a segment name: 1 to 64 of a-z, 0-9, _ and -, starting with a"
            " letter or digit"
        )


def check_references(
    name: str | None, rule: Rule, definitions: Mapping[str, SegmentRecord]
) -> None:
    """Refuse references to unknown segments, and (for a saved segment) cycles."""
    for node in walk(rule):
        if isinstance(node, SegmentRef) and node.name not in definitions and node.name != name:
            where = node.position
            raise InvalidRuleError(
                f"unknown segment {node.name!r} (line {where.line}, column {where.column})",
                extra={"line": where.line, "column": where.column},
            )
    if name is None:
        return
    rules = rules_of(definitions)
    rules[name] = rule
    try:
        dependency_order(rules)
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1]) if len(exc.args) > 1 else name
        raise InvalidRuleError(f"segments would refer to each other in a cycle: {cycle}") from None


def with_dependents(name: str, definitions: Mapping[str, SegmentRecord]) -> list[str]:
    """``name`` and every segment that refers to it, directly or not."""
    rules = rules_of(definitions)
    found = {name}
    changed = True
    while changed:
        changed = False
        for other, rule in rules.items():
            if other not in found and references(rule) & found:
                found.add(other)
                changed = True
    return sorted(found)
