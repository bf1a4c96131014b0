"""Settings in a TOML file: the home's persona.toml or the one --config names, below the
environment and the command line, with unknown keys and broken files refused, and
`persona config show` printing what is in effect with secrets masked."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from persona.cli import main
from persona.cli.main import app
from persona.engine import Engine
from persona.settings import (
    SETTINGS_FILE_NAME,
    SettingsError,
    effective_values,
    load_settings,
    setting_origins,
)

runner = CliRunner()

FILE = """\
sqlite_synchronous = "NORMAL"

[server]
host = "0.0.0.0"
port = 9000
workers = 3

[ingest]
max_batch_events = 250

[profiles.event_weights]
view = 1.0
purchase = 9.0
"""


def write_home_file(home: Path, text: str = FILE) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / SETTINGS_FILE_NAME
    path.write_text(text)
    return path


def test_the_home_file_sets_top_level_and_group_settings(tmp_path: Path) -> None:
    write_home_file(tmp_path)
    settings = load_settings(home=tmp_path)
    assert settings.sqlite_synchronous == "NORMAL"
    assert (settings.server.host, settings.server.port, settings.server.workers) == (
        "0.0.0.0",
        9000,
        3,
    )
    assert settings.ingest.max_batch_events == 250
    assert settings.profiles.event_weights == {"view": 1.0, "purchase": 9.0}
    # a group's settings the file leaves out keep their defaults
    assert settings.server.log_level == "info" and settings.ingest.max_event_bytes == 32768


def test_without_a_file_the_defaults_hold(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert settings.server.port == 8000 and settings.sqlite_synchronous == "FULL"
    assert set(setting_origins(home=tmp_path).values()) == {"default", "option"}


def test_a_file_named_by_config_or_persona_config_is_read_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_home_file(tmp_path / "home", "[server]\nport = 9001\n")
    named = tmp_path / "elsewhere.toml"
    named.write_text(f'home = "{tmp_path / "data"}"\n[server]\nport = 9002\n')
    assert load_settings(home=tmp_path / "home").server.port == 9001
    settings = load_settings(named, home=None)
    assert settings.server.port == 9002 and settings.home == tmp_path / "data"
    monkeypatch.setenv("PERSONA_CONFIG", str(named))
    assert load_settings(home=tmp_path / "home").server.port == 9002


def test_a_missing_named_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nowhere.toml")


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_home_file(tmp_path)
    monkeypatch.setenv("PERSONA_SERVER__PORT", "9100")
    monkeypatch.setenv("PERSONA_PROFILES__EVENT_WEIGHTS", '{"click": 4}')
    settings = load_settings(home=tmp_path)
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"  # the rest of the file's table holds
    # a map from a variable replaces the file's whole, never merged into it
    assert settings.profiles.event_weights == {"click": 4.0}
    origins = setting_origins(home=tmp_path)
    assert origins["server.port"] == "environment" and origins["server.host"] == "file"
    assert origins["profiles.event_weights"] == "environment"
    assert origins["server.log_level"] == "default"


def test_explicit_overrides_beat_the_environment_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_home_file(tmp_path)
    monkeypatch.setenv("PERSONA_SERVER__PORT", "9100")
    settings = load_settings(home=tmp_path, server={"port": 9200, "host": None})
    assert settings.server.port == 9200 and settings.server.host == "0.0.0.0"
    origins = setting_origins(home=tmp_path, server={"port": 9200, "host": None})
    assert origins["server.port"] == "option" and origins["server.host"] == "file"


def test_serve_options_beat_the_environment_which_beats_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the command line: `persona serve --port` over PERSONA_SERVER__PORT over the
    file (the server itself is not started)."""
    write_home_file(tmp_path)
    served: list[Any] = []

    def capture(engine: Engine, config_file: Path | None = None) -> None:
        served.append(engine.settings)
        engine.close()

    monkeypatch.setattr(main, "run_server", capture)
    environment = {"PERSONA_SERVER__PORT": "9100", "PERSONA_SERVER__WORKERS": "2"}
    result = runner.invoke(
        app, ["--home", str(tmp_path), "serve", "--port", "9300", "--dev"], env=environment
    )
    assert result.exit_code == 0, result.output
    settings = served[0]
    assert settings.server.port == 9300  # the option
    assert settings.server.workers == 2  # the environment, over the file's 3
    assert settings.server.host == "0.0.0.0"  # the file
    assert settings.ingest.max_batch_events == 250 and settings.dev_mode


