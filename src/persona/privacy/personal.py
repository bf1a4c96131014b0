"""Personal values never reach storage or logs in clear.

A key named in ``personal_fields`` (matched case-insensitively, at any depth of traits, event
properties and context) has its value replaced by a pseudonym, ``ph:`` and an HMAC-SHA256 of the
value under the pseudonym key: equal values still match each other (segments, joins), but the
value cannot be read back. A key also named in ``encrypted_fields`` is encrypted instead
(``enc:`` and a Fernet token) so that an export can return it. IP addresses are truncated first
(IPv4 to /24, IPv6 to /48), so even the hashed value names a network, not a device.

Transforming is idempotent: a value that already carries a prefix is left alone, so a replayed
quarantine entry is not hashed twice.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from persona.identity import split_key

PSEUDONYM = "ph:"
ENCRYPTED = "enc:"
IP_FIELDS = frozenset({"ip", "ip_address", "ipaddress", "client_ip", "remote_ip"})
# An e-mail address inside free text (a URL's query, a user agent): replaced by its pseudonym.
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


def truncate_ip(value: str) -> str:
    """The /24 network of an IPv4 address, the /48 of an IPv6 one; other text unchanged."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return value
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


class PersonalData:
    def __init__(
        self,
        fields: Iterable[str],
        encrypted: Iterable[str],
        hash_key: bytes,
        encryption_key: bytes,
        free_text: Iterable[str] = (),
    ) -> None:
        self.free_text = frozenset(f.lower() for f in free_text)
        self.encrypted = frozenset(f.lower() for f in encrypted)
        self.fields = frozenset(f.lower() for f in fields) | self.encrypted
        self._hash_key = hash_key
        self._fernet = Fernet(encryption_key)
        names = "|".join(re.escape(f) for f in sorted(self.fields | IP_FIELDS))
        # "field": "value" pairs in text that is not JSON (a malformed line kept in quarantine)
        self._pair = re.compile(rf'("(?:{names})"\s*:\s*)"((?:[^"\\]|\\.)*)"', re.IGNORECASE)

    def pseudonym(self, value: str) -> str:
        digest = hmac.new(self._hash_key, value.encode(), hashlib.sha256).hexdigest()
        return PSEUDONYM + digest

    def id_hash(self, value: str) -> str:
        """The keyed hash of an id (tombstones, audit targets), without the prefix."""
        return hmac.new(self._hash_key, b"id:" + value.encode(), hashlib.sha256).hexdigest()

    def derived_key(self, purpose: bytes) -> bytes:
        """A key of its own for ``purpose``, derived from the pseudonym key (HMAC-SHA256)."""
        return hmac.new(self._hash_key, b"key:" + purpose, hashlib.sha256).digest()

    def tombstone_hashes(self, profile_key: str) -> list[str]:
        """The tombstones that mark a profile key erased: the hash of the key, and the hash of
        the bare id that tombstones written before ids had namespaces hold (such a tombstone
        refuses the id in both namespaces)."""
        return [self.id_hash(profile_key), self.id_hash(split_key(profile_key)[1])]

    def decrypt(self, document: Any) -> Any:
        """``document`` with encrypted values readable again (exports)."""
        if isinstance(document, dict):
            return {k: self.decrypt(v) for k, v in document.items()}
        if isinstance(document, list):
            return [self.decrypt(v) for v in document]
        if isinstance(document, str) and document.startswith(ENCRYPTED):
            try:
                return orjson.loads(self._fernet.decrypt(document[len(ENCRYPTED) :].encode()))
            except (InvalidToken, orjson.JSONDecodeError):
                return document
        return document

    def needs_scrub(self, document: dict[str, Any] | None) -> bool:
        """Cheap test for the common case: no personal key anywhere in ``document``."""
        if not document:
            return False
        for key, value in document.items():
            lowered = key.lower()
            if lowered in self.fields or lowered in IP_FIELDS:
                return True
            if lowered in self.free_text and isinstance(value, str) and "@" in value:
                return True
            if isinstance(value, dict | list) and self._nested(value):
                return True
        return False

    def _nested(self, value: Any) -> bool:
        if isinstance(value, dict):
            return self.needs_scrub(value)
        if isinstance(value, list):
            return any(self._nested(v) for v in value)
        return False

    def scrub(self, document: dict[str, Any] | None) -> dict[str, Any] | None:
        if document is None or not self.needs_scrub(document):
            return document
        return {k: self._value(k.lower(), v) for k, v in document.items()}

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(value, dict):
            if key in self.fields:  # everything under a personal key is personal
                return {k: self._value(key, v) for k, v in value.items()}
            return {k: self._value(k.lower(), v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(key, v) for v in value]
        if key in IP_FIELDS and isinstance(value, str):
            value = truncate_ip(value)
        if key in self.free_text and isinstance(value, str) and "@" in value:
            return EMAIL.sub(lambda match: self.pseudonym(match.group(0)), value)
        if key not in self.fields or value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.startswith((PSEUDONYM, ENCRYPTED)):
            return value
        if key in self.encrypted:
            return ENCRYPTED + self._fernet.encrypt(orjson.dumps(value)).decode()
        return self.pseudonym(value if isinstance(value, str) else orjson.dumps(value).decode())

    def scrub_raw(self, raw: str) -> str:
        """The text of a quarantined event with its personal values transformed too."""
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._pair.sub(self._scrub_pair, raw)
        if isinstance(parsed, dict):
            if not self._nested(parsed):
                return raw
            return orjson.dumps(self._value("", parsed)).decode()
        if isinstance(parsed, list) and self._nested(parsed):
            return orjson.dumps(self._value("", parsed)).decode()
        return raw

    def _scrub_pair(self, match: re.Match[str]) -> str:
        key = match.group(1).split('"')[1].lower()
        value = match.group(2)
        return f"{match.group(1)}{orjson.dumps(self._value(key, value)).decode()}"
