"""Bounds on the free-form JSON documents clients send (properties, context, traits, attributes)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import StringConstraints
from pydantic_core import PydanticCustomError

NO_NUL = r"^[^\x00]*$"
"""The pattern of text a client sends (a description, a rule, a context value): anything but
NUL characters, which PostgreSQL cannot store. Ids and names have stricter patterns."""
Text = Annotated[str, StringConstraints(pattern=NO_NUL)]

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
