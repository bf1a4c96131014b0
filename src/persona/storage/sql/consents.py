"""Consent changes: only ever added; a consent book (the history of a set of profiles, with the
users their anonymous ids were linked to) is read in one query."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection

from persona.storage.records import ConsentChange, ConsentEntry
from persona.storage.sql.common import driver_connection, is_sqlite, json_text
from persona.storage.tables import aliases
from persona.storage.tables.privacy import consents

# What ``book`` asks, as plain SQL: ingest asks it once per batch, and building a query with two
# IN lists costs several times running it (and PostgreSQL would parse it anew for each batch's
# number of keys). The consent given under each key, and under the user each anonymous key was
# linked to (both branches use an index); the keys as one parameter each (a JSON array;
# PostgreSQL: an array).
_SQLITE_BOOK = """
SELECT consent_id, profile_key, purpose, status, effective_at_ms, NULL FROM consents
 WHERE profile_key IN (SELECT value FROM json_each(?))
UNION ALL
SELECT c.consent_id, c.profile_key, c.purpose, c.status, c.effective_at_ms, a.alias_key
  FROM aliases a JOIN consents c ON c.profile_key = a.profile_key
 WHERE a.alias_key IN (SELECT value FROM json_each(?))
ORDER BY 1
"""
_POSTGRES_BOOK = """
SELECT consent_id, profile_key, purpose, status, effective_at_ms, NULL FROM consents
 WHERE profile_key = ANY(%s)
UNION ALL
SELECT c.consent_id, c.profile_key, c.purpose, c.status, c.effective_at_ms, a.alias_key
  FROM aliases a JOIN consents c ON c.profile_key = a.profile_key
 WHERE a.alias_key = ANY(%s)
ORDER BY 1
"""

# One person, one purpose: the question every recommendation asks. Plain SQL, built once, since
# building the general query costs more than running it.
_PERSON_PURPOSE = text(
    """
    SELECT consent_id, profile_key, purpose, status, effective_at_ms, NULL AS via
      FROM consents
     WHERE profile_key IN (:user, :anonymous) AND purpose = :purpose
    UNION ALL
    SELECT c.consent_id, c.profile_key, c.purpose, c.status, c.effective_at_ms, a.alias_key
      FROM aliases a JOIN consents c ON c.profile_key = a.profile_key
     WHERE a.alias_key = :anonymous AND c.purpose = :purpose
    ORDER BY consent_id
    """
)

_PERSON_PURPOSE_QMARK = (
    str(_PERSON_PURPOSE)
    .replace("(:user, :anonymous)", "(?, ?)")
    .replace(":anonymous", "?")
    .replace(":purpose", "?")
)


class SqlConsentLog:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, changes: Sequence[ConsentChange]) -> None:
        if changes:
            self._c.execute(insert(consents), [asdict(change) for change in changes])

    def book(self, profile_keys: Collection[str], linked: Collection[str]) -> list[ConsentEntry]:
        if not profile_keys and not linked:
            return []
        if is_sqlite(self._c):
            parameters = (json_text(list(profile_keys)), json_text(list(linked)))
            rows = driver_connection(self._c).execute(_SQLITE_BOOK, parameters)
            return [ConsentEntry._make(row) for row in rows]
        with driver_connection(self._c).cursor() as cursor:  # the keys as two arrays
            cursor.execute(_POSTGRES_BOOK, (list(profile_keys), list(linked)))
            return [ConsentEntry._make(row) for row in cursor]

    def of_person(self, user_key: str, anonymous_key: str, purpose: str) -> list[ConsentEntry]:
        # Read on every recommendation request: straight to the driver on SQLite.
        if is_sqlite(self._c):
            rows = driver_connection(self._c).execute(
                _PERSON_PURPOSE_QMARK, (user_key, anonymous_key, purpose, anonymous_key, purpose)
            )
            return [ConsentEntry._make(row) for row in rows]
        parameters = {"user": user_key, "anonymous": anonymous_key, "purpose": purpose}
        return [ConsentEntry._make(row) for row in self._c.execute(_PERSON_PURPOSE, parameters)]

    def holders(self) -> set[str]:
        with_changes = select(consents.c.profile_key).distinct()
        linked = select(aliases.c.alias_key).where(aliases.c.profile_key.in_(with_changes))
        return {key for (key,) in self._c.execute(with_changes.union(linked))}

    def history(self, profile_keys: Collection[str]) -> list[ConsentChange]:
        t = consents
        rows = self._c.execute(
            select(
                t.c.profile_key,
                t.c.purpose,
                t.c.status,
                t.c.effective_at_ms,
                t.c.source,
                t.c.recorded_at_ms,
            )
            .where(t.c.profile_key.in_(list(profile_keys)))
            .order_by(t.c.consent_id)
        )
        return [ConsentChange(*row) for row in rows]
