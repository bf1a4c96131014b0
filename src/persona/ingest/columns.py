"""Validation of a table of events column by column: the bulk path of file imports.

Validating events one at a time costs a file import most of its time: each row becomes a
dictionary, then goes through the contract in Python (about 20 µs an event). A Parquet file
already holds typed columns, so Arrow's kernels check the common case for a whole batch at
once: ids, types, timestamps, values and sizes as columns, and each distinct properties or
context text once (a shop's context takes a few dozen values among millions of events).

The columns only vouch for rows; they never reject one. A row they cannot vouch for (a bad
value, a text timestamp, an event near the size limit) is validated by the row path
(``validate_event``) from the very row the row path would read, so it gets the same outcome,
code and message. A property test compares both paths on random tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pydantic_core import PydanticCustomError

from persona.documents import (
    EVENT_TYPE_PATTERN,
    MAX_ID_LENGTH,
    MAX_TYPE_LENGTH,
    check_json_document,
)
from persona.ids import uuid4
from persona.ingest.importer import normalize_row
from persona.ingest.schema import MAX_TIMESTAMP_MS, MAX_VALUE, MIN_TIMESTAMP_MS
from persona.ingest.service import (
    PLAIN_EVENT_MAX_BYTES,
    PayloadHasher,
    Rejection,
    Scrub,
    ValidEvent,
    validate_event,
)
from persona.ingest.settings import IngestSettings

ID_COLUMNS = ("event_id", "user_id", "anonymous_id", "item_id", "decision_id")
DOCUMENT_COLUMNS = ("properties", "context")
KNOWN_COLUMNS = frozenset({*ID_COLUMNS, *DOCUMENT_COLUMNS, "type", "timestamp", "value"})
CONTROL_CHARACTER = r"[\x00-\x1f\x7f]"
# JSON text of one value at most, beside its key: a timestamp as orjson writes a datetime
# (34 bytes with its quotes) or an integer, a float, and ``"key":`` with its comma.
TIMESTAMP_JSON_BYTES = 40
VALUE_JSON_BYTES = 26
FIELD_OVERHEAD_BYTES = 4


class TableRows(Sequence[Any]):
    """The rows of a table as the row path reads them (``normalize_row`` of each), made only
    when asked for: the rows the columns vouch for are never turned into dictionaries."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __len__(self) -> int:
        return int(self._table.num_rows)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return normalize_row(self._table.slice(index % len(self), 1).to_pylist()[0])

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))


def validate_table(
    table: pa.Table,
    rows: Sequence[Any],
    *,
    now_ms: int,
    limits: IngestSettings,
    scrub: Scrub | None = None,
    hasher: PayloadHasher,
) -> list[ValidEvent | Rejection]:
    """Each row of ``table`` checked against the contract, as ``validate_event`` would check
    ``rows[i]`` (the same row as a dictionary); the rows Arrow vouches for without a Python
    call each."""

    def by_row(i: int) -> ValidEvent | Rejection:
        return validate_event(rows[i], i, now_ms=now_ms, limits=limits, scrub=scrub, hasher=hasher)

    columns = _Columns.of(table, now_ms, limits)
    if columns is None:  # a column of another kind: the row path decides every row
        return [by_row(i) for i in range(table.num_rows)]
    properties, context = (
        _Documents(columns.documents[n], table.num_rows, scrub) for n in DOCUMENT_COLUMNS
    )
    vouched = columns.vouched & properties.valid_rows() & context.valid_rows()
    vouched &= columns.fits(limits, {"properties": properties, "context": context})
    checked: list[ValidEvent | Rejection] = []
    values = columns.python_values()
    for i, ok in enumerate(vouched.tolist()):
        if not ok:
            checked.append(by_row(i))
            continue
        event_id, kind, user, anonymous, item, timestamp, value, decision = values[i]
        props, ctx = properties.row(i), context.row(i)
        checked.append(
            ValidEvent(
                i,
                event_id or str(uuid4()),
                kind,
                user,
                anonymous,
                item,
                timestamp if timestamp is not None else now_ms,
                value,
                props,
                ctx,
                decision,
                hasher.of(kind, user, anonymous, item, timestamp, value, props, ctx, decision),
            )
        )
    return checked


