"""Settings, validated once at start-up.

The settings are a few top-level values (where the data lives, dev mode) and one group per part
of persona; each domain declares its own group (``persona.ingest.IngestSettings`` …) and the
composition root hands each group to its domain. Every setting can come from an environment
variable: ``PERSONA_<NAME>`` at the top level, ``PERSONA_<GROUP>__<NAME>`` inside a group
(``PERSONA_INGEST__MAX_BATCH_EVENTS=500``). A ``PERSONA_*`` variable that names no setting is
refused, so a typo never silently falls back to a default; one that names a setting under its
former, flat name is refused with its new name.

The same settings can be written in a TOML file (``persona.toml`` in the home, or the file
``--config``/``PERSONA_CONFIG`` names): top-level keys for the top-level settings, a table per
group (``[ingest]``). The environment overrides the file, explicit overrides (command-line
options) override both, and a key of the file that names no setting is refused like a variable.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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
DEFAULT_HOME = Path(".persona")
SETTINGS_FILE_NAME = "persona.toml"  # in the home, unless --config names another file
CONFIG_VARIABLE = f"{ENV_PREFIX}CONFIG"  # not a setting: the settings file to read


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
    warmup_seconds: float = Field(
        default=1.0,
        ge=0.0,
        description="At start, wait up to this long for the start-up work (every person's"
        " shortlist checked against the store) before taking requests, so that the first ones"
        " do not share the cores with it; a larger store becomes ready first and finishes it"
        " in the background.",
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
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Also serve the Prometheus metrics on this port, at /metrics and without an"
        " API key (on the host's address; 0: off); with several processes, their sum"
        " (docs/operations.md).",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is no origin (scheme://host[:port], no path)")
        return origins

    @model_validator(mode="after")
    def _two_ports(self) -> ServerSettings:
        if self.metrics_port == self.port:
            raise ValueError("metrics_port must differ from port")
        return self


class Settings(BaseSettings):
    """Everything the engine can be told, with safe defaults for a single machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="forbid", frozen=True
    )

    home: Path = Field(default=DEFAULT_HOME, description="Data directory of the engine.")
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment, then the settings file ``load_settings``
        found (none when the settings are built directly)."""
        found = _READING.get()
        if found is None:
            return init_settings, env_settings
        return init_settings, env_settings, SettingsFileSource(settings_cls, found)

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


def _group_fields() -> dict[str | None, set[str]]:
    """The plain settings of the top level (``None``) and of each group, by name."""
    groups = dict(_groups())
    fields: dict[str | None, set[str]] = {None: set(Settings.model_fields) - set(groups)}
    fields |= {group: set(model.model_fields) for group, model in groups.items()}
    return fields


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
    """A URL with its password masked (the database's and Redis's may carry one, after the
    user name or as a ``password`` parameter)."""
    parts = urlsplit(value)
    if "password=" in parts.query:
        query = [(k, "(secret)" if k == "password" else v) for k, v in parse_qsl(parts.query)]
        parts = parts._replace(query=urlencode(query, safe="()/:"))
    if parts.password:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:(secret)@{host}")
    return urlunsplit(parts)


SECRET_NAME = re.compile(r"(^|_)(key|password|secret|token)$")  # pseudonym_key, not key_cache_…

MASK = "(secret)"


def masked(name: str, value: object) -> object:
    """A setting's value as it may be shown: a secret (a ``SecretStr``, or a name that says
    key, password, secret or token) as ``(secret)``, the password of a URL masked, the rest
    as plain JSON-like values (paths as text, tuples as lists)."""
    if value is None:
        return None
    if isinstance(value, SecretStr) or (SECRET_NAME.search(name) and not isinstance(value, bool)):
        return MASK
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return _unsecret(value)
    if isinstance(value, tuple | list):
        return [masked(name, v) for v in value]
    if isinstance(value, dict):
        return {str(k): masked(name, v) for k, v in value.items()}
    return value


def effective_values(settings: Settings) -> dict[str, Any]:
    """Every setting in effect, laid out as a settings file (the top level's, then a table per
    group), secrets masked (``masked``)."""
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SettingsGroup):
            values[name] = {
                key: masked(key, getattr(value, key)) for key in type(value).model_fields
            }
        else:
            values[name] = masked(name, value)
    return values


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
        "Every setting comes from an environment variable or a settings file (below), read and",
        "validated once at start-up. Top-level settings are `PERSONA_<NAME>`; the others belong",
        "to a group, one per part of persona, and are `PERSONA_<GROUP>__<NAME>` (two",
        "underscores). Lists and maps are JSON.",
        "A `PERSONA_*` variable that names no setting is refused; one that uses a setting's",
        "former flat name is refused with its new name. `persona settings` prints the values in",
        "effect.",
        "",
        "The same settings can be written in a TOML file: `persona.toml` in the home, or the",
        "file `--config PATH` (or `PERSONA_CONFIG`) names. Top-level settings are top-level",
        "keys; a group's are the keys of its table (`[server]`, `[ingest]` …). Lists and maps",
        "are TOML arrays and tables:",
        "",
        "```toml",
        'database_url = "postgresql://persona@db.internal/persona"',
        "",
        "[server]",
        'host = "0.0.0.0"',
        "workers = 4",
        "metrics_port = 9100",
        "",
        "[profiles.event_weights]",
        "view = 1.0",
        "purchase = 8.0",
        "```",
        "",
        "The environment overrides the file, and a command-line option (`persona serve --port`)",
        "overrides both; a map given by a variable replaces the file's whole. A key that names",
        "no setting is refused with the file's name, and so is a file that is not valid TOML",
        "(with the line). `home` may be set only in a file named by `--config`, since",
        "`persona.toml` is found through the home. `persona config show` prints every value in",
        "effect as TOML (`--json` for JSON), secrets masked, each with where it came from:",
        "`default`, `file`, `environment` or `option`.",
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
    known.add(CONFIG_VARIABLE)
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


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Build the settings from the settings file, the environment and explicit overrides (a
    group's overrides as a dict, ``server={"port": 9000}``, merged with the rest of the group),
    refusing unknown keys. The file is ``config_file`` (``--config``), else the one
    ``PERSONA_CONFIG`` names, else ``persona.toml`` in the home if there is one."""
    unknown = unknown_environment_keys()
    if unknown:
        raise SettingsError(f"unknown setting(s) in the environment: {', '.join(unknown)}")
    given = _given(overrides)
    found = settings_file(config_file, given.get("home"))
    reading = _READING.set(found)
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except SettingsError:
        raise
    except ValueError as exc:
        message = str(exc)
        if found is not None and isinstance(exc, ValidationError):
            origins = setting_origins(config_file, **overrides)
            from_file = sorted(
                {
                    name
                    for error in exc.errors()
                    for name in [".".join(str(part) for part in error["loc"][:2])]
                    if origins.get(name) == "file"
                }
            )
            if from_file:
                message += f"\n({', '.join(from_file)} from {found.path})"
        raise SettingsError(message) from exc
    finally:
        _READING.reset(reading)


