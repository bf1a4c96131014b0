"""The segment rule language: grammar, syntax tree, parser and checks.

A rule is parsed once (lark, LALR, with positions) into the small frozen tree below; both
evaluators (``segments.evaluate`` for one profile in real time, and the store's batch
evaluator, ``storage.sql.segment_rules``, for everyone at once) read that tree and nothing else:
it is the vocabulary the segments domain and the storage backends share, so it depends on
neither. Mistakes raise ``RuleSyntaxError`` with the line, the column
and a caret under the place of the mistake. ``docs/segments.md`` documents the language.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, TypeAlias

from lark import Lark, Token, Transformer_NonRecursive, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from persona.clock import DAY_MS, HOUR_MS, MINUTE_MS
from persona.errors import RuleSyntaxError

GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> negation
         | atom

?atom: "(" or_expr ")"
     | did
     | comparison
     | membership
     | segment_ref

did: _DID "(" event_spec ")" window?
count: _COUNT "(" event_spec ")" window?
event_spec: event_type ("," event_filter)*
event_type: NAME | STRING
event_filter: NAME COMPARATOR STRING
window: _WITHIN DURATION

comparison: (count | field) COMPARATOR literal
membership: field _IN "[" literal ("," literal)* "]"
segment_ref: _SEGMENT "(" STRING ")"

field: NAME ("." NAME | "[" STRING "]")+

?literal: NUMBER -> number
        | STRING -> string
        | _TRUE -> true
        | _FALSE -> false

_OR: "or"
_AND: "and"
_NOT: "not"
_DID: "did"
_COUNT: "count"
_WITHIN: "within"
_IN: "in"
_SEGMENT: "segment"
_TRUE: "true"
_FALSE: "false"
COMPARATOR: "<=" | ">=" | "!=" | "==" | "=" | "<" | ">"
DURATION: /[0-9]+[dhm]/
NUMBER: /-?[0-9]+(\.[0-9]+)?/
STRING: /"(?:[^"\\\n]|\\.)*"/
NAME: /[A-Za-z_][A-Za-z0-9_]*/

%import common.WS
%ignore WS
"""

MAX_RULE_CHARS = 4000
MAX_DEPTH = 32
# did() and count() read the event log: each is a scan of the person's events per person, and
# 300 of them took seconds on MovieLens. Twenty is more than any real audience needs.
MAX_EVENT_TERMS = 20
MAX_WINDOW_MS = 3650 * DAY_MS
UNIT_MS = {"d": DAY_MS, "h": HOUR_MS, "m": MINUTE_MS}

Scalar: TypeAlias = bool | int | float | str
Operator = Literal["=", "!=", "<", "<=", ">", ">="]
ORDERING: frozenset[str] = frozenset({"<", "<=", ">", ">="})

# profile.<name>: the numeric quantities both evaluators compute (see docs/segments.md).
PROFILE_NUMBERS: frozenset[str] = frozenset(
    {
        "event_count",
        "frequency",
        "monetary",
        "recency_days",
        "last_seen_days",
        "first_seen_days",
        "sessions",
    }
)
# profile.<map>.<key>: counts per event type, category affinities, model scores.
PROFILE_MAPS: frozenset[str] = frozenset({"count", "affinity", "scores"})
ROOTS: frozenset[str] = frozenset({"profile", "traits", "context"})
SEGMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int