class _Columns:
    """The table's columns in the form the contract gives them, and which rows they vouch for
    (everything but the documents, checked by ``_Documents``)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.values: dict[str, pa.Array] = {}
        self.documents: dict[str, pa.Array | None] = dict.fromkeys(DOCUMENT_COLUMNS)
        self.vouched = np.ones(count, dtype=bool)
        self.bytes = np.full(count, 2, dtype=np.int64)  # the braces of the object

    @classmethod
    def of(cls, table: pa.Table, now_ms: int, limits: IngestSettings) -> _Columns | None:
        if not set(table.column_names) <= KNOWN_COLUMNS or "type" not in table.column_names:
            return None
        found = cls(table.num_rows)
        for name in table.column_names:
            column = table[name].combine_chunks()
            if name in ID_COLUMNS:
                ok = found._id(name, column)
            elif name == "type":
                ok = found._type(column)
            elif name == "timestamp":
                ok = found._timestamp(column, now_ms + limits.future_tolerance_ms)
            elif name == "value":
                ok = found._value(column)
            else:
                ok = found._document(name, column)
            if not ok:
                return None
        for name in (*ID_COLUMNS, "timestamp", "value"):
            found.values.setdefault(name, pa.nulls(found.count, pa.string()))
        users, anonymous = found.values["user_id"], found.values["anonymous_id"]
        found._vouch(pc.or_kleene(pc.is_valid(users), pc.is_valid(anonymous)))
        return found

    def _vouch(self, condition: pa.Array) -> None:
        self.vouched &= np.asarray(pc.fill_null(condition, False), dtype=bool)

    def _count_bytes(self, name: str, value_bytes: np.ndarray, present: pa.Array) -> None:
        where = np.asarray(pc.is_valid(present), dtype=bool)
        self.bytes += np.where(where, len(name) + FIELD_OVERHEAD_BYTES + value_bytes, 0)

    def _id(self, name: str, column: pa.Array) -> bool:
        if pa.types.is_integer(column.type):
            text = pc.cast(column, pa.string())  # an integer id stands for its decimal text
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            text = column.cast(pa.string())
            length = pc.utf8_length(text)
            self._vouch(
                pc.or_kleene(
                    pc.is_null(text),
                    pc.and_kleene(
                        pc.and_kleene(
                            pc.greater_equal(length, 1), pc.less_equal(length, MAX_ID_LENGTH)
                        ),
                        pc.invert(pc.match_substring_regex(text, CONTROL_CHARACTER)),
                    ),
                )
            )
        else:
            return False
        self.values[name] = text
        # written as JSON: quotes, and at worst an escape for every byte (" and \)
        self._count_bytes(name, _utf8_bytes(text) * 2 + 2, text)
        return True

    def _type(self, column: pa.Array) -> bool:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            return False
        text = column.cast(pa.string())
        self._vouch(
            pc.and_kleene(
                pc.less_equal(pc.utf8_length(text), MAX_TYPE_LENGTH),
                pc.match_substring_regex(text, EVENT_TYPE_PATTERN),
            )
        )
        self.values["type"] = text
        self._count_bytes("type", _utf8_bytes(text) + 2, text)
        return True

    def _timestamp(self, column: pa.Array, latest_ms: int) -> bool:
        """Epoch milliseconds from a timestamp column of seconds or milliseconds (as the row
        path computes them from each datetime), or from whole Unix seconds; other kinds
        (text, fractions, finer units) are left to the row path."""
        kind = column.type
        if pa.types.is_timestamp(kind) and kind.unit in ("s", "ms"):
            millis = pc.cast(pc.cast(column, pa.timestamp("ms", kind.tz)), pa.int64())
        elif pa.types.is_integer(kind):
            seconds = pc.cast(column, pa.int64())  # in range below, so its product is too
            in_range = pc.and_kleene(
                pc.greater_equal(seconds, MIN_TIMESTAMP_MS // 1000),
                pc.less_equal(seconds, (MAX_TIMESTAMP_MS - 1) // 1000),
            )
            seconds = pc.if_else(in_range, seconds, pa.scalar(None, pa.int64()))
            self._vouch(pc.or_kleene(pc.is_null(column), in_range))
            millis = pc.multiply(seconds, 1000)
        else:
            return False
        self._vouch(
            pc.or_kleene(
                pc.is_null(millis),
                pc.and_kleene(
                    pc.and_kleene(
                        pc.greater_equal(millis, MIN_TIMESTAMP_MS),
                        pc.less(millis, MAX_TIMESTAMP_MS),
                    ),
                    pc.less_equal(millis, latest_ms),  # the row path words the future's refusal
                ),
            )
        )
        self.values["timestamp"] = millis
        self._count_bytes("timestamp", np.full(self.count, TIMESTAMP_JSON_BYTES), column)
        return True

    def _value(self, column: pa.Array) -> bool:
        if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
            return False
        value = pc.cast(column, pa.float64())
        # A NaN marks a missing value in a float column, as the row path reads it.
        value = pc.if_else(pc.is_nan(value), pa.scalar(None, pa.float64()), value)
        self._vouch(pc.or_kleene(pc.is_null(value), pc.less_equal(pc.abs(value), MAX_VALUE)))
        self.values["value"] = value
        self._count_bytes("value", np.full(self.count, VALUE_JSON_BYTES), value)
        return True

    def _document(self, name: str, column: pa.Array) -> bool:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            return False
        # An empty cell is a missing value, as the row path reads it.
        text = column.cast(pa.string())
        self.documents[name] = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        return True

    def fits(self, limits: IngestSettings, documents: dict[str, _Documents]) -> np.ndarray:
        """Rows no bigger than the limit, on a bound of their size; the rest are measured by
        the row path. Under ``PLAIN_EVENT_MAX_BYTES`` a row without documents needs no
        bound, as there."""
        total = self.bytes.copy()
        has_document = np.zeros(self.count, dtype=bool)
        for name, found in documents.items():
            size, present = found.json_bytes()
            total += np.where(present, len(name) + FIELD_OVERHEAD_BYTES + size, 0)
            has_document |= present
        fits = total <= limits.max_event_bytes
        if limits.max_event_bytes >= PLAIN_EVENT_MAX_BYTES:
            fits |= ~has_document
        return fits

    def python_values(self) -> list[tuple[Any, ...]]:
        """Each row's event id, type, ids, timestamp and value as Python objects."""
        names = ("event_id", "type", "user_id", "anonymous_id", "item_id", "timestamp", "value")
        lists = [self.values[name].to_pylist() for name in names]
        return list(zip(*lists, self.values["decision_id"].to_pylist(), strict=True))