@dataclass(frozen=True)
class FoundSettingsFile:
    """The settings file ``load_settings`` reads."""

    path: Path
    in_home: bool  # found in the home (rather than named by --config or PERSONA_CONFIG)


# The file being read, for ``Settings.settings_customise_sources`` (pydantic-settings calls it
# with the class alone): set by ``load_settings`` around the one construction that reads it.
_READING: ContextVar[FoundSettingsFile | None] = ContextVar("settings_file", default=None)


def _variable(environ: Mapping[str, str], name: str) -> str | None:
    """An environment variable by name, in any case (as pydantic-settings reads them)."""
    for key, value in environ.items():
        if key.upper() == name:
            return value
    return None


def settings_file(
    config_file: Path | None = None,
    home: object = None,
    environ: Mapping[str, str] | None = None,
) -> FoundSettingsFile | None:
    """The settings file to read: ``config_file``, else the one ``PERSONA_CONFIG`` names (each
    must exist), else ``persona.toml`` in the home (``home``, else ``PERSONA_HOME``, else the
    default) if it exists."""
    env = os.environ if environ is None else environ
    named = config_file or _variable(env, CONFIG_VARIABLE)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise SettingsError(f"the settings file {path} does not exist")
        return FoundSettingsFile(path, in_home=False)
    where = home or _variable(env, environment_names()["home"]) or DEFAULT_HOME
    path = Path(str(where)).expanduser() / SETTINGS_FILE_NAME
    return FoundSettingsFile(path, in_home=True) if path.is_file() else None


