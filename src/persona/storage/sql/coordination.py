"""What processes on one store tell each other: the change feed and the leases.

Several processes serve one store (``persona serve --workers N``, or a command-line import
beside a server), each with caches of profiles and answers. A commit in one must drop what the
others hold of the people it changed: each write that changes profiles appends their keys to
``changes`` in its own transaction, and every process reads the rows after the last one it saw
a few times a second. The rows are numbered in commit order, so a follower never skips one that
commits late: on SQLite every writer holds the one write lock; on PostgreSQL, where ingest writes
run side by side, each takes a lock of the feed as its last step before the commit
(``storage.PG_FEED_LOCK``), held through the commit.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from persona.storage.tables import changes, leases

CHANGES_KEPT_MS = 60_000  # a follower that falls further behind starts afresh (see ``Change``)
PRUNE_EVERY = 512  # writes between two deletions of old rows


@dataclass(frozen=True)
class Change:
    seq: int
    profile_keys: frozenset[str] | None  # None: a reset (forget everything cached)


def now_ms() -> int:
    return int(time.time() * 1000)


def record(connection: Connection, profile_keys: set[str] | None) -> int:
    """Append one change in the caller's transaction; returns its sequence number."""
    keys = None if profile_keys is None else orjson.dumps(sorted(profile_keys)).decode()
    result = connection.execute(insert(changes).values(at_ms=now_ms(), profile_keys=keys))
    inserted = result.inserted_primary_key
    assert inserted is not None
    seq = int(inserted[0])
    if seq % PRUNE_EVERY == 0:
        connection.execute(delete(changes).where(changes.c.at_ms < now_ms() - CHANGES_KEPT_MS))
    return seq


def forget(connection: Connection, profile_keys: Collection[str]) -> None:
    """Delete every change that names one of these people (they are being erased)."""
    for key in profile_keys:
        # Keys are stored as JSON strings: match the quoted form, never a prefix of another.
        quoted = orjson.dumps(key).decode().replace("\\", "\\\\")
        pattern = "%" + quoted.replace("%", "\\%").replace("_", "\\_") + "%"
        connection.execute(delete(changes).where(changes.c.profile_keys.like(pattern, escape="\\")))


def latest(connection: Connection) -> int:
    return int(connection.execute(select(func.coalesce(func.max(changes.c.seq), 0))).scalar_one())


def after(connection: Connection, seq: int, limit: int) -> tuple[list[Change], bool]:
    """Changes after ``seq``, oldest first, and whether some that followed ``seq`` may have
    been deleted unseen (the caller then forgets everything it cached)."""
    rows = connection.execute(
        select(changes.c.seq, changes.c.profile_keys)
        .where(changes.c.seq > seq)
        .order_by(changes.c.seq)
        .limit(limit)
    ).all()
    found = [
        Change(int(s), None if keys is None else frozenset(orjson.loads(keys))) for s, keys in rows
    ]
    # Numbers follow each other without a gap (SQLite takes back the number of a rolled-back
    # insert; the insert is a writer's last statement, so on PostgreSQL only a failed commit
    # leaves one). A gap means rows were pruned before this process read them, or that rare
    # failed commit: either way the caller forgets everything, which is always correct.
    missed = bool(found) and found[0].seq != seq + 1
    return found, missed


def take_lease(connection: Connection, name: str, holder: str, ttl_ms: int) -> bool:
    """Take or renew the lease ``name`` for ``holder`` when it is free, expired or already
    theirs; True when ``holder`` holds it afterwards."""
    now = now_ms()
    values = {"name": name, "holder": holder, "expires_at_ms": now + ttl_ms}
    dialect = sqlite if connection.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(leases).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"holder": holder, "expires_at_ms": now + ttl_ms},
        where=(leases.c.expires_at_ms < now) | (leases.c.holder == holder),
    )
    connection.execute(statement)
    current = connection.execute(select(leases.c.holder).where(leases.c.name == name))
    return bool(current.scalar_one() == holder)


def release_lease(connection: Connection, name: str, holder: str) -> None:
    connection.execute(delete(leases).where((leases.c.name == name) & (leases.c.holder == holder)))


def holders(connection: Connection, names: Sequence[str]) -> dict[str, str]:
    """The current holders of unexpired leases among ``names``."""
    rows = connection.execute(
        select(leases.c.name, leases.c.holder).where(
            leases.c.name.in_(list(names)) & (leases.c.expires_at_ms >= now_ms())
        )
    )
    return {str(name): str(holder) for name, holder in rows}
