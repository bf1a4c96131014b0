"""Training reads the event lake: on the generator's shop the lake gives the very table the store
gives (with and without a moment), and `persona train` keeps the lake in step before reading."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
from typer.testing import CliRunner

from persona.cli.main import app
from persona.clock import FakeClock
from persona.demo.synthetic import FileFormat, Shape, generate, write
from persona.engine import Engine
from persona.recommend.training import interaction_rows, load_training_data
from persona.settings import Settings
from tests.conftest import NOW_MS, open_engine

END = datetime(2026, 1, 1, tzinfo=UTC)
SHAPE = Shape(people=500, items=300, events=6_000, days=20, seed=11, end=END)
DAY_MS = 86_400_000
runner = CliRunner()


def _ingest(engine: Engine, events: pa.Table) -> None:
    """The generated events through ingest, as the API takes them (a thousand at a time)."""
    rows = []
    for row in events.to_pylist():
        row["timestamp"] = row["timestamp"].timestamp()
        for name in ("properties", "context"):
            if row[name] is not None:
                row[name] = orjson.loads(row[name])
        rows.append({name: value for name, value in row.items() if value is not None})
    for start in range(0, len(rows), 1_000):
        assert engine.ingest.ingest(rows[start : start + 1_000]).rejected == 0


def test_the_lake_gives_training_the_stores_table_on_a_generated_shop(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    workload = generate(SHAPE)
    engine = open_engine(tmp_path, database_url, clock)
    try:
        _ingest(engine, workload.events.slice(0, 4_000))
        engine.lake.sync()
        _ingest(engine, workload.events.slice(4_000))  # later identifies move copied events
        start = SHAPE.start_ms
        moments = [None, start, start + 7 * DAY_MS, start + 7 * DAY_MS + 12_345, NOW_MS]
        weights = engine.settings.profiles.event_weights
        for before_ms in moments:
            from_store = engine.storage.interaction_columns(before_ms)
            assert from_store.num_rows > 0 or before_ms == start
            assert engine.lake.interaction_columns(before_ms).equals(from_store)
            lake_rows = interaction_rows(engine.lake, before_ms)
            assert lake_rows.equals(interaction_rows(engine.storage, before_ms))
            plain = load_training_data(engine.storage, weights, before_ms=before_ms)
            laked = load_training_data(
                engine.storage, weights, before_ms=before_ms, events=engine.lake
            )
            a, b = plain.interactions, laked.interactions
            assert (a.user_ids, a.item_ids) == (b.user_ids, b.item_ids)
            for name in ("users", "items", "timestamps_ms", "weights", "values"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    finally:
        engine.close()


def test_persona_lake_sync_and_train_as_of_read_the_lake(tmp_path: Path) -> None:
    shape = Shape(people=300, items=150, events=4_000, days=20, seed=3, end=datetime.now(UTC))
    write(generate(shape), tmp_path / "shop", (FileFormat.JSONL,))
    home = str(tmp_path / "home")
    for args in (
        ["import", "items", str(tmp_path / "shop" / "items.jsonl")],
        ["import", "events", str(tmp_path / "shop" / "events.jsonl")],
    ):
        result = runner.invoke(app, ["--home", home, *args])
        assert result.exit_code == 0, result.output

    synced = runner.invoke(app, ["--home", home, "lake", "sync"])
    assert synced.exit_code == 0, synced.output
    assert _row(synced.output, "events copied") == "4,000"
    lake = Path(home) / "lake"
    days = len(list(lake.glob("events/date=*/part-*.parquet")))
    assert days in (20, 21)  # 20 days back from now: 21 dates unless it is midnight
    assert _row(synced.output, "days in the lake") == str(days)
    again = runner.invoke(app, ["--home", home, "lake", "sync"])
    assert (_row(again.output, "events copied"), _row(again.output, "days written")) == ("0", "0")

    as_of = shape.start_ms + 12 * DAY_MS
    trained = runner.invoke(app, ["--home", home, "train", "--as-of", str(as_of // 1000)])
    assert trained.exit_code == 0, trained.output
    (version,) = [p for p in (Path(home) / "models").iterdir() if p.name.startswith("v")]
    manifest = orjson.loads((version / "manifest.json").read_bytes())
    assert manifest["trained_before"] == as_of
    engine = Engine.open(Settings(home=Path(home)))
    try:
        expected = interaction_rows(engine.storage, as_of)
        assert manifest["interactions"] == expected.num_rows
        assert expected.equals(interaction_rows(engine.lake, as_of))
    finally:
        engine.close()


def _row(output: str, label: str) -> str:
    """The value beside ``label`` in a table the command printed."""
    (line,) = [line for line in output.splitlines() if label in line]
    return line.split(label, 1)[1].strip(" │|")
