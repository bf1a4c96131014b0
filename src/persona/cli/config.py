"""``persona config``: the settings in effect, and where each comes from."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from persona.cli.context import settings_of
from persona.settings import MASK, Origin, effective_values, setting_origins, settings_file

config_app = typer.Typer(
    help="The settings in effect and where they come from.", no_args_is_help=True
)

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _string(text: str) -> str:
    """A TOML basic string (every control character and DEL escaped; the rest as is)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f"}
    escapes["\r"] = "\\r"
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _key(name: str) -> str:
    return name if BARE_KEY.fullmatch(name) else _string(name)


def toml_value(value: Any) -> str:
    """A plain value (as ``effective_values`` gives) in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _line(name: str, value: Any, origin: str | None) -> str:
    """One setting: unset ones and secrets as comments, so the output read back as a settings
    file sets neither."""
    where = f"  # {origin}" if origin else ""
    if value is None:
        return f"# {_key(name)} is unset{where}"
    if value == MASK:
        return f"# {_key(name)} = {MASK}{where}"
    return f"{_key(name)} = {toml_value(value)}{where}"


def render_toml(
    values: dict[str, Any], origins: dict[str, Origin] | None, file: Path | None
) -> str:
    """The settings as a settings file (top-level keys, then a table per group: the dicts of
    ``values``), each value followed by its origin."""
    found = f"read from {file}" if file is not None else "no settings file"
    lines = [f"# persona settings in effect ({found}); secrets masked"]
    tables = [name for name, value in values.items() if isinstance(value, dict)]
    for name, value in values.items():
        if name not in tables:
            lines.append(_line(name, value, origins.get(name) if origins else None))
    for group in tables:
        lines += ["", f"[{group}]"]
        for name, value in values[group].items():
            origin = origins.get(f"{group}.{name}") if origins else None
            lines.append(_line(name, value, origin))
    return "\n".join(lines) + "\n"


@config_app.command("show")
def show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of TOML.")] = False,
) -> None:
    """Print every setting in effect (TOML, or JSON with --json), secrets masked, each with
    where it came from: default, file, environment or option."""
    settings = settings_of(ctx)
    config = getattr(ctx.obj, "config", None)
    home = getattr(ctx.obj, "home", None)
    # --home read from PERSONA_HOME is the environment's doing, not an option's
    source = ctx.find_root().get_parameter_source("home")
    typed = source is not None and source.name == "COMMANDLINE"
    origins = setting_origins(config, home=home if typed else None)
    found = settings_file(config, home)
    values = effective_values(settings)
    if as_json:
        document = {
            "file": str(found.path.resolve()) if found else None,
            "settings": values,
            "origins": origins,
        }
        typer.echo(json.dumps(document, indent=2, allow_nan=True))
        return
    typer.echo(render_toml(values, origins, found.path.resolve() if found else None), nl=False)
