"""Settings are validated once, and unknown PERSONA_* variables are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona.engine import Engine
from persona.settings import (
    FORMER_NAMES,
    Settings,
    SettingsError,
    effective,
    environment_names,
    load_settings,
    reference,
)


def test_defaults_put_everything_in_the_home(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'persona.db'}"
    assert settings.is_sqlite and settings.ingest.max_batch_events == 1000 and not settings.dev_mode


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    monkeypatch.setenv("PERSONA_INGEST__MAX_BATCH_EVENTS", "50")
    monkeypatch.setenv("PERSONA_DATABASE_URL", "postgresql://db/persona")
    settings = load_settings()
    assert (
        settings.home == tmp_path
        and settings.ingest.max_batch_events == 50
        and not settings.is_sqlite
    )


def test_an_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_MAX_BATCH", "50")
    with pytest.raises(SettingsError, match="PERSONA_MAX_BATCH"):
        load_settings()


@pytest.mark.parametrize(
    "overrides",
    [
        {"server": {"port": 0}},
        {"database_url": "mysql://x"},
        {"redis_url": "localhost:6379"},
        {"ingest": {"max_batch_events": 0}},
        {"server": {"log_level": "loud"}},
        {"nonsense": 1},
        {"ingest": {"nonsense": 1}},
        {"predictions": {"cluster_k_min": 5, "cluster_k_max": 3}},
    ],
)
def test_invalid_values_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        load_settings(**overrides)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.dev_mode = True  # type: ignore[misc]
    with pytest.raises(ValueError):
        settings.server.port = 1  # type: ignore[misc]


def test_a_group_setting_comes_from_its_nested_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERSONA_RECOMMEND__BUDGET_MS", "25")
    monkeypatch.setenv("PERSONA_PRIVACY__RETENTION_DAYS", '{"view": 30}')
    settings = load_settings(server={"port": 9001, "host": None})
    assert settings.recommend.budget_ms == 25
    assert settings.privacy.retention_days == {"view": 30}
    # an override of one setting of a group keeps the rest of the group
    assert settings.server.port == 9001 and settings.server.host == "127.0.0.1"


def test_a_former_flat_name_is_refused_with_its_new_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERSONA_RECOMMEND_CACHE_SECONDS", "0")
    with pytest.raises(
        SettingsError,
        match=r"PERSONA_RECOMMEND_CACHE_SECONDS \(now "
        r"PERSONA_RECOMMEND__CACHE_SECONDS\)",
    ):
        load_settings()


def test_every_former_name_points_at_a_setting() -> None:
    names = environment_names()
    assert set(FORMER_NAMES.values()) <= set(names)
    assert not set(FORMER_NAMES) & set(names)


def test_each_group_is_the_config_its_domain_takes(tmp_path: Path) -> None:
    """The composition root hands each group over unchanged: what a domain reads is the
    group the user set."""
    engine = Engine.open(
        load_settings(home=tmp_path, ingest={"max_batch_events": 7}, decisions={"page_cap": 2})
    )
    try:
        assert engine.ingest.limits is engine.settings.ingest
        assert engine.decisions.settings is engine.settings.decisions
        assert engine.ingest.limits.max_batch_events == 7
    finally:
        engine.close()


def test_the_settings_reference_is_the_code() -> None:
    written = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    assert written == reference(), "regenerate: persona settings --reference > docs/settings.md"


def test_the_settings_command_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_PRIVACY__PSEUDONYM_KEY", "s3cret")
    shown = dict(effective(load_settings()))
    assert shown["PERSONA_PRIVACY__PSEUDONYM_KEY"] == "(secret)"
    assert shown["PERSONA_INGEST__MAX_BATCH_EVENTS"] == "1000"
    assert len(shown) == len(environment_names())


def test_the_settings_command_masks_the_passwords_of_urls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERSONA_DATABASE_URL", "postgresql://app:hunter2@db.internal:5432/p")
    monkeypatch.setenv("PERSONA_REDIS_URL", "redis://:hunter2@cache.internal:6379/0")
    shown = dict(effective(load_settings()))
    assert shown["PERSONA_DATABASE_URL"] == "postgresql://app:(secret)@db.internal:5432/p"
    assert shown["PERSONA_REDIS_URL"] == "redis://:(secret)@cache.internal:6379/0"
    monkeypatch.setenv("PERSONA_REDIS_URL", "redis://cache.internal:6379/0")
    assert dict(effective(load_settings()))["PERSONA_REDIS_URL"] == "redis://cache.internal:6379/0"
