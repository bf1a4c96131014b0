"""The two privacy keys: the HMAC key of pseudonyms and the Fernet key of encrypted fields.

Each comes from its setting, or from a file in ``<home>/secrets/`` that is generated on first start
with mode 0600. Losing the pseudonym key only breaks the link between old and new pseudonyms;
losing the encryption key makes encrypted values unreadable (see docs/privacy.md on rotation).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

from persona.privacy.settings import PrivacySettings

SECRETS_DIR = "secrets"


def _key_file(path: Path, generate: bytes) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, generate)
    finally:
        os.close(descriptor)
    return generate


def pseudonym_key(settings: PrivacySettings, home: Path) -> bytes:
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value().encode()
    path = home / SECRETS_DIR / "pseudonym.key"
    return _key_file(path, secrets.token_hex(32).encode())


def encryption_key(settings: PrivacySettings, home: Path) -> bytes:
    if settings.encryption_key is not None:
        return settings.encryption_key.get_secret_value().encode()
    path = home / SECRETS_DIR / "encryption.key"
    return _key_file(path, Fernet.generate_key())
