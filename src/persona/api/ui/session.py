"""Dashboard sessions: a signed cookie that names the key that signed in, and the CSRF token
tied to it (docs/ui.md).

The cookie holds the key's id, an expiry and a random nonce, signed with HMAC-SHA256 under a
secret generated once into ``<home>/secrets/ui-session.key`` (mode 0600), which every server
process of the home shares. It never holds the key's secret: each request looks the key up by
id, so a revoked key ends its sessions (within ``access.key_cache_seconds``). The CSRF token of
a session is an HMAC of its nonce under the same secret: a page gets it with the session, a
form sends it back, and a site elsewhere can neither read nor compute it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson

COOKIE = "persona_ui"
SESSION_SECONDS = 8 * 3600
SECRET_FILE = Path("secrets") / "ui-session.key"
MAX_COOKIE_CHARS = 512  # what ``issue`` writes is about 150; anything longer is not ours


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str  # "dev" in development mode
    expires_at_s: int  # Unix seconds
    nonce: str


def session_secret(home: Path) -> bytes:
    """The signing secret of the home's sessions, generated on first use.

    Written to a temporary file and linked into place, so that processes starting together
    all read the one secret that won, never a half-written file."""
    path = home / SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, secrets.token_hex(32).encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(staging, path)
    except FileExistsError:
        pass  # another process was first: its secret is the one
    finally:
        staging.unlink()
    return path.read_bytes().strip()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens."""

    def __init__(self, secret: bytes, lifetime_seconds: int = SESSION_SECONDS) -> None:
        self._secret = secret
        self.lifetime_seconds = lifetime_seconds

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\x00" + data, hashlib.sha256).digest()

    def issue(self, key_id: str, now_s: int) -> tuple[Session, str]:
        """A new session of ``key_id`` and its cookie value."""
        session = Session(key_id, now_s + self.lifetime_seconds, secrets.token_urlsafe(16))
        payload = orjson.dumps({"k": key_id, "e": session.expires_at_s, "n": session.nonce})
        return session, f"{_encode(payload)}.{_encode(self._mac(b'session', payload))}"

    def read(self, value: str | None, now_s: int) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged or expired."""
        if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
            return None
        encoded, signature = value.split(".")
        try:
            payload, mac = _decode(encoded), _decode(signature)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(mac, self._mac(b"session", payload)):
            return None
        try:
            fields = orjson.loads(payload)
            session = Session(str(fields["k"]), int(fields["e"]), str(fields["n"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        return session if session.expires_at_s > now_s else None

    def csrf_token(self, session: Session) -> str:
        return _encode(self._mac(b"csrf", session.nonce.encode()))

    def csrf_matches(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(
            (token or "").encode(), self.csrf_token(session).encode()
        )
