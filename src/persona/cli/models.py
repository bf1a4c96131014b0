"""``persona models``: the trained model sets, and which one serves: list, promote, roll back."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from persona.cli.context import open_engine as _open
from persona.engine import Engine
from persona.errors import PersonaError

models_app = typer.Typer(help="Trained model sets: list, promote, roll back.", no_args_is_help=True)
console = Console(stderr=True)


@models_app.command("list")
def list_models(ctx: typer.Context) -> None:
    """Every stored model set with its validation metrics, newest first; * marks the champion."""
    registry = _open(ctx).recommendations.registry
    champion = registry.champion()
    table = Table("", "version", "created", "ndcg@10", "recall@10", "people", "items")
    for version in reversed(registry.versions()):
        metrics = version.metrics
        table.add_row(
            "*" if champion is not None and champion.version == version.version else "",
            version.version,
            str(version.manifest.get("created_at", "")),
            f"{metrics['ndcg@10']:.4f}" if "ndcg@10" in metrics else "-",
            f"{metrics['recall@10']:.4f}" if "recall@10" in metrics else "-",
            str(version.manifest.get("people", "-")),
            str(version.manifest.get("items", "-")),
        )
    Console(width=160).print(table)


@models_app.command("promote")
def promote(ctx: typer.Context, version: str) -> None:
    """Serve this stored model set, whatever its metrics (running servers follow within a
    second)."""
    engine = _open(ctx)
    try:
        chosen, before = engine.recommendations.promote(version)
    except PersonaError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    _report(engine, chosen.version, before.version if before else None)


@models_app.command("rollback")
def rollback(ctx: typer.Context) -> None:
    """Serve again the champion before the present one."""
    engine = _open(ctx)
    try:
        chosen, before = engine.recommendations.rollback()
    except PersonaError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    _report(engine, chosen.version, before.version if before else None)


def _report(engine: Engine, serving: str, previous: str | None) -> None:
    engine.privacy.audit.record("cli", "model.promote", f"model:{serving}", {"previous": previous})
    typer.echo(f"serving {serving}" + (f" (was {previous})" if previous else ""))