class _Documents:
    """A column of JSON object texts, each distinct text parsed, checked and transformed by
    privacy once."""

    def __init__(self, column: pa.Array | None, count: int, scrub: Scrub | None) -> None:
        self._scrub = scrub
        if column is None:
            column = pa.nulls(count, pa.string())
        encoded = pc.dictionary_encode(column)
        self._codes = np.asarray(pc.fill_null(encoded.indices, -1), dtype=np.int64)
        self._parsed = [_document(text) for text in encoded.dictionary.to_pylist()]
        # A document privacy transforms is transformed per event (its encrypted values differ
        # from event to event); the rest are shared by every row holding them, and nothing
        # changes a document after validation.
        self._per_event = [
            parsed is not None
            and bool(parsed)
            and scrub is not None
            and scrub(parsed) is not parsed
            for parsed in self._parsed
        ]

    def valid_rows(self) -> np.ndarray:
        valid = np.asarray([parsed is not None for parsed in self._parsed] + [True], dtype=bool)
        return valid[self._codes]  # -1 (no document) picks the final True

    def json_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """Each row's document size as JSON, and whether it has one."""
        sizes = [len(orjson.dumps(p)) if p is not None else 0 for p in self._parsed] + [0]
        return np.asarray(sizes, dtype=np.int64)[self._codes], self._codes >= 0

    def row(self, index: int) -> dict[str, Any] | None:
        code = int(self._codes[index])
        if code < 0:
            return None
        parsed = self._parsed[code]
        if parsed is not None and self._per_event[code] and self._scrub is not None:
            return self._scrub(parsed)  # a new object, the parsed one left as it is
        return parsed


def _document(text: str) -> dict[str, Any] | None:
    """The object a text holds, checked as the contract checks documents; None otherwise."""
    try:
        parsed: object = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    try:
        return check_json_document(parsed)
    except PydanticCustomError:
        return None


def _utf8_bytes(text: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.binary_length(text), 0), dtype=np.int64)
