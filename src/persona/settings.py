"""Settings, validated once at start-up.

The settings are a few top-level values (where the data lives, dev mode) and one group per part
of persona; each domain declares its own group (``persona.ingest.IngestSettings`` …) and the
composition root hands each group to its domain. Every setting can come from an environment
variable: ``PERSONA_<NAME>`` at the top level, ``PERSONA_<GROUP>__<NAME>`` inside a group
(``PERSONA_INGEST__MAX_BATCH_EVENTS=500``). A ``PERSONA_*`` variable that names no setting is
refused, so a typo never silently falls back to a default; one that names a setting under its
former, flat name is refused with its new name.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from persona.access import AccessSettings
from persona.config import SettingsGroup
from persona.decide import DecisionSettings
from persona.ingest import IngestSettings
from persona.predictions import PredictionSettings
from persona.privacy import PrivacySettings
from persona.profiles import ProfileSettings
from persona.recommend import RecommendSettings
from persona.segments import SegmentSettings
from persona.stream import StreamSettings

ENV_PREFIX = "PERSONA_"
NESTED = "__"
ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")  # what a browser sends as Origin


class SettingsError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


class ServerSettings(SettingsGroup):
    """The HTTP server of `persona serve`."""

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Logs are JSON lines on stderr."
    )
    max_body_bytes: int = Field(
        default=5 * 1024 * 1024, ge=1024, description="Larger request bodies get 413."
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Larger request headers (names and values together) get 431.",
    )
    head_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a request line and its headers may take to arrive; a slower"
        " client's connection is closed.",
    )
    body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="How long a request body may take to arrive from its first byte (408).",
    )
    workers: int = Field(
        default=0,
        ge=0,
        le=256,
        description="Server processes sharing the port; 0: one per core.",
    )
    jobs_lease_seconds: float = Field(
        default=10.0,
        ge=1.0,
        description="The background jobs run in one process, which renews a lease this long;"
        " when it dies, another takes over once the lease expires.",
    )
    worker_threads: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Threads for blocking request work (more than a few per core only queue).",
    )
    cors_origins: tuple[str, ...] = Field(
        default=(),
        description="Web origins (scheme://host[:port], a JSON list) whose pages may call the API"
        " from a browser; none by default.",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is no origin (scheme://host[:port], no path)")
        return origins


class Settings(BaseSettings):
    """Everything the engine can be told, with safe defaults for a single machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="forbid", frozen=True
    )

    home: Path = Field(default=Path(".persona"), description="Data directory of the engine.")
    database_url: str | None = Field(
        default=None,
        description="Default: a SQLite file in the home; postgresql://… selects PostgreSQL.",
    )
    dev_mode: bool = Field(
        default=False, description="Serve without API keys (never in production)."
    )
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = Field(
        default="FULL",
        description="FULL survives a power cut; NORMAL survives a process crash only.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis://… shares fast state among the API processes: per-key rate limits"
        " then hold across them (default: each process keeps its own), the lease that elects"
        " the process running the background jobs lives there (default: in the store), and"
        " rendered profiles and recommendation answers are shared (besides each process's own"
        " caches).",
    )
    stream_url: str | None = Field(
        default=None,
        description="redis://… publishes committed changes (events, segment changes,"
        " decisions, erasures) on a Redis stream, which `persona worker` consumes (the event"
        " lake, webhooks); set it on every process of the store.",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    profiles: ProfileSettings = Field(default_factory=ProfileSettings)
    recommend: RecommendSettings = Field(default_factory=RecommendSettings)
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)
    predictions: PredictionSettings = Field(default_factory=PredictionSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    stream: StreamSettings = Field(default_factory=StreamSettings)

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _check_urls(self) -> Settings:
        url = self.database_url
        if url is not None and not url.startswith(("sqlite://", "postgresql://", "postgresql+")):
            raise ValueError("database_url must start with sqlite:// or postgresql://")
        for name in ("redis_url", "stream_url"):
            redis = getattr(self, name)
            if redis is not None and not redis.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(f"{name} must start with redis://, rediss:// or unix://")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'persona.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


def _groups() -> Iterator[tuple[str, type[BaseModel]]]:
    for name, field in Settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, SettingsGroup):
            yield name, field.annotation


def _prefix(group: str | None) -> str:
    """What the variables of a group's settings begin with (the top level's: ``None``)."""
    return ENV_PREFIX if group is None else f"{ENV_PREFIX}{group}{NESTED}"


def environment_names() -> dict[str, str]:
    """Every setting's environment variable, by its dotted name (``ingest.max_batch_events``)."""
    groups = dict(_groups())
    names = {name: f"{_prefix(None)}{name}".upper() for name in Settings.model_fields}
    for group, model in groups.items():
        del names[group]
        names |= {f"{group}.{n}": f"{_prefix(group)}{n}".upper() for n in model.model_fields}
    return names


def _shown(value: object) -> str:
    if isinstance(value, SecretStr):
        return "(secret)"
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value)
    return json.dumps(value, default=list) if not isinstance(value, str) else _unsecret(value)


def _unsecret(value: str) -> str:
    """A URL with its password masked (the database's and Redis's may carry one)."""
    parts = urlsplit(value)
    if not parts.password:
        return value
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:(secret)@{host}"))


def _rows(model: BaseModel, prefix: str) -> Iterator[tuple[str, str, str]]:
    """(variable, value, meaning) of each plain setting of a model or group."""
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if not isinstance(value, SettingsGroup):
            yield f"{prefix}{name}".upper(), _shown(value), field.description or ""


