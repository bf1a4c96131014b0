"""``persona predictions``, ``persona clusters`` and ``persona scores``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from persona.cli.context import open_engine as _open
from persona.errors import PersonaError
from persona.identity import ANONYMOUS, USER
from persona.predictions.scheduler import PredictiveTraining

predictions_app = typer.Typer(help="Propensity predictions.", no_args_is_help=True)
clusters_app = typer.Typer(help="Behavioural clusters.", no_args_is_help=True)
console = Console(stderr=True)


def _number(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else "-"


@predictions_app.command("list")
def list_predictions(ctx: typer.Context) -> None:
    """Every prediction with the held-out metrics of its last training."""
    table = Table(
        "name", "event", "horizon", "trained", "ROC-AUC", "heuristic AUC", "Brier", "positives"
    )
    for record in _open(ctx).predictions.definitions():
        e = record.evaluation or {}
        table.add_row(
            record.name,
            record.event_type,
            f"{record.horizon_days}d",
            "yes" if record.trained_at_ms else "no",
            _number(e.get("roc_auc")),
            _number(e.get("heuristic_roc_auc")),
            _number(e.get("brier")),
            str(e.get("positives", "-")),
        )
    Console(width=160).print(table)


@predictions_app.command("create")
def create_prediction(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Rules read it as profile.scores.<name>.")],
    event: Annotated[str, typer.Option("--event", help="The event type to predict.")],
    horizon_days: Annotated[
        int, typer.Option("--horizon-days", help="Within how many days.", min=1, max=3650)
    ],
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
) -> None:
    """Define a prediction; `persona train` trains it and scores everyone."""
    try:
        record = _open(ctx).predictions.create(name, event, horizon_days, description)
    except PersonaError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"prediction {record.name}: {record.event_type} within {record.horizon_days}d")


@clusters_app.command("list")
def list_clusters(ctx: typer.Context) -> None:
    """The clusters of the last training: segment, size and what sets each apart."""
    engine = _open(ctx)
    model = engine.clusters.model()
    if model is None:
        console.print("no clusters yet: run `persona train`")
        return
    scores = ", ".join(f"k={k}: {v:.3f}" for k, v in sorted(model.silhouettes.items()))
    console.print(f"k = {model.k} (silhouette {scores})")
    table = Table("segment", "size", "what sets it apart")
    for cluster in engine.clusters.clusters():
        table.add_row(cluster.segment, f"{cluster.size:,}", cluster.description)
    Console(width=160).print(table)


def scores_command(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option(help="Write JSON Lines here (default stdout).")
    ] = None,
) -> None:
    """Export every person's scores as `{"user_id": ..., "scores": {...}}` lines.

    Anonymous people (not yet identified) have `anonymous_id` instead of `user_id`.
    """
    engine = _open(ctx)
    handle = out.open("wb") if out else None
    count = 0
    try:
        for key, scores in engine.predictions.export():
            if key.startswith(USER):
                person = {"user_id": key.removeprefix(USER)}
            else:
                person = {"anonymous_id": key.removeprefix(ANONYMOUS)}
            line = orjson.dumps({**person, "scores": scores})
            if handle:
                handle.write(line + b"\n")
            else:
                typer.echo(line.decode())
            count += 1
    finally:
        if handle:
            handle.close()
    if out:
        console.print(f"{count:,} people written to {out}")


def print_predictive_training(outcome: PredictiveTraining) -> None:
    """What `persona train` says about clusters and predictions."""
    if outcome.clusters is not None:
        c = outcome.clusters
        console.print(
            f"clusters: k = {c.model.k} over {c.people:,} people in {c.seconds:.1f}s"
            f" ({c.entered:,} entered, {c.exited:,} left a cluster)"
        )
    for result in outcome.predictions:
        e = result.evaluation
        console.print(
            f"prediction {result.name}: held-out ROC-AUC {_number(e.roc_auc)}"
            f" (recency/frequency heuristic {_number(e.heuristic_roc_auc)}),"
            f" Brier {_number(e.brier)} (heuristic {_number(e.heuristic_brier)}),"
            f" {e.positives:,} positives of {e.people:,};"
            f" {result.scored:,} people scored in {result.seconds:.1f}s"
        )
    for skipped in outcome.skipped:
        console.print(f"[yellow]skipped[/yellow] {skipped}")
    for problem in outcome.problems:
        console.print(f"[red]failed[/red] {problem}")