NOWHERE = Position(1, 1)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Events of one type, optionally of one item or of one category, within a window."""

    event_type: str
    item: str | None = None
    category: str | None = None
    window_ms: int | None = None  # None: all time

    def to_text(self, function: str) -> str:
        parts = [json.dumps(self.event_type) if not _is_name(self.event_type) else self.event_type]
        if self.item is not None:
            parts.append(f"item = {json.dumps(self.item)}")
        if self.category is not None:
            parts.append(f"category = {json.dumps(self.category)}")
        text = f"{function}({', '.join(parts)})"
        return text if self.window_ms is None else f"{text} within {_window_text(self.window_ms)}"


@dataclass(frozen=True, slots=True)
class Field:
    """``profile.<name>``, ``traits.<path>`` or ``context.<path>`` (the last event context)."""

    root: str
    path: tuple[str, ...]
    position: Position = field(default=NOWHERE, compare=False)

    def to_text(self) -> str:
        keys = "".join(
            f".{k}" if _IDENTIFIER.fullmatch(k) else f"[{json.dumps(k)}]" for k in self.path
        )
        return self.root + keys


@dataclass(frozen=True, slots=True)
class Did:
    query: EventQuery
    position: Position = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Count:
    query: EventQuery
    position: Position = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Comparison:
    left: Field | Count
    op: Operator
    value: Scalar
    position: Position = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Membership:
    """``field in [v1, v2, ...]``."""

    target: Field
    values: tuple[Scalar, ...]
    position: Position = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class SegmentRef:
    name: str
    position: Position = field(default=NOWHERE, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Rule


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Rule, ...]


Rule: TypeAlias = Did | Comparison | Membership | SegmentRef | Not | And | Or


def to_text(rule: Rule) -> str:
    """The rule in the language, fully parenthesised where precedence needs it."""
    match rule:
        case Did(query=query):
            return query.to_text("did")
        case Comparison(left=left, op=op, value=value):
            operand = left.query.to_text("count") if isinstance(left, Count) else left.to_text()
            return f"{operand} {op} {_literal_text(value)}"
        case Membership(target=target, values=values):
            return f"{target.to_text()} in [{', '.join(_literal_text(v) for v in values)}]"
        case SegmentRef(name=name):
            return f"segment({json.dumps(name)})"
        case Not(operand=operand):
            return f"not {_grouped(operand)}"
        case And(operands=operands):
            return " and ".join(_grouped(o) for o in operands)
        case Or(operands=operands):
            return " or ".join(_grouped(o) for o in operands)


def _grouped(rule: Rule) -> str:
    text = to_text(rule)
    return f"({text})" if isinstance(rule, And | Or) else text


def _literal_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _window_text(ms: int) -> str:
    for unit in ("d", "h", "m"):
        if ms % UNIT_MS[unit] == 0:
            return f"{ms // UNIT_MS[unit]}{unit}"
    raise ValueError(f"a window of {ms} ms is not a whole number of minutes")


def _is_name(text: str) -> bool:
    return _IDENTIFIER.fullmatch(text) is not None and text not in _KEYWORDS


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_KEYWORDS = frozenset(
    {"or", "and", "not", "did", "count", "within", "in", "segment", "true", "false"}
)


# -- analysis ----------------------------------------------------------------------------------
def walk(rule: Rule) -> Iterator[Rule]:
    """Every node of the tree, parents before children (iteratively: no recursion limit)."""
    stack: list[Rule] = [rule]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, Not):
            stack.append(node.operand)
        elif isinstance(node, And | Or):
            stack.extend(reversed(node.operands))


def event_queries(rule: Rule) -> list[EventQuery]:
    found: list[EventQuery] = []
    for node in walk(rule):
        if isinstance(node, Did):
            found.append(node.query)
        elif isinstance(node, Comparison) and isinstance(node.left, Count):
            found.append(node.left.query)
    return found


def references(rule: Rule) -> set[str]:
    """Names of the segments the rule refers to."""
    return {node.name for node in walk(rule) if isinstance(node, SegmentRef)}


# -- parsing -------------------------------------------------------------------------------------


@cache
def _parser() -> Lark:
    """The grammar compiled when first needed: a twentieth of a second of every command's
    start."""
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


_TERMINAL_NAMES = {
    "NAME": "a name",
    "STRING": 'a "string"',
    "NUMBER": "a number",
    "DURATION": "a duration such as 7d, 12h or 30m",
    "COMPARATOR": "a comparison (=, !=, <, <=, >, >=)",
    "$END": "the end of the rule",
}


class _SemanticError(Exception):
    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


def _position(meta: Any) -> Position:
    return Position(getattr(meta, "line", 1), getattr(meta, "column", 1))


def _token_position(token: Token) -> Position:
    return Position(token.line or 1, token.column or 1)


def _string(token: Token) -> str:
    try:
        value = json.loads(str(token))
    except ValueError:
        raise _SemanticError("invalid escape in string", _token_position(token)) from None
    if not isinstance(value, str):  # pragma: no cover - the STRING terminal admits only strings
        raise _SemanticError("expected a string", _token_position(token))
    return value


def _operator(token: Token) -> Operator:
    text = str(token)
    return "=" if text == "==" else text  # type: ignore[return-value]


class _ToTree(Transformer_NonRecursive[Token, Any]):
    """Lark's parse tree to our frozen nodes, checking what the grammar cannot."""

    def or_expr(self, children: list[Rule]) -> Rule:
        return Or(tuple(children))

    def and_expr(self, children: list[Rule]) -> Rule:
        return And(tuple(children))

    def negation(self, children: list[Rule]) -> Rule:
        return Not(children[0])

    def number(self, children: list[Token]) -> Scalar:
        token = children[0]
        text = str(token)
        if not math.isfinite(float(text)):  # both evaluators compare numbers as doubles
            raise _SemanticError(
                "a number in a rule must be within ±1.7e308", _token_position(token)
            )
        return float(text) if "." in text else int(text)

    def string(self, children: list[Token]) -> Scalar:
        return _string(children[0])

    def true(self, _: list[Token]) -> Scalar:
        return True

    def false(self, _: list[Token]) -> Scalar:
        return False

    def window(self, children: list[Token]) -> int:
        token = children[0]
        text = str(token)
        ms = int(text[:-1]) * UNIT_MS[text[-1]]
        if ms <= 0 or ms > MAX_WINDOW_MS:
            raise _SemanticError(
                "a window must be longer than 0 and at most 3650d", _token_position(token)
            )
        return ms

    def event_type(self, children: list[Token]) -> str:
        token = children[0]
        name = _string(token) if token.type == "STRING" else str(token)
        if not name or len(name) > 64:
            raise _SemanticError("an event type has 1 to 64 characters", _token_position(token))
        return name

    def event_filter(self, children: list[Token]) -> tuple[str, str, Position]:
        name, op, value = children
        if str(name) not in ("item", "category"):
            raise _SemanticError(
                f'unknown event filter {str(name)!r}; use item = "…" or category = "…"',
                _token_position(name),
            )
        if _operator(op) != "=":
            raise _SemanticError("an event filter compares with =", _token_position(op))
        return str(name), _string(value), _token_position(name)

    def event_spec(self, children: list[Any]) -> EventQuery:
        event_type, *filters = children
        chosen: dict[str, str] = {}
        for name, value, position in filters:
            if name in chosen:
                raise _SemanticError(f"the {name} filter is given twice", position)
            chosen[name] = value
        return EventQuery(event_type, chosen.get("item"), chosen.get("category"))

    @v_args(meta=True)
    def did(self, meta: Any, children: list[Any]) -> Did:
        query: EventQuery = children[0]
        window = children[1] if len(children) > 1 else None
        return Did(
            EventQuery(query.event_type, query.item, query.category, window), _position(meta)
        )

    @v_args(meta=True)
    def count(self, meta: Any, children: list[Any]) -> Count:
        query: EventQuery = children[0]
        window = children[1] if len(children) > 1 else None
        return Count(
            EventQuery(query.event_type, query.item, query.category, window), _position(meta)
        )

    @v_args(meta=True)
    def field(self, meta: Any, children: list[Token]) -> Field:
        root, *keys = children
        path = tuple(_string(k) if k.type == "STRING" else str(k) for k in keys)
        position = _position(meta)
        if str(root) not in ROOTS:
            raise _SemanticError(
                f"unknown field {str(root)!r}; fields start with profile., traits. or context.",
                position,
            )
        if any(not key or '"' in key or "\\" in key for key in path):
            raise _SemanticError('a field key is not empty and has no " or \\', position)
        if str(root) == "profile":
            _check_profile_path(path, position)
        return Field(str(root), path, position)

    @v_args(meta=True)
    def comparison(self, meta: Any, children: list[Any]) -> Comparison:
        left, op, value = children
        position = _position(meta)
        operator = _operator(op)
        if isinstance(left, Count) or (isinstance(left, Field) and left.root == "profile"):
            if not _is_number(value):
                what = "a count" if isinstance(left, Count) else left.to_text()
                raise _SemanticError(f"{what} is a number; compare it with a number", position)
        elif operator in ORDERING and not _is_number(value):
            raise _SemanticError(
                f"{operator} compares numbers; strings and booleans take = or !=",
                _token_position(op),
            )
        return Comparison(left, operator, value, position)

    @v_args(meta=True)
    def membership(self, meta: Any, children: list[Any]) -> Membership:
        target, *values = children
        position = _position(meta)
        kinds = {_kind(v) for v in values}
        if len(kinds) > 1:
            raise _SemanticError("the values of a list are all numbers or all strings", position)
        if "boolean" in kinds:
            raise _SemanticError("a list holds numbers or strings", position)
        if target.root == "profile" and kinds != {"number"}:
            raise _SemanticError(f"{target.to_text()} is a number; list numbers", position)
        return Membership(target, tuple(values), position)

    @v_args(meta=True)
    def segment_ref(self, meta: Any, children: list[Token]) -> SegmentRef:
        name = _string(children[0])
        if not SEGMENT_NAME.fullmatch(name):
            raise _SemanticError(f"{name!r} is not a segment name", _position(meta))
        return SegmentRef(name, _position(meta))