def test_the_home_option_beats_the_environment_and_a_named_file(tmp_path: Path) -> None:
    named = tmp_path / "persona.toml"
    named.write_text(f'home = "{tmp_path / "from-file"}"\n')
    environment = {"PERSONA_CONFIG": str(named)}
    shown = runner.invoke(app, ["config", "show", "--json"], env=environment)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["settings"]["home"] == str(tmp_path / "from-file")
    typed = runner.invoke(
        app, ["--home", str(tmp_path / "typed"), "config", "show", "--json"], env=environment
    )
    document = json.loads(typed.stdout)
    assert document["settings"]["home"] == str(tmp_path / "typed")
    assert document["origins"]["home"] == "option"
    assert document["file"] == str(named.resolve())


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("prot = 1\n", "prot"),
        ("[server]\nprot = 1\n", "server.prot"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("max_batch_events = 5\n", r"max_batch_events \(now ingest.max_batch_events\)"),
        ("server = 5\n", r"server \(a group"),
    ],
)
def test_an_unknown_key_is_refused_with_its_name_and_the_file(
    tmp_path: Path, text: str, named: str
) -> None:
    path = write_home_file(tmp_path, text)
    with pytest.raises(SettingsError, match=rf"unknown setting\(s\) in {path}: {named}"):
        load_settings(home=tmp_path)


def test_the_home_cannot_be_set_in_the_file_found_in_the_home(tmp_path: Path) -> None:
    write_home_file(tmp_path, 'home = "/elsewhere"\n')
    with pytest.raises(SettingsError, match=r"home .*--config"):
        load_settings(home=tmp_path)


def test_a_file_that_is_not_toml_is_refused_with_the_line(tmp_path: Path) -> None:
    path = write_home_file(tmp_path, '[server]\nhost = "0.0.0.0"\nport = \n')
    with pytest.raises(SettingsError, match=rf"{path} is not valid TOML: .*line 3"):
        load_settings(home=tmp_path)


def test_a_bad_value_in_the_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write_home_file(tmp_path, "[ingest]\nmax_batch_events = 0\n")
    with pytest.raises(SettingsError, match=rf"ingest.max_batch_events from {path}"):
        load_settings(home=tmp_path)


def test_the_command_line_refuses_a_bad_file_with_exit_code_2(tmp_path: Path) -> None:
    write_home_file(tmp_path, "[ingest]\nmax_batch = 5\n")
    result = runner.invoke(app, ["--home", str(tmp_path), "config", "show"])
    assert result.exit_code == 2
    assert "ingest.max_batch" in result.output and SETTINGS_FILE_NAME in result.output


SECRETS = """\
database_url = "postgresql://app:hunter2@db.internal:5432/p?sslmode=require"
redis_url = "redis://:hunter3@cache.internal:6379/0"

[privacy]
encryption_key = "file-fernet-key"
"""


def test_config_show_prints_the_settings_with_secrets_masked(tmp_path: Path) -> None:
    write_home_file(tmp_path, SECRETS)
    environment = {
        "PERSONA_PRIVACY__PSEUDONYM_KEY": "env-pseudonym-key",
        "PERSONA_SERVER__PORT": "9100",
        "PERSONA_STREAM_URL": "redis://cache.internal:6379/1?password=hunter4",
    }
    result = runner.invoke(app, ["--home", str(tmp_path), "config", "show"], env=environment)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for secret in ("hunter2", "hunter3", "hunter4", "file-fernet-key", "env-pseudonym-key"):
        assert secret not in out
    assert "postgresql://app:(secret)@db.internal:5432/p?sslmode=require" in out
    assert "# pseudonym_key = (secret)  # environment" in out
    assert "# encryption_key = (secret)  # file" in out
    assert "port = 9100  # environment" in out
    assert "max_batch_events = 1000  # default" in out
    # the output is a settings file: read back, it gives the same values (secrets left out)
    shown = tomllib.loads(out)
    assert shown["server"]["port"] == 9100 and shown["ingest"]["max_batch_events"] == 1000
    assert "pseudonym_key" not in shown["privacy"]
    saved = tmp_path / "saved.toml"
    saved.write_text(out)
    again = load_settings(saved)
    assert again.server.port == 9100 and again.home == tmp_path
    assert again.database_url == "postgresql://app:(secret)@db.internal:5432/p?sslmode=require"
    assert again.privacy.pseudonym_key is None


def test_config_show_as_json(tmp_path: Path) -> None:
    write_home_file(tmp_path, SECRETS)
    result = runner.invoke(
        app,
        ["--home", str(tmp_path), "config", "show", "--json"],
        env={"PERSONA_PRIVACY__PSEUDONYM_KEY": "env-pseudonym-key"},
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "hunter" not in result.stdout and "key-" not in result.stdout
    assert document["file"] == str((tmp_path / SETTINGS_FILE_NAME).resolve())
    assert document["settings"]["privacy"]["pseudonym_key"] == "(secret)"
    assert document["settings"]["privacy"]["encryption_key"] == "(secret)"
    assert document["settings"]["redis_url"] == "redis://:(secret)@cache.internal:6379/0"
    assert document["settings"]["stream_url"] is None
    assert document["origins"]["privacy.pseudonym_key"] == "environment"
    assert document["origins"]["database_url"] == "file"
    assert document["origins"]["ingest.max_batch_events"] == "default"


def test_every_setting_is_shown_once(tmp_path: Path) -> None:
    values = effective_values(load_settings(home=tmp_path))
    origins = setting_origins(home=tmp_path)
    shown = {
        f"{group}.{name}" if isinstance(table, dict) else group
        for group, table in values.items()
        for name in (table if isinstance(table, dict) else [group])
    }
    assert shown == set(origins)
