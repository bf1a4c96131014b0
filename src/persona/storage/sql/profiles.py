"""Profiles (aggregate states and traits) and the aliases that merge anonymous ids into them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection

from persona.storage import tables
from persona.storage.records import (
    ProfileRecord,
)
from persona.storage.sql.common import (
    chunks,
    document,
    driver_connection,
    is_sqlite,
    json_text,
    upsert_insert,
)

_SQLITE_SAVE_STATES = """
INSERT INTO profiles (profile_key, state, updated_at_ms) VALUES (?, ?, ?)
ON CONFLICT (profile_key) DO UPDATE
SET state = excluded.state, updated_at_ms = excluded.updated_at_ms
"""
# PostgreSQL: every state in one JSON array of [key, state] pairs (see events.py's append).
_POSTGRES_SAVE_STATES = """
INSERT INTO profiles (profile_key, state, updated_at_ms)
SELECT p ->> 0, p -> 1, %s FROM jsonb_array_elements(%s::jsonb) AS p
ON CONFLICT (profile_key) DO UPDATE
SET state = excluded.state, updated_at_ms = excluded.updated_at_ms
"""
# PostgreSQL's reads of a batch's keys: one array parameter (an IN list through SQLAlchemy has
# the driver parse a statement of as many parameters for every batch), documents as text.
_POSTGRES_PROFILES = (
    "SELECT profile_key, state::text, traits::text, updated_at_ms FROM profiles"
    " WHERE profile_key = ANY(%s)"
)
_POSTGRES_ALIAS_LINKS = "SELECT alias_key, profile_key FROM aliases WHERE alias_key = ANY(%s)"
# A batch's merged profiles and new links, under its profile locks: arrays, as the reads above.
_POSTGRES_DELETE = "DELETE FROM profiles WHERE profile_key = ANY(%s)"
_POSTGRES_ADD_ALIASES = """
INSERT INTO aliases (alias_key, profile_key, created_at_ms)
SELECT alias_key, profile_key, %s FROM unnest(%s::text[], %s::text[]) AS l (alias_key, profile_key)
ON CONFLICT (alias_key) DO NOTHING
"""
_SQLITE_PROFILES = (
    "SELECT profile_key, state, traits, updated_at_ms FROM profiles"
    " WHERE profile_key IN (SELECT value FROM json_each(?))"
)
_SQLITE_ALIAS_LINKS = (
    "SELECT alias_key, profile_key FROM aliases WHERE alias_key IN (SELECT value FROM json_each(?))"
)
_SQLITE_ALIASES_OF = "SELECT alias_key FROM aliases WHERE profile_key = ? ORDER BY alias_key"
_SQLITE_ALL_STATES = "SELECT profile_key, {state} FROM profiles ORDER BY profile_key"
_FIELD = re.compile(r"[a-z_][a-z0-9_]*")  # a top-level field of a state, safe to name in SQL


class SqlProfileStore:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def load(self, profile_keys: Sequence[str]) -> dict[str, ProfileRecord]:
        if is_sqlite(self._c):
            rows = driver_connection(self._c).execute(
                _SQLITE_PROFILES, (json_text(list(profile_keys)),)
            )
            return {
                key: ProfileRecord(key, orjson.loads(state), document(traits), updated_at_ms)
                for key, state, traits, updated_at_ms in rows
            }
        with driver_connection(self._c).cursor() as cursor:  # the keys as one array
            cursor.execute(_POSTGRES_PROFILES, (list(profile_keys),))
            return {
                key: ProfileRecord(key, orjson.loads(state), document(traits), updated_at_ms)
                for key, state, traits, updated_at_ms in cursor
            }

    def save_states(self, states: Mapping[str, dict[str, Any]], at_ms: int) -> None:
        if not states:
            return
        if is_sqlite(self._c):
            driver_rows = [(key, json_text(state), at_ms) for key, state in states.items()]
            driver_connection(self._c).executemany(_SQLITE_SAVE_STATES, driver_rows)
            return
        with driver_connection(self._c).cursor() as cursor:
            pairs = orjson.dumps(list(states.items())).decode()
            cursor.execute(_POSTGRES_SAVE_STATES, (at_ms, pairs))

    def set_traits(
        self, profile_key: str, traits: dict[str, Any], empty_state: dict[str, Any], at_ms: int
    ) -> None:
        t = tables.profiles
        statement = upsert_insert(self._c, t).values(
            profile_key=profile_key, state=empty_state, traits=traits, updated_at_ms=at_ms
        )
        statement = statement.on_conflict_do_update(
            index_elements=[t.c.profile_key],
            set_={
                "traits": statement.excluded.traits,
                "updated_at_ms": statement.excluded.updated_at_ms,
            },
        )
        self._c.execute(statement)

    def delete(self, profile_keys: Sequence[str]) -> None:
        if not is_sqlite(self._c):
            with driver_connection(self._c).cursor() as cursor:
                cursor.execute(_POSTGRES_DELETE, (list(profile_keys),))
            return
        t = tables.profiles
        for chunk in chunks(list(profile_keys)):
            self._c.execute(delete(t).where(t.c.profile_key.in_(chunk)))

    def resolve_aliases(self, alias_keys: Sequence[str]) -> dict[str, str]:
        if is_sqlite(self._c):
            ids = json_text(list(alias_keys))
            return dict(driver_connection(self._c).execute(_SQLITE_ALIAS_LINKS, (ids,)).fetchall())
        with driver_connection(self._c).cursor() as cursor:
            cursor.execute(_POSTGRES_ALIAS_LINKS, (list(alias_keys),))
            return dict(cursor.fetchall())

    def add_aliases(self, links: Mapping[str, str], at_ms: int) -> None:
        if not links:
            return
        if not is_sqlite(self._c):
            with driver_connection(self._c).cursor() as cursor:
                cursor.execute(_POSTGRES_ADD_ALIASES, (at_ms, list(links), list(links.values())))
            return
        t = tables.aliases
        statement = upsert_insert(self._c, t).on_conflict_do_nothing(index_elements=[t.c.alias_key])
        self._c.execute(
            statement,
            [{"alias_key": a, "profile_key": p, "created_at_ms": at_ms} for a, p in links.items()],
        )

    def aliases_of(self, profile_key: str) -> list[str]:
        if is_sqlite(self._c):
            rows = driver_connection(self._c).execute(_SQLITE_ALIASES_OF, (profile_key,))
            return [alias for (alias,) in rows]
        t = tables.aliases
        rows = self._c.execute(
            select(t.c.alias_key).where(t.c.profile_key == profile_key).order_by(t.c.alias_key)
        )
        return list(rows.scalars())

    def count(self) -> int:
        return int(self._c.execute(select(func.count()).select_from(tables.profiles)).scalar_one())

    def all_states(
        self, fields: Sequence[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if fields is not None and not all(_FIELD.fullmatch(f) for f in fields):
            raise ValueError(f"not field names of a state: {list(fields)!r}")
        if is_sqlite(self._c):
            # Every profile, for a training: the driver's rows and orjson (SQLAlchemy's row
            # and JSON processing took half of reading a million states). With ``fields``,
            # SQLite's JSON functions cut the state down before Python sees it: a third of
            # the time of decoding the whole state, most of which is the recent items.
            state = "state"
            if fields is not None:
                parts = ", ".join(f"'{f}', json_extract(state, '$.{f}')" for f in fields)
                state = f"json_object({parts})"
            cursor = driver_connection(self._c).execute(_SQLITE_ALL_STATES.format(state=state))
            while rows := cursor.fetchmany(10_000):
                yield from ((key, orjson.loads(state)) for key, state in rows)
            return
        p = tables.profiles
        query = select(p.c.profile_key, p.c.state).order_by(p.c.profile_key)
        rows = self._c.execution_options(yield_per=10_000).execute(query)
        if fields is None:
            yield from ((key, state) for key, state in rows)
        else:
            yield from ((key, {f: state.get(f) for f in fields}) for key, state in rows)
