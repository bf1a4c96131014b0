"""Profile keys: how persona names a person in every store.

A person is known by a user id (a customer number, an account) or, before they sign in, by an
anonymous id (a cookie, a device). Both live in one key space with a prefix each, so the same
string used as a user id and as an anonymous id names two different people: ``u:42`` and
``a:42``. Every store keys people this way; nothing compares bare ids across the two kinds.
"""

from __future__ import annotations

from typing import Literal

USER = "u:"
ANONYMOUS = "a:"
Kind = Literal["user", "anonymous"]


def user_key(user_id: str) -> str:
    return USER + user_id


def anonymous_key(anonymous_id: str) -> str:
    return ANONYMOUS + anonymous_id


def key_of(kind: Kind, person_id: str) -> str:
    """The profile key of a user id or an anonymous id."""
    return (USER if kind == "user" else ANONYMOUS) + person_id


def is_user_key(profile_key: str) -> bool:
    return profile_key.startswith(USER)


def split_key(profile_key: str) -> tuple[Kind, str]:
    """``("user", "42")`` for ``u:42``, ``("anonymous", "x")`` for ``a:x``."""
    if profile_key.startswith(USER):
        return "user", profile_key[len(USER) :]
    if profile_key.startswith(ANONYMOUS):
        return "anonymous", profile_key[len(ANONYMOUS) :]
    raise ValueError(f"not a profile key: {profile_key!r}")
