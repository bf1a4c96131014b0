"""The validation fast path (`PlainEvent`) accepts only what `EventIn` accepts, with the same
values, one event at a time and a batch at once."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from persona.ingest.schema import EventFields, EventIn, PlainEvent, plain_event, plain_events
from persona.ingest.service import (
    PLAIN_EVENT_MAX_BYTES,
    IngestSettings,
    PayloadHasher,
    Rejection,
    ValidEvent,
    validate_event,
    validate_events,
)

identifiers = st.one_of(
    st.none(),
    st.sampled_from(["u1", "ml-1-2", "é-unicode", " spaced ", "", "a" * 128, "a" * 129]),
    st.text(max_size=140),
    st.integers(-5, 5),
    st.integers(),
    st.integers(-(10**130), 10**130),
    st.booleans(),
    st.floats(),
    st.floats(-(2.0**60), 2.0**60).map(float.__floor__).map(float),
    st.sampled_from([42.0, -0.0, 2.0**53, 2.0**53 - 1, 1e300]),
)
types = st.one_of(
    st.sampled_from(["view", "rate", "add_to_cart", "custom.kind:v-1", "1view", "view\n", ""]),
    st.text(max_size=70),
    st.none(),
    st.integers(),
)
numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**13), 10**13),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e12, -1e12, 1e12 + 1, "4.5", "1700000000", "2026-01-01T00:00:00Z"]),
)
timestamps = st.one_of(
    numbers,
    st.integers(-10, 8_000_000_000),
    st.floats(-10, 8e9),
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01 00:00", "yesterday", "", "1e3"]),
)
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.just("\x00")
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=3) | st.just("k" * 257), children, max_size=3),
    ),
    max_leaves=12,
)
documents = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=4), json_values, max_size=3),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=3),
)
fields = {
    "event_id": identifiers,
    "type": types,
    "user_id": identifiers,
    "anonymous_id": identifiers,
    "item_id": identifiers,
    "decision_id": identifiers,
    "timestamp": timestamps,
    "value": numbers,
    "properties": documents,
    "context": documents,
    "unexpected": st.integers(),
}


VALID = {
    "event_id": "e-1",
    "type": "view",
    "user_id": "u1",
    "anonymous_id": "v1",
    "item_id": "i1",
    "decision_id": "d1",
    "timestamp": 1_700_000_000,
    "value": 4.5,
    "properties": {"a": 1},
    "context": {"device": "mobile"},
}


@st.composite
def raw_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with some fields left out and one to three fields drawn at random."""
    kept = draw(st.sets(st.sampled_from(sorted(VALID))))
    event = {name: VALID[name] for name in kept}
    for name in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3)):
        event[name] = draw(fields[name])
    return event


FIELDS = (
    "event_id",
    "type",
    "user_id",
    "anonymous_id",
    "item_id",
    "timestamp",
    "value",
    "properties",
    "context",
    "decision_id",
)


def values(event: EventFields) -> list[Any]:
    return [getattr(event, name) for name in FIELDS]


def assert_identical(left: EventFields, right: EventFields) -> None:
    assert values(left) == values(right)
    assert [type(v) for v in values(left)] == [type(v) for v in values(right)]
    assert hash_or_error(left) == hash_or_error(right)


def hash_or_error(event: EventFields) -> str:
    """The payload hash, or the error of a value JSON cannot hold (an integer beyond 64 bits:
    ingest rejects such an event when it measures its size, before any hash)."""
    try:
        return PayloadHasher.legacy(event)
    except TypeError as exc:
        return f"TypeError: {exc}"


@settings(max_examples=2000, deadline=None)
@given(raw_events())
@example({"type": "view", "user_id": "u", "value": 4})
@example({"type": "view", "user_id": "u", "timestamp": 1_700_000_000})
@example({"type": "view", "user_id": "u", "timestamp": 1.5})
@example({"type": "view", "user_id": "u", "timestamp": 7_258_118_400})
@example({"type": "view", "user_id": "u", "value": float("nan")})
@example({"type": "view", "user_id": "u", "timestamp": 1.797693134862316e305})
@example({"type": "view", "user_id": "u", "timestamp": 10**400})
@example({"type": "view\n", "user_id": "u"})
@example({"type": "view", "user_id": "u\x7f"})
@example({"type": "view", "user_id": "u", "context": {"k": "\x00"}})
@example({"type": "view", "user_id": 42, "item_id": -7, "event_id": 0, "decision_id": 2**64})
@example({"type": "view", "user_id": 10**128, "anonymous_id": 10**127})
@example({"type": "view", "user_id": True})
@example({"type": "view", "user_id": 42.0})
def test_fast_path_agrees_with_the_model(raw: dict[str, Any]) -> None:
    fast = plain_event(raw)
    batch = plain_events([raw])
    # one event alone and in a batch take the same decision
    assert (batch is None and fast is None) or (batch is not None and batch[0] == fast)
    if fast is None:
        return
    try:
        model = EventIn.model_validate(raw)
    except ValidationError as exc:
        pytest.fail(f"the fast path accepted what the model refuses: {exc}")
    assert_identical(fast, model)


