"""``persona lake``: keep the event lake of the home in step with the store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from persona.cli.context import open_engine as _open

lake_app = typer.Typer(help="The event log as Parquet files in the home.", no_args_is_help=True)
console = Console(stderr=True)


@lake_app.command("sync")
def sync(
    ctx: typer.Context,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Copy every event again, from nothing.")
    ] = False,
) -> None:
    """Copy the events stored since the last sync into HOME/lake/events/date=YYYY-MM-DD/."""
    engine = _open(ctx)
    try:
        report = engine.lake.sync(rebuild=rebuild)
        files = engine.lake.files()
    finally:
        engine.close()
    table = Table(title=f"event lake {engine.lake.root}", show_header=False)
    table.add_row("events copied", f"{report.copied:,}")
    if report.days:
        span = report.days[0] if len(report.days) == 1 else f"{report.days[0]} … {report.days[-1]}"
        table.add_row("days written", f"{len(report.days):,} ({span})")
    else:
        table.add_row("days written", "0")
    table.add_row("rows removed (erasure, retention)", f"{report.removed:,}")
    table.add_row("store write copied up to", str(report.write_seq))
    table.add_row("days in the lake", f"{len(files):,}")
    if report.rebuilt:
        table.add_row("rebuilt", "yes: every event copied again")
    table.add_row("seconds", f"{report.seconds:.2f}")
    console.print(table)