def _check_profile_path(path: tuple[str, ...], position: Position) -> None:
    head = path[0]
    if head in PROFILE_NUMBERS and len(path) == 1:
        return
    if head in PROFILE_MAPS and len(path) == 2:
        return
    if head in PROFILE_MAPS:
        raise _SemanticError(f"profile.{head} takes one key, as in profile.{head}.name", position)
    known = ", ".join(sorted(PROFILE_NUMBERS | {f"{m}.<key>" for m in PROFILE_MAPS}))
    raise _SemanticError(f"unknown profile field {head!r}; known: {known}", position)


def _is_number(value: Scalar) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "string"


def parse_rule(text: str) -> Rule:
    """Parse and check a rule; raises ``RuleSyntaxError`` pointing at the first mistake."""
    if len(text) > MAX_RULE_CHARS:
        raise RuleSyntaxError(
            f"a rule has at most {MAX_RULE_CHARS} characters",
            extra=_where(text, Position(1, MAX_RULE_CHARS + 1)),
        )
    if not text.strip():
        raise RuleSyntaxError("the rule is empty", extra=_where(text, Position(1, 1)))
    try:
        tree = _parser().parse(text)
        rule: Rule = _ToTree().transform(tree)
    except UnexpectedInput as exc:
        position = Position(exc.line if exc.line > 0 else 1, exc.column if exc.column > 0 else 1)
        if isinstance(exc, UnexpectedToken) and exc.token.type == "$END":
            lines = text.splitlines() or [""]
            position = Position(len(lines), len(lines[-1]) + 1)  # point past the last character
        raise RuleSyntaxError(
            f"{_describe(exc)} at line {position.line}, column {position.column}",
            extra=_where(text, position),
        ) from None
    except VisitError as exc:
        inner = exc.orig_exc
        if not isinstance(inner, _SemanticError):
            raise
        position = inner.position
        raise RuleSyntaxError(
            f"{inner.message} (line {position.line}, column {position.column})",
            extra=_where(text, position),
        ) from None
    depth, event_terms = _shape(rule)
    if depth > MAX_DEPTH:
        raise RuleSyntaxError(
            f"the rule nests {depth} levels deep; the limit is {MAX_DEPTH}",
            extra=_where(text, Position(1, 1)),
        )
    if event_terms > MAX_EVENT_TERMS:
        raise RuleSyntaxError(
            f"the rule has {event_terms} event terms (did, count); the limit is {MAX_EVENT_TERMS}",
            extra=_where(text, Position(1, 1)),
        )
    return rule


