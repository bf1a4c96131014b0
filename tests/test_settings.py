"""Settings are validated once, and unknown PERSONA_* variables are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from persona.settings import Settings, SettingsError, load_settings


def test_defaults_put_everything_in_the_home(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'persona.db'}"
    assert settings.is_sqlite and settings.max_batch_events == 1000 and not settings.dev_mode


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERSONA_HOME", str(tmp_path))
    monkeypatch.setenv("PERSONA_MAX_BATCH_EVENTS", "50")
    monkeypatch.setenv("PERSONA_DATABASE_URL", "postgresql://db/persona")
    settings = load_settings()
    assert settings.home == tmp_path and settings.max_batch_events == 50 and not settings.is_sqlite


def test_an_unknown_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_MAX_BATCH", "50")
    with pytest.raises(SettingsError, match="PERSONA_MAX_BATCH"):
        load_settings()


@pytest.mark.parametrize(
    "overrides",
    [
        {"port": 0},
        {"database_url": "mysql://x"},
        {"max_batch_events": 0},
        {"log_level": "loud"},
        {"nonsense": 1},
    ],
)
def test_invalid_values_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(SettingsError):
        load_settings(**overrides)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValueError):
        settings.port = 1  # type: ignore[misc]
