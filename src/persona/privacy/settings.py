"""Consent, personal data and retention: the settings group ``privacy``
(``PERSONA_PRIVACY__…``; docs/privacy.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from persona.config import SettingsGroup


class PrivacySettings(SettingsGroup):
    """Consent, personal data, retention and exports (docs/privacy.md)."""

    consent_purposes: tuple[str, ...] = Field(
        default=("analytics", "personalization", "marketing"),
        description="Purposes a person can grant or refuse.",
    )
    consent_required: bool = Field(
        default=False,
        description="false: a person without a consent record counts as granted; true: nothing"
        " about a person is used until they grant.",
    )
    unconsented_events: Literal["store", "drop"] = Field(
        default="store",
        description="Events whose purposes are not granted: `store` keeps them aside, unused;"
        " `drop` does not store them.",
    )
    personal_fields: tuple[str, ...] = Field(
        default=(
            "email",
            "email_address",
            "user_email",
            "phone",
            "phone_number",
            "ip",
            "ip_address",
            "ipaddress",
            "client_ip",
            "remote_ip",
            "first_name",
            "last_name",
            "name",
        ),
        description="Keys (any depth, any case) of traits, event properties and context that are"
        " pseudonymized.",
    )
    free_text_fields: tuple[str, ...] = Field(
        default=("page", "url", "href", "referrer", "referer", "user_agent", "query", "search"),
        description="Keys of free text (URLs, user agents) whose e-mail addresses are"
        " pseudonymized.",
    )
    encrypted_fields: tuple[str, ...] = Field(
        default=(), description="Personal keys stored encrypted (recoverable) instead of hashed."
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key of pseudonyms and tombstones; generated into the home when"
        " unset.",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key of encrypted fields; generated into the home when unset.",
    )
    retention_days: dict[str, float] = Field(
        default_factory=dict,
        description='Days events of each type are kept, e.g. `{"view": 365}`; types not named'
        " are kept.",
    )
    retention_interval_seconds: float = Field(
        default=86_400.0,
        ge=0,
        description="How often `persona serve` applies retention (0: never).",
    )
    k_anonymity: int = Field(
        default=10, ge=1, description="Smallest segment whose member list can be exported."
    )
