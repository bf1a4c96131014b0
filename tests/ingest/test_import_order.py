"""A Parquet import regroups its events by person before cutting them into batches
(``IMPORT_WINDOW_EVENTS``): it stores what the file's order stores, and reports problems at
the file's rows."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from persona.demo.synthetic import FileFormat, Shape, generate, write
from persona.engine import Engine
from persona.ingest import importer
from persona.ingest.importer import import_events, import_items
from tests.conftest import FakeClock, open_engine


def _open(home: Path, clock: FakeClock) -> Engine:
    return open_engine(home, f"sqlite:///{home / 'p.db'}", clock)


def _states(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.storage.read() as uow:
        return dict(uow.profiles.all_states())


def test_a_regrouped_parquet_import_stores_what_the_files_order_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generated shop (sessions, funnels, anonymous visitors who identify later) imported
    from Parquet, regrouped over windows of 1,000 events in batches of 250, and from JSON
    Lines in the file's order, in batches of 250: the same profiles and the same events."""
    shop, shape = tmp_path / "shop", Shape(people=150, items=60, events=3_000, days=20, seed=5)
    write(generate(shape), shop, (FileFormat.PARQUET, FileFormat.JSONL))
    clock = FakeClock(shape.end_ms)
    monkeypatch.setattr(importer, "IMPORT_WINDOW_EVENTS", 1_000)
    monkeypatch.setattr(importer, "IMPORT_BATCH_EVENTS", 250)
    batches: list[pa.Table] = []
    ingest_table = importer.IngestService.ingest_table

    def recorded(service: importer.IngestService, table: pa.Table, **options: Any) -> Any:
        batches.append(table)
        return ingest_table(service, table, **options)

    monkeypatch.setattr(importer.IngestService, "ingest_table", recorded)
    found = []
    for kind in ("parquet", "jsonl"):
        engine = _open(tmp_path / kind, clock)
        try:
            import_items(engine.catalog, shop / f"items.{kind}")
            summary = import_events(engine.ingest, shop / f"events.{kind}")
            assert (summary.rows, summary.accepted) == (3_000, 3_000)
            with engine.storage.read() as uow:
                events = {e.event_id: (e.profile_key, e.type) for e in uow.events.iter_all()}
            found.append((_states(engine), events))
        finally:
            engine.close()
    (regrouped, regrouped_events), (in_order, in_order_events) = found
    assert regrouped_events == in_order_events
    assert regrouped.keys() == in_order.keys()
    for key, state in regrouped.items():
        other = in_order[key]
        assert state["affinity"] == pytest.approx(other["affinity"])
        assert {k: v for k, v in state.items() if k != "affinity"} == {
            k: v for k, v in other.items() if k != "affinity"
        }
    # The Parquet batches were regrouped: within a window, each person's rows are together.
    assert len(batches) == 12
    people = [
        u or a
        for b in batches[:4]
        for u, a in zip(b["user_id"].to_pylist(), b["anonymous_id"].to_pylist(), strict=True)
    ]
    changes = sum(1 for before, after in pairwise(people) if before != after)
    assert changes == len(set(people)) - 1


def test_problems_are_reported_at_the_files_rows(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regrouping moves the rows of ``b`` ahead of ``c``'s: the refused rows keep their numbers
    in the file, and the first five are those reported."""
    monkeypatch.setattr(importer, "IMPORT_WINDOW_EVENTS", 4)
    people = ["c", "b", "c", "b", "c", "b", "c", "b"]
    kinds = ["view", "view", "", "", "view", "", "", ""]  # an empty type is refused
    pq.write_table(
        pa.table(
            {
                "event_id": [f"e{i}" for i in range(len(people))],
                "type": kinds,
                "user_id": people,
                "item_id": ["i1"] * len(people),
                "timestamp": [1_700_000_000 + i for i in range(len(people))],
            }
        ),
        tmp_path / "events.parquet",
    )
    engine = _open(tmp_path / "home", clock)
    try:
        summary = import_events(engine.ingest, tmp_path / "events.parquet")
    finally:
        engine.close()
    assert (summary.accepted, summary.rejected) == (3, 5)
    assert [example.split(":")[0] for example in summary.examples] == [
        "row 3", "row 4", "row 6", "row 7", "row 8"
    ]  # fmt: skip
