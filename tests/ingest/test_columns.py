"""Validation column by column (`persona.ingest.columns`) gives every row of a table the outcome
the row path gives it: the same valid event, or the same rejection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persona.ingest.columns import TableRows, validate_table
from persona.ingest.service import (
    IngestSettings,
    PayloadHasher,
    Rejection,
    ValidEvent,
    validate_event,
)

NOW_MS = 1_780_000_000_000  # 2026-05-28
HASHER = PayloadHasher(b"a key for the test")


def scrub(document: dict[str, Any]) -> dict[str, Any] | None:
    """Privacy's kind of transformation: a new object where a personal key is present."""
    if "email" not in document:
        return document
    return {**document, "email": "hidden"}


texts = st.one_of(
    st.sampled_from(["u1", "é-unicode", " spaced ", "", "a" * 128, "a" * 129, "x\ny", 'q"\\']),
    st.text(max_size=10),
)
good_ids = st.sampled_from(["u1", "u2", "i-9", "é", "a" * 128])
id_columns = st.one_of(
    st.tuples(st.just(pa.string()), st.lists(st.none() | texts)),
    st.tuples(st.just(pa.int64()), st.lists(st.none() | st.integers(-(2**63), 2**63 - 1))),
    st.tuples(st.just(pa.float64()), st.lists(st.none() | st.floats(-1e3, 1e3))),
)
type_columns = st.one_of(
    st.tuples(
        st.just(pa.string()),
        st.lists(st.none() | st.sampled_from(["1view", "", "a" * 65]) | st.text(max_size=5)),
    ),
    st.tuples(st.just(pa.int64()), st.lists(st.integers(0, 9))),
)
moments = st.datetimes(datetime(1900, 1, 1), datetime(2300, 1, 1), timezones=st.just(UTC))
recent = st.datetimes(datetime(2020, 1, 1), datetime(2026, 5, 28), timezones=st.just(UTC))
timestamp_columns = st.one_of(
    st.tuples(st.just(pa.timestamp("ms", "UTC")), st.lists(st.none() | moments)),
    st.tuples(st.just(pa.timestamp("s")), st.lists(st.none() | st.datetimes())),
    st.tuples(st.just(pa.timestamp("us", "UTC")), st.lists(st.none() | moments)),
    st.tuples(st.just(pa.int64()), st.lists(st.none() | st.integers(-10, 8_000_000_000))),
    st.tuples(
        st.just(pa.int64()), st.lists(st.sampled_from([0, 1_780_000_000, 7_258_118_399, -1]))
    ),
    st.tuples(st.just(pa.float64()), st.lists(st.none() | st.floats(0, 3e9))),
    st.tuples(st.just(pa.string()), st.lists(st.sampled_from(["2026-01-01T00:00:00Z", "x", ""]))),
)
value_columns = st.one_of(
    st.tuples(
        st.just(pa.float64()),
        st.lists(st.none() | st.floats() | st.sampled_from([1e12, -1e12, 1e12 + 1])),
    ),
    st.tuples(st.just(pa.float32()), st.lists(st.none() | st.floats(width=32))),
    st.tuples(st.just(pa.int64()), st.lists(st.none() | st.integers(-(10**13), 10**13))),
    st.tuples(st.just(pa.string()), st.lists(st.sampled_from(["4.5", "x"]))),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)
document_texts = st.one_of(
    st.dictionaries(st.sampled_from(["device", "email", "k" * 257, "\x00"]), json_values).map(
        json.dumps
    ),
    st.sampled_from(['{"a": {"b": {"c": 1}}}', "[1]", "3", "{", "", "{}"]),
    st.sampled_from(['{"deep": ' + "[" * 9 + "]" * 9 + "}", '{"big": "' + "x" * 700 + '"}']),
)
good_documents = st.sampled_from(['{"device": "mobile"}', '{"email": "a@b.c", "n": 1}', "{}"])
document_columns = st.tuples(st.just(pa.string()), st.lists(st.none() | document_texts))