def _describe(exc: UnexpectedInput) -> str:
    if isinstance(exc, UnexpectedCharacters):
        return f"unexpected character {exc.char!r}"
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        found = "the end of the rule" if token.type == "$END" else repr(str(token))
        expected = sorted({_terminal_text(name) for name in exc.expected})
        return f"unexpected {found}; expected {' or '.join(expected)}"
    return "the rule does not parse"  # pragma: no cover - LALR raises only the two above


def _terminal_text(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:  # pragma: no cover - every expected terminal is in the grammar
        return name
    return repr(pattern.value) if pattern.type == "str" else name


def _where(text: str, position: Position) -> dict[str, Any]:
    lines = text.splitlines() or [""]
    line = lines[min(position.line, len(lines)) - 1]
    caret = " " * (position.column - 1) + "^"
    return {"line": position.line, "column": position.column, "excerpt": f"{line}\n{caret}"}


def _shape(rule: Rule) -> tuple[int, int]:
    """How deep the rule nests, and how many of its terms read the event log."""
    deepest = event_terms = 0
    stack: list[tuple[Rule, int]] = [(rule, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, Did) or (isinstance(node, Comparison) and isinstance(node.left, Count)):
            event_terms += 1
        elif isinstance(node, Not):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, And | Or):
            stack.extend((child, depth + 1) for child in node.operands)
    return deepest, event_terms
