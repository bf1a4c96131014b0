"""What every id and free-form JSON document a client sends must obey (ids of people, items and
events; properties, context, traits, attributes)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import StringConstraints
from pydantic_core import PydanticCustomError

MAX_ID_LENGTH = 128
MAX_JSON_DEPTH = 8
MAX_KEY_LENGTH = 256

Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
"""An id a client sends: 1 to 128 characters, no control characters."""


def check_json_document(value: dict[str, Any]) -> dict[str, Any]:
    """Bound depth and key length and refuse NUL characters, which no store can keep."""

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
                visit(child, depth + 1)
        elif isinstance(node, list):
            for child in node:
                visit(child, depth + 1)
        elif isinstance(node, str):
            if "\x00" in node:
                raise PydanticCustomError("invalid_document", "a value contains a NUL character")
        elif isinstance(node, float) and not math.isfinite(node):
            raise PydanticCustomError("invalid_document", "numbers must be finite")

    visit(value, 1)
    return value