@settings(max_examples=300, deadline=None)
@given(st.lists(raw_events(), min_size=1, max_size=6))
def test_a_batch_is_checked_as_its_events_one_by_one(raws: list[dict[str, Any]]) -> None:
    limits = IngestSettings()
    batch = validate_events(raws, now_ms=1_800_000_000_000, limits=limits)
    one_by_one = [
        validate_event(raw, i, now_ms=1_800_000_000_000, limits=limits)
        for i, raw in enumerate(raws)
    ]
    for together, alone in zip(batch, one_by_one, strict=True):
        if isinstance(alone, ValidEvent) and alone.event_id != together.event_id:
            # a server-assigned id differs between the two runs, and so does nothing else
            assert isinstance(together, ValidEvent) and raws[alone.index].get("event_id") is None
            together.event_id = alone.event_id
        assert together == alone


@pytest.mark.parametrize(
    "raw",
    [
        {"event_id": "ml-1-2", "type": "rate", "user_id": "1", "item_id": "2", "value": 4.0},
        {"type": "view", "anonymous_id": "v", "timestamp": "2026-11-24T09:00:00Z"},
        {"type": "purchase", "user_id": "42", "item_id": "1", "value": 9.99, "timestamp": 1.5},
        {"type": "view", "user_id": "1", "context": {"device": "mobile", "country": "DE"}},
        {"type": "click", "user_id": "1", "properties": {"tags": ["a", "b"], "n": 1}},
        {"event_id": 9, "type": "view", "user_id": 42, "item_id": 7, "timestamp": 1_700_000_000},
    ],
)
def test_common_events_take_the_fast_path(raw: dict[str, Any]) -> None:
    fast = plain_event(raw)
    assert fast is not None
    assert_identical(fast, EventIn.model_validate(raw))
    assert plain_events([raw, raw]) == [fast, fast]


def test_the_payload_hashes_never_change() -> None:
    """Stored events keep the hash of their payload: a retry of an event stored by an earlier
    version must hash the same to be answered as a duplicate, not as a conflict. Both forms
    are pinned: the keyed one, and the unkeyed one of events stored before hashes were keyed."""
    fields = PlainEvent(
        type="rate",
        event_id="e1",
        user_id="383",
        item_id="21",
        timestamp=789652009000,
        value=3.0,
        properties={"b": 1, "a": [2]},
    )
    assert PayloadHasher.legacy(fields) == "a02bf7df4dc9785b0617bc51c570861b"
    keyed = PayloadHasher(b"k" * 32)
    assert keyed(fields, fields.properties, fields.context) == "k:b517723a661d9126028aa75373059e"
    assert PayloadHasher(b"j" * 32)(fields, fields.properties, fields.context) != keyed(
        fields, fields.properties, fields.context
    )


def test_the_largest_event_that_skips_the_size_check_is_under_its_bound() -> None:
    """Plain events without documents skip serialization for the size check; the biggest one
    (every id at its longest, in four-byte characters) must stay under the bound that allows it."""
    longest = "\U0001f600" * 128
    raw = {
        "event_id": longest,
        "type": "t" * 64,
        "user_id": longest,
        "anonymous_id": longest,
        "item_id": longest,
        "decision_id": longest,
        "timestamp": " " * 40 + "7258118399.0" + " " * 12,  # the last second before 2200
        "value": -123456789012.34567,
    }
    limits = IngestSettings()
    checked = validate_event(raw, 0, now_ms=7_258_118_399_000, limits=limits)
    assert isinstance(checked, ValidEvent)
    assert len(orjson.dumps(raw)) < PLAIN_EVENT_MAX_BYTES <= limits.max_event_bytes


def test_under_a_small_size_limit_plain_events_are_measured() -> None:
    raw = {"type": "view", "user_id": "u" * 128, "item_id": "i" * 128}
    checked = validate_event(raw, 0, now_ms=0, limits=IngestSettings(max_event_bytes=256))
    assert isinstance(checked, Rejection)
    assert checked.code == "event_too_large"


@pytest.mark.parametrize("timestamp", [1.797693134862316e305, -1e300])
def test_timestamps_too_big_to_scale_are_rejected_not_raised(timestamp: float) -> None:
    raw = {"type": "view", "user_id": "u", "timestamp": timestamp}
    checked = validate_event(raw, 0, now_ms=0, limits=IngestSettings())
    assert isinstance(checked, Rejection)
    assert (checked.code, checked.path) == ("invalid_timestamp", "timestamp")


def test_integer_ids_are_their_decimal_text_on_both_paths() -> None:
    raw = {"event_id": 1, "type": "view", "user_id": 42, "anonymous_id": -3, "item_id": 0}
    fast = plain_event(raw)
    assert fast is not None
    assert (fast.event_id, fast.user_id, fast.anonymous_id, fast.item_id) == ("1", "42", "-3", "0")
    assert PayloadHasher.legacy(fast) == PayloadHasher.legacy(
        EventIn.model_validate({k: str(v) if k != "type" else v for k, v in raw.items()})
    )
    whole_float = EventIn.model_validate({"type": "view", "user_id": 42.0})
    assert whole_float.user_id == "42"
