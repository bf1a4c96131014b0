"""``persona placements`` and ``persona experiments``: configuration and results from a shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from persona.cli.context import open_engine as _open
from persona.decide.schema import PlacementIn, parse_placement
from persona.errors import PersonaError
from persona.storage.records import PlacementRecord

placements_app = typer.Typer(help="Placements: slots, variants and policies.", no_args_is_help=True)
experiments_app = typer.Typer(help="A/B tests and bandits and their results.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(exc: PersonaError) -> typer.Exit:
    console.print(f"[red]{exc.detail}[/red]")
    return typer.Exit(1)


def _read(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        console.print(f"[red]cannot read {path}: {exc}[/red]")
        raise typer.Exit(1) from None


def _line(record: PlacementRecord) -> str:
    return f"{record.name} v{record.version} ({record.policy}, {record.status})"


@placements_app.command("list")
def list_placements(ctx: typer.Context) -> None:
    """Every placement with its current version, policy and status."""
    engine = _open(ctx)
    try:
        table = Table("name", "version", "policy", "status", "variants")
        for record in engine.decisions.all():
            variants = [v.get("id", "") for v in record.config.get("variants", [])]
            table.add_row(
                record.name, str(record.version), record.policy, record.status, ", ".join(variants)
            )
        Console(width=200).print(table)
    finally:
        engine.close()


@placements_app.command("create")
def create_placement(ctx: typer.Context, file: Path) -> None:
    """Create a placement from a JSON file (the body of POST /v1/placements)."""
    raw = _read(file)
    engine = _open(ctx)
    try:
        config = parse_placement(raw, named=True)
        assert isinstance(config, PlacementIn)
        console.print(f"created {_line(engine.decisions.create(config.name, config.body()))}")
    except PersonaError as exc:
        raise _fail(exc) from None
    finally:
        engine.close()


@placements_app.command("update")
def update_placement(ctx: typer.Context, name: str, file: Path) -> None:
    """Write a new version of a placement from a JSON file (a `name` in it must match)."""
    raw = _read(file)
    engine = _open(ctx)
    try:
        if isinstance(raw, dict):
            if raw.get("name", name) != name:
                console.print(f"[red]the file names {raw['name']!r}, not {name!r}[/red]")
                raise typer.Exit(1)
            raw = {k: v for k, v in raw.items() if k != "name"}
        config = parse_placement(raw, named=False)
        console.print(f"updated {_line(engine.decisions.update(name, config))}")
    except PersonaError as exc:
        raise _fail(exc) from None
    finally:
        engine.close()


def _set_status(ctx: typer.Context, name: str, status: str) -> None:
    engine = _open(ctx)
    try:
        console.print(_line(engine.decisions.set_status(name, status)))
    except PersonaError as exc:
        raise _fail(exc) from None
    finally:
        engine.close()


@placements_app.command("pause")
def pause_placement(ctx: typer.Context, name: str) -> None:
    """Serve the fallback to everyone until resumed."""
    _set_status(ctx, name, "paused")


@placements_app.command("resume")
def resume_placement(ctx: typer.Context, name: str) -> None:
    """Decide by the placement's policy again."""
    _set_status(ctx, name, "active")


@experiments_app.command("list")
def list_experiments(ctx: typer.Context) -> None:
    """Every version of every `ab` or `thompson` placement."""
    engine = _open(ctx)
    try:
        table = Table("experiment", "policy", "current", "status", "variants", "holdout")
        for e in engine.experiments.all().experiments:
            table.add_row(
                e.experiment_id,
                e.policy,
                "yes" if e.current else "",
                e.status,
                ", ".join(e.variants),
                f"{e.holdout_share:.0%}",
            )
        Console(width=200).print(table)
    finally:
        engine.close()


@experiments_app.command("results")
def experiment_results(
    ctx: typer.Context,
    experiment: str = typer.Argument(help="`placement.vVERSION`, or a placement name."),
    cuped: bool = typer.Option(False, help="Adjust revenue by pre-experiment revenue."),
) -> None:
    """The results of an experiment: arms, then comparisons with the control (JSON on stdout)."""
    engine = _open(ctx)
    try:
        found = engine.experiments.results(experiment, cuped=cuped)
    except PersonaError as exc:
        raise _fail(exc) from None
    finally:
        engine.close()
    table = Table("arm", "units", "exposures", "click rate", "conv. rate", "revenue/unit")
    for arm in found.arms:
        table.add_row(
            arm.arm + (" (control)" if arm.control else ""),
            f"{arm.units:,}",
            f"{arm.exposures:,}",
            _percent(arm.click_rate),
            _percent(arm.conversion_rate),
            "" if arm.revenue_per_unit is None else f"{arm.revenue_per_unit:.2f}",
        )
    Console(stderr=True, width=200).print(table)
    for warning in found.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    typer.echo(orjson.dumps(found.model_dump(mode="json")).decode())


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"
