"""The batch evaluator: a rule compiled to one SELECT of the matching profile keys.

The query is SQLAlchemy Core and the same for SQLite and PostgreSQL except for typed access into
JSON documents (``JsonAccess``): SQLite has ``json_type``/``json_extract``, PostgreSQL has
``jsonb_typeof``/``jsonb_extract_path``. A typed accessor is NULL when the value is missing or of
another JSON type, and every comparison is written so that NULL counts as false (never unknown),
which is what the real-time evaluator does in Python.

Event functions become set-based subqueries over ``events`` (``profile_key IN (...)``), so each
runs once for everyone rather than once per person.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Select,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.engine.default import DefaultDialect

from persona import clock
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
from persona.storage import tables
from persona.storage.tables.predictions import profile_scores
from persona.storage.tables.segments import segment_memberships

# a float: SQL divides an integer by an integer to an integer
DAY_MS = float(clock.DAY_MS)
MICROS = 1_000_000.0
LONG_WINDOW_MS = 30 * clock.DAY_MS


class JsonAccess(Protocol):
    """Typed reads from a JSON column: NULL unless the value exists and has that JSON type."""

    def number(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]: ...
    def aggregate(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        """A number the server wrote (profile aggregates): numeric or missing, never checked."""
        ...

    def string(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]: ...
    def boolean(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]: ...
    def array_length(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]: ...
    def list_contains(self, column: Any, value: str) -> ColumnElement[bool]: ...


class SqliteJson:
    @staticmethod
    def _path(path: Sequence[str]) -> str:
        # Keys are checked by the parser to hold no quote or backslash.
        return "$" + "".join(f'."{key}"' for key in path)

    def _type(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return func.json_type(column, self._path(path))

    def aggregate(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return type_coerce(func.json_extract(column, self._path(path)), Float)

    def number(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        value = cast(func.json_extract(column, self._path(path)), Float)
        return case((self._type(column, path).in_(["integer", "real"]), value))

    def string(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        value = type_coerce(func.json_extract(column, self._path(path)), String)
        return case((self._type(column, path) == "text", value))

    def boolean(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        kind = self._type(column, path)
        return case((kind == "true", 1), (kind == "false", 0))

    def array_length(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        length = func.json_array_length(column, self._path(path))
        return case((self._type(column, path) == "array", length))

    def list_contains(self, column: Any, value: str) -> ColumnElement[bool]:
        element = func.json_each(column).table_valued("value", "type")
        return (
            select(literal(1))
            .select_from(element)
            .where(element.c.type == "text", element.c.value == value)
            .exists()
        )


class PostgresJson:
    @staticmethod
    def _keys(path: Sequence[str]) -> list[ColumnElement[Any]]:
        return [cast(literal(key), String) for key in path]

    def _value(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return func.jsonb_extract_path(column, *self._keys(path))

    def _text(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return func.jsonb_extract_path_text(column, *self._keys(path))

    def _type(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return func.jsonb_typeof(self._value(column, path))

    def aggregate(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return cast(self._text(column, path), Float)

    def number(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return case((self._type(column, path) == "number", cast(self._text(column, path), Float)))

    def string(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        text = type_coerce(self._text(column, path), String)
        return case((self._type(column, path) == "string", text))

    def boolean(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        is_true = case((self._text(column, path) == "true", 1), else_=0)
        return case((self._type(column, path) == "boolean", is_true))

    def array_length(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        length = func.jsonb_array_length(self._value(column, path))
        return case((self._type(column, path) == "array", length))

    def list_contains(self, column: Any, value: str) -> ColumnElement[bool]:
        wanted = func.jsonb_build_array(cast(literal(value), String))
        return column.op("@>")(wanted)  # type: ignore[no-any-return]


class SparkJson:
    """Spark SQL: the document parsed as a VARIANT (Spark 4), whose ``schema_of_variant`` names
    the JSON type of a value (``BIGINT``, ``DECIMAL(2,1)``, ``STRING``, ``ARRAY<...>`` ...)."""

    NUMBER = "^(TINYINT|SMALLINT|INT|BIGINT|FLOAT|DOUBLE|DECIMAL)"

    @staticmethod
    def _path(path: Sequence[str]) -> str:
        # Keys are checked by the parser to hold no quote or backslash.
        return "$" + "".join(f'["{key}"]' for key in path)

    def _get(self, column: Any, path: Sequence[str], kind: str | None = None) -> Any:
        arguments = [func.parse_json(column), self._path(path)]
        return func.variant_get(*arguments, *([kind] if kind else []))

    def _type(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return func.schema_of_variant(self._get(column, path))

    def aggregate(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        return type_coerce(self._get(column, path, "double"), Float)

    def number(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        is_number = func.rlike(self._type(column, path), self.NUMBER)
        return case((is_number, type_coerce(self._get(column, path, "double"), Float)))

    def string(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        value = type_coerce(self._get(column, path, "string"), String)
        return case((self._type(column, path) == "STRING", value))

    def boolean(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        is_true = case((self._get(column, path, "string") == "true", 1), else_=0)
        return case((self._type(column, path) == "BOOLEAN", is_true))

    def array_length(self, column: Any, path: Sequence[str]) -> ColumnElement[Any]:
        length = func.size(self._get(column, path, "array<variant>"))
        return case((func.rlike(self._type(column, path), "^ARRAY"), length))

    def list_contains(self, column: Any, value: str) -> ColumnElement[bool]:
        # Item categories: a list of text (the catalog's schema), as Spark's array of strings.
        return func.array_contains(func.from_json(column, "array<string>"), value)


def json_access(dialect: str) -> JsonAccess:
    if dialect == "postgresql":
        return PostgresJson()
    if dialect == "sqlite":
        return SqliteJson()
    if dialect == "spark":
        return SparkJson()
    raise ValueError(f"segments support SQLite, PostgreSQL and Spark, not {dialect}")


class RuleCompiler:
    """Compiles rules for one dialect and one evaluation time."""

    def __init__(self, dialect: str, now_ms: int) -> None:
        self._json = json_access(dialect)
        self._sqlite = dialect == "sqlite"
        self._spark = dialect == "spark"
        self._now = now_ms
        self._profiles = tables.profiles

    def select_members(self, rule: Rule) -> Select[str]:
        """``SELECT profile_key FROM profiles WHERE <rule>``."""
        p = self._profiles
        return select(p.c.profile_key).where(self.condition(rule))

    def condition(self, rule: Rule) -> ColumnElement[bool]:
        match rule:
            case Did(query=query):
                keys = select(tables.events.c.profile_key).where(*self._event_filter(query))
                return self._profiles.c.profile_key.in_(keys)
            case Comparison(left=Count(query=query), op=op, value=value):
                return self._count(query, op, value)
            case Comparison(left=Field() as target, op=op, value=value):
                return self._compare(target, op, value)
            case Membership(target=target, values=values):
                typed = self._typed(target, values[0])
                return _known(typed.in_([_sql_value(v) for v in values]))
            case SegmentRef(name=name):
                m = segment_memberships
                members = select(m.c.profile_key).where(
                    m.c.segment == name, m.c.exited_at_ms.is_(None)
                )
                return self._profiles.c.profile_key.in_(members)
            case Not(operand=operand):
                return not_(self.condition(operand))
            case And(operands=operands):
                return and_(*(self.condition(o) for o in operands))
            case Or(operands=operands):
                return or_(*(self.condition(o) for o in operands))
        raise TypeError(f"not a rule: {rule!r}")  # pragma: no cover

    # -- events --------------------------------------------------------------------------------
    def _event_filter(self, query: EventQuery) -> list[ColumnElement[bool]]:
        e = tables.events
        where: list[ColumnElement[bool]] = [e.c.type == query.event_type]
        if query.window_ms is not None:
            occurred: ColumnElement[Any] = e.c.occurred_at_ms
            if self._sqlite and query.window_ms >= LONG_WINDOW_MS:
                # SQLite has no statistics on time ranges: through the time index a long window
                # costs a table lookup per event; "+ 0" hides the index so it scans instead.
                occurred = occurred + 0
            where.append(occurred >= self._now - query.window_ms)
        if query.item is not None:
            where.append(e.c.item_id == query.item)
        if query.category is not None:
            items = tables.items
            in_category = select(items.c.item_id).where(
                self._json.list_contains(items.c.categories, query.category)
            )
            where.append(e.c.item_id.in_(in_category))
        return where

    def _count(self, query: EventQuery, op: Operator, value: Scalar) -> ColumnElement[bool]:
        # Set-based: people whose count passes (or, when a zero count passes, who fail) are
        # found in one grouped scan; everyone else has a count of 0.
        e = tables.events
        zero_passes = _OPERATORS[op](0, value)
        having = _sql_compare(func.count(), op, value)
        grouped = (
            select(e.c.profile_key)
            .where(*self._event_filter(query))
            .group_by(e.c.profile_key)
            .having(not_(having) if zero_passes else having)
        )
        keys = self._profiles.c.profile_key
        return keys.not_in(grouped) if zero_passes else keys.in_(grouped)

    # -- fields --------------------------------------------------------------------------------
    def _compare(self, target: Field, op: Operator, value: Scalar) -> ColumnElement[bool]:
        typed = self._typed(target, value)
        return _known(_sql_compare(typed, op, value))

    def _typed(self, target: Field, literal_value: Scalar) -> ColumnElement[Any]:
        p, j = self._profiles, self._json
        if target.root in ("traits", "context"):
            column = p.c.traits if target.root == "traits" else p.c.state
            path = target.path if target.root == "traits" else ("last_context", *target.path)
            if isinstance(literal_value, bool):
                return j.boolean(column, path)
            if isinstance(literal_value, str):
                return j.string(column, path)
            return j.number(column, path)
        head, state = target.path[0], p.c.state
        now = literal(self._now, BigInteger)
        simple = {"event_count": "event_count", "frequency": "purchases"}
        days = {
            "recency_days": "last_purchase_ms",
            "last_seen_days": "last_seen_ms",
            "first_seen_days": "first_seen_ms",
        }
        if head in simple:
            return j.aggregate(state, [simple[head]])
        if head == "monetary":
            return j.aggregate(state, ["revenue_micros"]) / MICROS
        if head in days:
            return (now - j.aggregate(state, [days[head]])) / DAY_MS
        if head == "sessions":
            return j.array_length(state, ["sessions"])
        key = target.path[1]
        if head == "count":
            return func.coalesce(j.aggregate(state, ["counts", key]), 0.0)
        if head == "affinity":
            return func.coalesce(j.aggregate(state, ["affinity", key]), 0.0)
        scores = profile_scores
        probability: ColumnElement[Any] = cast(scores.c.probability, Float)
        if self._spark:  # Spark takes a correlated scalar subquery only aggregated (one row)
            probability = func.max(probability)
        return (
            select(probability)
            .where(scores.c.profile_key == p.c.profile_key, scores.c.name == key)
            .scalar_subquery()
        )


_OPERATORS: dict[str, Any] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _known(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """NULL (a missing value or another JSON type) as false, as in Python: two-valued logic."""
    return func.coalesce(condition, false())


def _sql_value(value: Scalar) -> Any:
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, str):
        return value
    return float(value)


def _sql_compare(left: ColumnElement[Any], op: Operator, value: Scalar) -> ColumnElement[bool]:
    right = literal(_sql_value(value))
    result: ColumnElement[bool] = _OPERATORS[op](left, right)
    return result


def select_members(rule: Rule, dialect: str, now_ms: int) -> Select[str]:
    """The SELECT of the profile keys that match ``rule`` at ``now_ms``."""
    return RuleCompiler(dialect, now_ms).select_members(rule)


class _SparkDialect(DefaultDialect):
    name = "spark"
    paramstyle = "named"  # Spark SQL binds :name markers itself (no literal is quoted here)
    supports_native_boolean = True


def spark_rule_sql(rule: Rule, now_ms: int) -> tuple[str, dict[str, Any]]:
    """The same SELECT as Spark SQL, and its parameters (``spark.sql(text, args=...)``): over
    the views ``profiles``, ``events``, ``items``, ``segment_memberships`` and
    ``profile_scores``, with the tables' columns."""
    compiled = select_members(rule, "spark", now_ms).compile(
        dialect=_SparkDialect(), compile_kwargs={"render_postcompile": True}
    )
    return str(compiled), dict(compiled.params)


__all__ = [
    "JsonAccess",
    "PostgresJson",
    "RuleCompiler",
    "SparkJson",
    "SqliteJson",
    "select_members",
    "spark_rule_sql",
]
