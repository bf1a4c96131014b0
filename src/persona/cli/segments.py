"""``persona segments``: list, create, delete, preview, members and refresh from the command
line."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from persona.cli.context import open_engine as _open
from persona.errors import PersonaError
from persona.segments.schema import person

segments_app = typer.Typer(help="Rule segments and their members.", no_args_is_help=True)
console = Console(stderr=True)


def _fail(exc: PersonaError) -> typer.Exit:
    console.print(f"[red]{exc.detail}[/red]")
    excerpt = exc.extra.get("excerpt")
    if excerpt:
        console.print(excerpt, markup=False, highlight=False)
    return typer.Exit(1)


@segments_app.command("list")
def list_segments(ctx: typer.Context) -> None:
    """Every segment with its rule and current size."""
    engine = _open(ctx)
    table = Table("name", "size", "rule", "description")
    for record in engine.segments.definitions():
        size = engine.segments.size(record.name)
        table.add_row(record.name, f"{size:,}", record.rule or "", record.description)
    Console(width=200).print(table)


@segments_app.command("create")
def create_segment(
    ctx: typer.Context,
    name: str,
    rule: str,
    description: Annotated[str, typer.Option(help="What the segment is for.")] = "",
) -> None:
    """Define a segment by a rule and compute its members."""
    engine = _open(ctx)
    try:
        engine.segments.create(name, rule, description)
    except PersonaError as exc:
        raise _fail(exc) from None
    console.print(f"created {name}: {engine.segments.size(name):,} members")


@segments_app.command("delete")
def delete_segment(ctx: typer.Context, name: str) -> None:
    """Delete a rule segment and its membership history (clusters are kept by their model)."""
    try:
        _open(ctx).segments.delete(name)
    except PersonaError as exc:
        raise _fail(exc) from None
    console.print(f"deleted {name}")


@segments_app.command("preview")
def preview_segment(
    ctx: typer.Context,
    rule: str,
    sample: Annotated[int, typer.Option(help="How many members to show.", min=0, max=100)] = 10,
) -> None:
    """How many people a rule selects now, and a sample, without saving (JSON on stdout)."""
    engine = _open(ctx)
    try:
        found = engine.segments.preview(rule, sample)
    except PersonaError as exc:
        raise _fail(exc) from None
    answer = {"size": found.size, "sample": [person(k).model_dump() for k in found.sample]}
    typer.echo(orjson.dumps(answer).decode())


@segments_app.command("members")
def list_members(
    ctx: typer.Context,
    name: str,
    limit: Annotated[int, typer.Option(help="At most this many.", min=1)] = 1000,
) -> None:
    """The members of a segment, one JSON object per line."""
    engine = _open(ctx)
    try:
        rows = engine.segments.members(name, after=None, limit=limit)
    except PersonaError as exc:
        raise _fail(exc) from None
    for row in rows:
        line = person(row.profile_key).model_dump() | {"entered_at_ms": row.entered_at_ms}
        typer.echo(orjson.dumps(line).decode())


class RefreshEngine(StrEnum):
    STORE = "store"
    SPARK = "spark"


@segments_app.command("refresh")
def refresh_segments(
    ctx: typer.Context,
    engine_name: Annotated[
        RefreshEngine,
        typer.Option(
            "--engine",
            help="store (its own query), or spark: Spark SQL over the event lake and a"
            " snapshot of the store (pip install 'persona[spark]').",
        ),
    ] = RefreshEngine.STORE,
    master: Annotated[
        str | None, typer.Option(help="Spark's master URL (default local[*]); with --engine spark.")
    ] = None,
) -> None:
    """Re-evaluate every segment for everyone now (what `persona serve` does on a schedule)."""
    engine = _open(ctx)
    try:
        if engine_name is RefreshEngine.SPARK:
            from persona.segments import SparkMatching
            from persona.spark import spark_session

            with spark_session(master) as spark:
                matching = SparkMatching(spark, engine.storage, engine.lake)
                summary = engine.segments.refresh(matching=matching)
        else:
            summary = engine.segments.refresh()
    finally:
        engine.close()
    for name, (entered, exited) in summary.changes.items():
        console.print(f"{name}: {entered:,} entered, {exited:,} left")