def _sections(settings: Settings) -> Iterator[tuple[str, BaseModel, str]]:
    """(title, model, variable prefix): the top level, then each group."""
    yield "Top level", settings, _prefix(None)
    for name, _ in _groups():
        yield f"`{name}`", getattr(settings, name), _prefix(name)


def effective(settings: Settings) -> list[tuple[str, str]]:
    """Each setting's variable and the value in effect (secrets masked)."""
    return [
        (variable, value)
        for _, model, prefix in _sections(settings)
        for variable, value, _ in _rows(model, prefix)
    ]


def reference() -> str:
    """docs/settings.md: every setting with its variable, default and meaning."""
    lines = [
        "# Settings",
        "",
        "<!-- Written by `persona settings --reference`; a test keeps it equal to the code. -->",
        "",
        "Every setting comes from an environment variable, read and validated once at start-up.",
        "Top-level settings are `PERSONA_<NAME>`; the others belong to a group, one per part of",
        "persona, and are `PERSONA_<GROUP>__<NAME>` (two underscores). Lists and maps are JSON.",
        "A `PERSONA_*` variable that names no setting is refused; one that uses a setting's",
        "former flat name is refused with its new name. `persona settings` prints the values in",
        "effect.",
    ]
    defaults = Settings(home=Path(".persona"))
    for title, model, prefix in _sections(defaults):
        lines += ["", f"## {title}", ""]
        if model is not defaults and type(model).__doc__:
            lines += [" ".join((type(model).__doc__ or "").split()), ""]
        lines += ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
        for variable, value, meaning in _rows(model, prefix):
            shown = f"`{value}`" if value else "(unset)"
            lines.append(f"| `{variable}` | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"


# Flat names of settings that moved into a group (0.1), so an old environment gets told where.
FORMER_NAMES: dict[str, str] = {
    "host": "server.host",
    "port": "server.port",
    "log_level": "server.log_level",
    "max_body_bytes": "server.max_body_bytes",
    "worker_threads": "server.worker_threads",
    "api_key_cache_seconds": "access.key_cache_seconds",
    "rate_limit_per_second": "access.rate_limit_per_second",
    "rate_limit_burst": "access.rate_limit_burst",
    "max_batch_events": "ingest.max_batch_events",
    "max_event_bytes": "ingest.max_event_bytes",
    "future_tolerance_seconds": "ingest.future_tolerance_seconds",
    "session_gap_seconds": "profiles.session_gap_seconds",
    "affinity_half_life_days": "profiles.affinity_half_life_days",
    "recent_items_limit": "profiles.recent_items_limit",
    "event_weights": "profiles.event_weights",
    "purchase_event_types": "profiles.purchase_event_types",
    "profile_cache_seconds": "profiles.cache_seconds",
    "profile_cache_entries": "profiles.cache_entries",
    "recommend_budget_ms": "recommend.budget_ms",
    "recommend_cache_seconds": "recommend.cache_seconds",
    "recommend_cache_entries": "recommend.cache_entries",
    "retrain_interval_seconds": "recommend.retrain_interval_seconds",
    "segment_refresh_seconds": "segments.refresh_seconds",
    "decision_page_cap": "decisions.page_cap",
    "attribution_window_hours": "decisions.attribution_window_hours",
    "cluster_k_min": "predictions.cluster_k_min",
    "cluster_k_max": "predictions.cluster_k_max",
    "cluster_silhouette_sample": "predictions.cluster_silhouette_sample",
    "prediction_fit_cutoffs": "predictions.fit_cutoffs",
    "predictions_retrain_seconds": "predictions.retrain_interval_seconds",
    "consent_purposes": "privacy.consent_purposes",
    "consent_required": "privacy.consent_required",
    "unconsented_events": "privacy.unconsented_events",
    "personal_fields": "privacy.personal_fields",
    "encrypted_fields": "privacy.encrypted_fields",
    "pseudonym_key": "privacy.pseudonym_key",
    "encryption_key": "privacy.encryption_key",
    "retention_days": "privacy.retention_days",
    "retention_interval_seconds": "privacy.retention_interval_seconds",
    "k_anonymity": "privacy.k_anonymity",
}


# Not a setting: `persona serve` tells its workers which process supervises them.
SUPERVISOR_PID = f"{ENV_PREFIX}SUPERVISOR_PID"


def unknown_environment_keys(environ: dict[str, str] | None = None) -> list[str]:
    """``PERSONA_*`` variables that name no setting, each with its new name if it moved."""
    env = os.environ if environ is None else environ
    names = environment_names()
    known = set(names.values()) | {f"{ENV_PREFIX}{group}".upper() for group, _ in _groups()}
    known.add(SUPERVISOR_PID)
    unknown = []
    for key in sorted(env):
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        moved = FORMER_NAMES.get(upper.removeprefix(ENV_PREFIX).lower())
        unknown.append(f"{key} (now {names[moved]})" if moved else key)
    return unknown


def _given(overrides: dict[str, object]) -> dict[str, object]:
    """The overrides that say something: ``None`` (an option not passed) leaves the setting."""
    given: dict[str, object] = {}
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = _given(value)
        if value is not None and value != {}:
            given[key] = value
    return given


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment plus explicit overrides (a group's overrides as
    a dict, ``server={"port": 9000}``, merged with the rest of the group), refusing unknown
    keys."""
    unknown = unknown_environment_keys()
    if unknown:
        raise SettingsError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
    try:
        return Settings(**_given(overrides))  # type: ignore[arg-type]
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
