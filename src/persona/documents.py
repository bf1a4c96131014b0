"""What every id and free-form JSON document a client sends must obey (ids of people, items and
events; properties, context, traits, attributes)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

NO_NUL = r"^[^\x00]*$"
"""The pattern of text a client sends (a description, a rule, a context value): anything but
NUL characters, which PostgreSQL cannot store. Ids and names have stricter patterns."""
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]

MAX_ID_LENGTH = 128
MAX_JSON_DEPTH = 8
MAX_KEY_LENGTH = 256
# The integers a JSON document can hold in a store (what its JSON writer handles).
MIN_INTEGER = -(2**63)
MAX_INTEGER = 2**64 - 1
# A JSON string may escape half of a UTF-16 pair ("\ud800") on its own; Python reads it as a
# code point that no UTF-8 text (so no store) can hold.
_SURROGATES = re.compile("[\ud800-\udfff]")
_SURROGATE_REASON = "contains a lone surrogate escape (half of a UTF-16 pair), which is not text"


def _has_surrogate(text: str) -> bool:
    return not text.isascii() and _SURROGATES.search(text) is not None


ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN),
]
"""An id as text: 1 to 128 characters, no control characters."""

# Every whole number below this is exact in a float; a float beyond it may be a rounded integer
# (a JSON parser reads integers over 64 bits as floats), whose text would name another id.
EXACT_FLOAT_LIMIT = 2**53


def id_text(value: Any) -> Any:
    """The id rule: an id is text; a whole number (a JSON integer, a value of an integer
    column, or a whole value of a float column that has missing values) stands for its decimal
    text, so 42, 42.0 and "42" name the same person. Anything else is returned unchanged, for
    validation to refuse: booleans, numbers with a fraction, floats too big to be exact, NaN,
    objects, lists."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float and value.is_integer() and -EXACT_FLOAT_LIMIT < value < EXACT_FLOAT_LIMIT:
        return str(int(value))
    return value


def _checked_id(value: Any) -> Any:
    value = id_text(value)
    if not isinstance(value, str):
        raise PydanticCustomError("invalid_id", "an id must be a string or a whole number")
    return value


# An id of an event or of a decision request: ``Identifier`` under the id rule (``id_text``).
Id = Annotated[
    Identifier,
    BeforeValidator(_checked_id),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_ID_LENGTH,
                    "pattern": ID_PATTERN,
                },
                {"type": "integer", "description": "stands for its decimal text"},
            ]
        }
    ),
]

MAX_TYPE_LENGTH = 64
EVENT_TYPE_PATTERN = r"^[A-Za-z][A-Za-z0-9_.:-]*$"
EventType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TYPE_LENGTH, pattern=EVENT_TYPE_PATTERN),
]
"""The type of an event (``view``, ``purchase``, or a custom name), wherever one is named."""


def check_json_document(value: dict[str, Any]) -> dict[str, Any]:
    """Bound depth and key length and refuse what no store can keep: NUL characters, lone
    surrogates, numbers that are not finite and integers beyond 64 bits."""

    def visit(node: Any, depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            raise PydanticCustomError(
                "invalid_document", "nested deeper than {max}", {"max": MAX_JSON_DEPTH}
            )
        if isinstance(node, dict):
            for key, child in node.items():
                if len(key) > MAX_KEY_LENGTH:
                    raise PydanticCustomError(
                        "invalid_document",
                        "a key is longer than {max} characters",
                        {"max": MAX_KEY_LENGTH},
                    )
                if "\x00" in key:
                    raise PydanticCustomError("invalid_document", "a key contains a NUL character")
                if _has_surrogate(key):
                    raise PydanticCustomError("invalid_document", f"a key {_SURROGATE_REASON}")
                visit(child, depth + 1)
        elif isinstance(node, list):
            for child in node:
                visit(child, depth + 1)
        elif isinstance(node, str):
            if "\x00" in node:
                raise PydanticCustomError("invalid_document", "a value contains a NUL character")
            if _has_surrogate(node):
                raise PydanticCustomError("invalid_document", f"a value {_SURROGATE_REASON}")
        elif isinstance(node, float) and not math.isfinite(node):
            raise PydanticCustomError("invalid_document", "numbers must be finite")
        elif isinstance(node, int) and not MIN_INTEGER <= node <= MAX_INTEGER:
            raise PydanticCustomError("invalid_document", "an integer is beyond 64 bits")

    visit(value, 1)
    return value
