"""``persona privacy``: erase or export a person, apply retention, write the export schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import orjson
import typer
from rich.console import Console

from persona.cli.context import open_engine as _open
from persona.errors import PersonaError
from persona.privacy.export import write_json_schema

privacy_app = typer.Typer(help="Erasure, export and retention.", no_args_is_help=True)
console = Console(stderr=True)
ACTOR = "cli"
IdTypeOption = Annotated[
    Literal["user", "anonymous"] | None,
    typer.Option(
        "--id-type",
        help="Whether the id is a user id or an anonymous id (needed when it is both).",
    ),
]


@privacy_app.command("erase")
def erase(ctx: typer.Context, subject_id: str, id_type: IdTypeOption = None) -> None:
    """Erase a person and every alias of them; prints what was removed, per table."""
    engine = _open(ctx)
    try:
        report = engine.privacy.erasure.erase(subject_id, actor=ACTOR, id_type=id_type)
    except PersonaError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.close()
    typer.echo(
        orjson.dumps(
            {
                "subject": report.subject_hash,
                "ids_erased": report.ids,
                "deleted": report.deleted,
                "models_rewritten": report.models_rewritten,
                "model_rows_removed": report.model_rows_removed,
                "lake_rows_removed": report.lake_rows_removed,
            },
            option=orjson.OPT_INDENT_2,
        ).decode()
    )


@privacy_app.command("export")
def export(
    ctx: typer.Context,
    subject_id: str,
    out: Annotated[Path, typer.Option("--out", help="File to write the JSON export to.")],
    id_type: IdTypeOption = None,
) -> None:
    """Write everything held about a person to a JSON file (schema_version 1)."""
    engine = _open(ctx)
    try:
        document = engine.privacy.export.export(subject_id, actor=ACTOR, id_type=id_type)
    except PersonaError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.close()
    out.write_text(document.model_dump_json(indent=2))
    # never echo the content: it is personal data
    console.print(f"wrote the export to {out}")


@privacy_app.command("retention")
def retention(ctx: typer.Context) -> None:
    """Delete events older than their type's retention (PERSONA_PRIVACY__RETENTION_DAYS) now."""
    engine = _open(ctx)
    try:
        report = engine.privacy.retention.run(actor=ACTOR)
    finally:
        engine.close()
    summary = {"deleted": report.deleted, "total": report.total, "lake": report.lake_removed}
    typer.echo(orjson.dumps(summary).decode())


@privacy_app.command("export-schema")
def export_schema(
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON Schema.")] = Path(
        "docs/export.schema.json"
    ),
) -> None:
    """Write the JSON Schema of subject exports."""
    write_json_schema(out)
    console.print(f"wrote {out}")