def column(kind: pa.DataType, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(st.just(kind), st.lists(values, min_size=1))


# Each column as a real export holds it (what the columns vouch for), or anything a file may
# hold (what the row path decides).
COLUMNS = {
    "event_id": (column(pa.string(), st.none() | good_ids), id_columns),
    "type": (column(pa.string(), st.sampled_from(["view", "buy", "x.y:z-1"])), type_columns),
    "user_id": (column(pa.string(), st.none() | good_ids), id_columns),
    "anonymous_id": (column(pa.string(), st.none() | good_ids), id_columns),
    "item_id": (column(pa.string(), st.none() | good_ids), id_columns),
    "decision_id": (column(pa.string(), st.none() | good_ids), id_columns),
    "timestamp": (column(pa.timestamp("ms", "UTC"), st.none() | recent), timestamp_columns),
    "value": (column(pa.float64(), st.none() | st.floats(-1e4, 1e4)), value_columns),
    "properties": (column(pa.string(), st.none() | good_documents), document_columns),
    "context": (column(pa.string(), st.none() | good_documents), document_columns),
    "unknown": (column(pa.string(), st.none() | texts),) * 2,
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    rows = draw(st.integers(1, 8))
    names = draw(st.sets(st.sampled_from(sorted(COLUMNS)), min_size=1))
    if draw(st.integers(0, 9)) < 8:  # most tables have the columns an event needs
        names |= {"type", "user_id"}
        names.discard("unknown")
    columns = {}
    for name in sorted(names):
        good, wild = COLUMNS[name]
        kind, values = draw(good if draw(st.integers(0, 9)) < 8 else wild)
        values = (values * rows)[:rows] if values else [None] * rows
        columns[name] = pa.array(values, kind)
    return pa.table(columns)


def same_outcome(
    columnar: ValidEvent | Rejection, row_path: ValidEvent | Rejection, generated_id: bool
) -> bool:
    if isinstance(columnar, Rejection) or isinstance(row_path, Rejection):
        return columnar == row_path
    if generated_id:  # a new id each time it is validated
        columnar.event_id = row_path.event_id
    return columnar == row_path


@settings(max_examples=400, deadline=None)
@given(table=tables(), limit=st.sampled_from([256, 700, 32 * 1024]), scrubbed=st.booleans())
def test_every_row_gets_the_outcome_of_the_row_path(
    table: pa.Table, limit: int, scrubbed: bool
) -> None:
    limits = IngestSettings(max_event_bytes=limit)
    rows = TableRows(table)
    check = scrub if scrubbed else None
    columnar = validate_table(table, rows, now_ms=NOW_MS, limits=limits, scrub=check, hasher=HASHER)
    assert len(columnar) == table.num_rows
    for i, outcome in enumerate(columnar):
        expected = validate_event(
            rows[i], i, now_ms=NOW_MS, limits=limits, scrub=check, hasher=HASHER
        )
        generated = not rows[i].get("event_id") if isinstance(rows[i], dict) else False
        assert same_outcome(outcome, expected, generated), (rows[i], outcome, expected)


def test_a_shop_table_is_validated_by_its_columns_without_reading_rows() -> None:
    """The common shape (text ids, a timestamp column, a float value, JSON text context)
    never reaches the row path: no row is read as a dictionary."""
    table = pa.table(
        {
            "event_id": ["e1", "e2", "e3"],
            "type": ["view", "purchase", "view"],
            "user_id": ["u1", None, "u2"],
            "anonymous_id": [None, "a1", None],
            "item_id": ["i1", "i2", None],
            "timestamp": pa.array([1_700_000_000_000] * 3, pa.timestamp("ms", "UTC")),
            "value": [None, 12.5, None],
            "context": ['{"device": "mobile"}', '{"device": "mobile"}', None],
        }
    )

    class Unread(TableRows):
        def __getitem__(self, index: Any) -> Any:
            raise AssertionError(f"row {index} was read")

    checked = validate_table(
        table, Unread(table), now_ms=NOW_MS, limits=IngestSettings(), hasher=HASHER
    )
    assert all(isinstance(event, ValidEvent) for event in checked)
    assert [e.occurred_at_ms for e in checked if isinstance(e, ValidEvent)] == [
        1_700_000_000_000
    ] * 3
    assert [e.context for e in checked if isinstance(e, ValidEvent)] == [
        {"device": "mobile"},
        {"device": "mobile"},
        None,
    ]


def test_a_document_privacy_transforms_is_transformed_for_each_event() -> None:
    seen: list[int] = []

    def counting(document: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(1)
        return scrub(document)

    texts = ['{"email": "a@b.c"}'] * 3 + ['{"device": "tv"}'] * 3
    table = pa.table({"type": ["view"] * 6, "user_id": ["u"] * 6, "properties": texts})
    checked = validate_table(
        table,
        TableRows(table),
        now_ms=NOW_MS,
        limits=IngestSettings(),
        scrub=counting,
        hasher=HASHER,
    )
    events = [e for e in checked if isinstance(e, ValidEvent)]
    assert [e.properties for e in events] == [{"email": "hidden"}] * 3 + [{"device": "tv"}] * 3
    assert events[0].properties is not events[1].properties
    assert len(seen) == 2 + 3  # each distinct text once, then the personal one per event


@pytest.mark.parametrize("rows", [0, 1])
def test_table_rows_read_as_the_row_path_reads_them(rows: int) -> None:
    table = pa.table({"type": ["view"] * rows, "user_id": pa.array([7] * rows, pa.int64())})
    assert list(TableRows(table)) == [{"type": "view", "user_id": "7"}] * rows
