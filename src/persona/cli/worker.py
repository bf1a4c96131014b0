"""``persona worker``: the change stream's consumers (the event lake, webhooks) and its relay."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from persona.cli.context import open_engine as _open
from persona.stream import Worker

console = Console(stderr=True)


def worker_command(
    ctx: typer.Context,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this process's Prometheus metrics on this port (/metrics)."),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            help="Also write every message to JSON Lines files under this directory (one"
            " file per read, each message once; one worker of the store at a time)."
        ),
    ] = None,
) -> None:
    """Consume the change stream (PERSONA_STREAM_URL) until stopped: keep the event lake
    current, deliver webhooks; also publishes the stream when no server does."""
    from persona.observability.logging import configure_logging

    engine = _open(ctx)
    if engine.stream is None:
        engine.close()
        console.print("[red]no change stream:[/red] set PERSONA_STREAM_URL (redis://…).")
        raise typer.Exit(2)
    configure_logging(engine.settings.server.log_level)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(
            metrics_port, addr=engine.settings.server.host, registry=engine.metrics.registry
        )
    worker = Worker(
        engine.storage,
        engine.stream,
        engine.lake,
        engine.leases,
        engine.clock,
        engine.settings.stream,
        export=export,
        counted=engine.metrics.webhook_counted,
        published=engine.metrics.stream_published.inc,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        worker.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    console.print(f"persona worker {worker.name} consuming {engine.settings.stream.name}")
    thread = threading.Thread(target=worker.run, name="worker")
    thread.start()
    while thread.is_alive():
        thread.join(0.5)  # the main thread stays free to take the signals
    engine.close()
