"""API keys: created once (the secret is shown once), stored hashed, checked in constant time.

A key reads ``psk_<key id>_<secret>``. Only a SHA-256 of the secret is stored; a fast hash is
enough because the secret is 256 random bits, not a password. Lookups go by key id, then the
hashes are compared with ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from persona.clock import Clock
from persona.errors import ForbiddenError, NotFoundError, UnauthorizedError
from persona.storage.protocols import Storage
from persona.storage.records import ApiKeyRecord

PREFIX = "psk"
# ``psk_<12 hex>_<43 url-safe characters>`` as ``create`` makes them; anything else is refused
# before any lookup, so a presented key can cost neither a query nor memory.
KEY_SHAPE = re.compile(rf"{PREFIX}_([0-9a-f]{{1,32}})_([A-Za-z0-9_-]{{16,128}})")
KEY_ID_SHAPE = re.compile(r"[0-9a-f]{1,32}")
MAX_KEY_CHARS = 200
MAX_CACHED_KEYS = 10_000


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    DECIDE = "decide"
    MEMBERS = "members"  # who is in a segment: member lists, exports, previews of any rule
    ADMIN = "admin"
    # Safe to ship in a web page: send events and ask for decisions, nothing else. A public
    # key holds no other scope (``ApiKeyService.create``), and no route but those two admits
    # it (docs/security.md).
    PUBLIC = "public"


PUBLIC_ONLY = frozenset({Scope.PUBLIC})
PUBLIC_REFUSED = (
    "a public key may only send events (POST /v1/events) and ask for decisions (POST /v1/decisions)"
)


@dataclass(frozen=True, slots=True)
class AnyScope:
    """What a route that several scopes open needs: a key with any of ``scopes`` (or admin)."""

    scopes: tuple[Scope, ...]

    @property
    def value(self) -> str:
        """The scopes as a ``Scope``'s value reads in the OpenAPI note of an operation, which
        quotes it: `read` or `decide`."""
        return "` or `".join(scope.value for scope in self.scopes)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key id and its scopes (``dev`` in development mode)."""

    key_id: str
    scopes: frozenset[Scope]

    def may(self, scope: Scope) -> bool:
        """Whether this key has ``scope`` (or ``admin``)."""
        return scope in self.scopes or Scope.ADMIN in self.scopes

    @property
    def public(self) -> bool:
        """Whether this is a public key (the one a web page carries)."""
        return self.scopes == PUBLIC_ONLY

    def require(self, scope: Scope | AnyScope) -> None:
        if scope in self.scopes or Scope.ADMIN in self.scopes:
            return
        if isinstance(scope, AnyScope) and not self.scopes.isdisjoint(scope.scopes):
            return
        if self.public:  # the one message a page's developer needs: what the key is for
            raise ForbiddenError(PUBLIC_REFUSED)
        if isinstance(scope, AnyScope):
            names = " or ".join(repr(s.value) for s in scope.scopes)
            raise ForbiddenError(f"this key lacks the {names} scope")
        raise ForbiddenError(f"this key lacks the {scope.value!r} scope")


DEV_PRINCIPAL = Principal("dev", frozenset(Scope))


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key_id: str
    name: str
    scopes: list[str]
    secret: str


KeyAudit = Callable[[str, str, str, dict[str, Any]], None]
"""Called with (actor, action, target, details) after a key is created or revoked."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeyService:
    def __init__(self, storage: Storage, clock: Clock, cache_seconds: float = 5.0) -> None:
        self._storage = storage
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKeyRecord]] = {}
        self._lock = threading.Lock()
        self._audit: KeyAudit | None = None

    def sizes(self) -> dict[str, int]:
        return {"cached": len(self._cache)}

    def set_audit(self, audit: KeyAudit) -> None:
        """Report key creations and revocations to the audit log."""
        self._audit = audit

    def create(self, name: str, scopes: Iterable[Scope]) -> CreatedKey:
        scope_list = sorted({Scope(s).value for s in scopes})
        if not scope_list:
            raise ValueError("a key needs at least one scope")
        if Scope.PUBLIC in scope_list and len(scope_list) > 1:
            # a public key is readable by anyone who opens the page: any other scope on it
            # would be handed to them too
            raise ValueError("a public key holds no other scope")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = ApiKeyRecord(key_id, name, _hash(secret), scope_list, self._clock.now_ms())
        with self._storage.write() as uow:
            uow.keys.add(record)
        if self._audit is not None:
            self._audit("cli", "key.create", f"key:{key_id}", {"name": name, "scopes": scope_list})
        return CreatedKey(key_id, name, scope_list, f"{PREFIX}_{key_id}_{secret}")

    def list(self) -> list[ApiKeyRecord]:
        with self._storage.read() as uow:
            return uow.keys.list()

    def revoke(self, key_id: str) -> None:
        with self._storage.write() as uow:
            if not uow.keys.revoke(key_id, self._clock.now_ms()):
                raise NotFoundError(f"no active key {key_id!r}")
        if self._audit is not None:
            self._audit("cli", "key.revoke", f"key:{key_id}", {})
        with self._lock:
            self._cache.pop(key_id, None)

    def has_active_keys(self) -> bool:
        return any(k.revoked_at_ms is None for k in self.list())

    def authenticate(self, presented: str | None) -> Principal:
        """The principal for a presented key; never echoes the key in an error."""
        if not presented:
            raise UnauthorizedError("an API key is required (Authorization: Bearer <key>)")
        shape = KEY_SHAPE.fullmatch(presented) if len(presented) <= MAX_KEY_CHARS else None
        key_id, secret = shape.groups() if shape else ("", "")
        record = self._lookup(key_id) if shape else None
        expected = record.secret_hash if record else _hash("")
        valid = hmac.compare_digest(_hash(secret), expected)
        if record is None or not valid or record.revoked_at_ms is not None:
            raise UnauthorizedError("the API key is not valid")
        return Principal(record.key_id, frozenset(Scope(s) for s in record.scopes))

    def active(self, key_id: str) -> Principal | None:
        """The principal of a key by its id while the key is not revoked (for a session that
        a key opened, which holds the id and never the secret); looked up as ``authenticate``
        does, so a revocation reaches it within ``cache_seconds``."""
        record = self._lookup(key_id) if KEY_ID_SHAPE.fullmatch(key_id) else None
        if record is None or record.revoked_at_ms is not None:
            return None
        return Principal(record.key_id, frozenset(Scope(s) for s in record.scopes))

    def _lookup(self, key_id: str) -> ApiKeyRecord | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached and now - cached[0] < self._cache_seconds:
            return cached[1]
        with self._storage.read() as uow:
            record = uow.keys.get(key_id)
        if record is not None:  # what failed is never kept: a flood of made-up ids holds nothing
            with self._lock:
                if len(self._cache) > MAX_CACHED_KEYS:
                    self._cache.clear()
                self._cache[key_id] = (now, record)
        return record

    @property
    def cached_keys(self) -> int:
        """How many key lookups are held in memory (only keys that exist)."""
        return len(self._cache)
