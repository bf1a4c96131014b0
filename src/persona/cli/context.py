"""What every command shares: the settings and the engine of the `--home` the user chose."""

from __future__ import annotations

import typer
from rich.console import Console

from persona.engine import Engine
from persona.runtime import tune_collector
from persona.settings import Settings, SettingsError, load_settings

console = Console(stderr=True)


def settings_of(ctx: typer.Context, **overrides: object) -> Settings:
    """The validated settings; a configuration error ends the command with exit code 2."""
    home = getattr(ctx.obj, "home", None)
    config = getattr(ctx.obj, "config", None)
    try:
        return load_settings(config, home=home, **overrides)
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def open_engine(ctx: typer.Context, **overrides: object) -> Engine:
    tune_collector()  # commands are batch work (imports, training) or the server
    return Engine.open(settings_of(ctx, **overrides))