def read_settings_file(found: FoundSettingsFile) -> dict[str, Any]:
    """The file's settings as a dict (a table per group), refusing a file that is not TOML
    and keys that name no setting."""
    try:
        with found.path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{found.path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"the settings file {found.path} cannot be read: {exc}") from None
    unknown = unknown_file_keys(data)
    if found.in_home and "home" in data:
        unknown.append("home (set the home in a file given by --config or PERSONA_CONFIG)")
    if unknown:
        raise SettingsError(f"unknown setting(s) in {found.path}: {', '.join(unknown)}")
    return data


def unknown_file_keys(data: Mapping[str, Any]) -> list[str]:
    """Keys of a settings file that name no setting (dotted inside a group's table), each
    with its new place if it is a former flat name."""
    fields = _group_fields()
    unknown = []
    for key, value in data.items():
        if key in fields:
            if not isinstance(value, dict):
                unknown.append(f"{key} (a group: write it as a table, [{key}])")
                continue
            unknown += [f"{key}.{name}" for name in value if name not in fields[key]]
        elif key not in fields[None]:
            moved = FORMER_NAMES.get(key)
            unknown.append(f"{key} (now {moved})" if moved else key)
    return unknown


def environment_settings(environ: Mapping[str, str] | None = None) -> set[str]:
    """Dotted names of the settings the environment gives (a group's variable holding a JSON
    object gives the settings it names)."""
    env = os.environ if environ is None else environ
    by_variable = {variable: name for name, variable in environment_names().items()}
    group_variables = {f"{ENV_PREFIX}{group}".upper(): group for group, _ in _groups()}
    given = set()
    for key, value in env.items():
        upper = key.upper()
        if upper in by_variable:
            given.add(by_variable[upper])
        elif upper in group_variables:
            try:
                parsed = json.loads(value)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                given |= {f"{group_variables[upper]}.{name}" for name in parsed}
    return given


def _without(data: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """``data`` (a settings file's) without the settings named ``names`` (dotted)."""
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in Settings.model_fields:
            value = {k: v for k, v in value.items() if f"{key}.{k}" not in names}
        if key not in names:
            kept[key] = value
    return kept


class SettingsFileSource(TomlConfigSettingsSource):
    """A settings file as a source of pydantic-settings, below the environment.

    pydantic-settings merges its sources key by key, down into maps: a map setting given both
    here and by a variable would come out as the union of the two. The settings the
    environment gives are dropped from the file instead, so a variable replaces a value whole.
    """

    def __init__(self, settings_cls: type[BaseSettings], found: FoundSettingsFile) -> None:
        self.found = found  # before the parent's constructor, which reads the file
        super().__init__(settings_cls, toml_file=found.path)

    def _read_file(self, path: Path | Traversable) -> dict[str, Any]:
        return _without(read_settings_file(self.found), environment_settings())


Origin = Literal["default", "file", "environment", "option"]


def setting_origins(config_file: Path | None = None, **overrides: object) -> dict[str, Origin]:
    """Where each setting in effect comes from, by dotted name (``server.port``): an explicit
    override (``option``), the environment, the settings file, or its default. For the same
    arguments as a ``load_settings`` call that succeeded."""
    given = _given(overrides)
    found = settings_file(config_file, given.get("home"))
    in_file = read_settings_file(found) if found is not None else {}
    from_environment = environment_settings()
    origins: dict[str, Origin] = {}
    for group, names in _group_fields().items():
        explicit = given if group is None else given.get(group, {})
        written = in_file if group is None else in_file.get(group, {})
        for name in sorted(names):
            dotted = name if group is None else f"{group}.{name}"
            if isinstance(explicit, dict) and name in explicit:
                origins[dotted] = "option"
            elif dotted in from_environment:
                origins[dotted] = "environment"
            elif isinstance(written, dict) and name in written:
                origins[dotted] = "file"
            else:
                origins[dotted] = "default"
    return origins
