"""Bulk import of events and items from CSV, JSON Lines or Parquet files.

Rows go through the same validation and ingest path as the API, in batches, so a file import
and a stream of HTTP calls give the same stored state.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pydantic import ValidationError

from persona.catalog.schema import ItemIn
from persona.catalog.service import CatalogService
from persona.documents import id_text
from persona.ingest.schema import UnparsableLine
from persona.ingest.service import IngestResult, IngestService

ID_FIELDS = ("event_id", "user_id", "anonymous_id", "item_id", "decision_id")
DOCUMENT_FIELDS = ("properties", "context", "attributes")
LIST_FIELDS = ("categories", "tags")
FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

Progress = Callable[[int], None]
# Events per transaction of a file import: each costs a commit, and a read and a write of every
# profile it touches, which a person's later events in the same batch share. Measured on 1M
# generated events: 10,000 a batch import 24,000 events/s, 50,000 30,000/s, 100,000 no more.
# The import holds the write lock for a batch (about 1.5 s) at a time.
IMPORT_BATCH_EVENTS = 50_000


class ImportFormatError(ValueError):
    """The file cannot be read as any supported format."""


@dataclass
class ImportSummary:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    held: int = 0  # stored aside for lack of consent
    examples: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(message)


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ImportFormatError(
            f"{path.name}: unknown format; use .csv, .jsonl (.ndjson) or .parquet"
        ) from None


def count_rows(path: Path) -> int:
    if file_format(path) == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return max(0, lines - 1) if file_format(path) == "csv" else lines


def read_batches(path: Path, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Rows of the file as dictionaries, ``batch_size`` at a time."""
    kind = file_format(path)
    if kind == "jsonl":
        yield from _jsonl_batches(path, batch_size)
        return
    if kind == "csv":
        header = pa_csv.open_csv(path).schema.names
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=4 << 20),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header}, strings_can_be_null=True
            ),
        )
        pending: list[dict[str, Any]] = []
        for record_batch in reader:
            pending.extend(record_batch.to_pylist())
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending
        return
    for record_batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        yield record_batch.to_pylist()


def _jsonl_batches(path: Path, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[Any] = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                batch.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                # Keep the line so that ingest rejects and quarantines it with its index.
                batch.append(UnparsableLine(line.decode("utf-8", "replace")[:10_000], number))
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def normalize_row(row: dict[str, Any]) -> Any:
    """Turn a file row into the API's shape: no empty cells, ids as text, lists split on ``|``.

    An empty cell, a null and a NaN (how a float column marks a missing value) are all left
    out. Ids follow the API's rule (``id_text``): a whole number becomes its decimal text (an
    integer column, or one that became a float column because some of its values are missing);
    any other value is left for validation to refuse. CSV cells are text and stay as they are.
    """
    if not isinstance(row, dict):
        return row
    clean: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or value == "" or (type(value) is float and math.isnan(value)):
            continue
        if name in ID_FIELDS:
            value = id_text(value)
        elif name in DOCUMENT_FIELDS and isinstance(value, str):
            with contextlib.suppress(orjson.JSONDecodeError):  # else validation names the field
                value = orjson.loads(value)
        elif name in LIST_FIELDS and isinstance(value, str):
            value = [part.strip() for part in value.split("|") if part.strip()]
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        clean[name] = value
    return clean


def import_events(
    service: IngestService,
    path: Path,
    *,
    source: str | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    summary = ImportSummary()
    label = source or f"import:{path.name}"[:64]
    for batch in _event_batches(service, path, label):
        result = batch()
        summary.rows += len(result.events)
        summary.accepted += result.accepted
        summary.held += result.held
        summary.duplicates += result.duplicates
        summary.rejected += result.rejected
        first_row = summary.rows - len(result.events) + 1
        for outcome in result.events:
            if outcome["status"] == "rejected":
                row = first_row + outcome["index"]
                summary.note(f"row {row}: {outcome['code']}: {outcome['message']}")
        if progress:
            progress(len(result.events))
    return summary


def _event_batches(
    service: IngestService, path: Path, source: str
) -> Iterator[Callable[[], IngestResult]]:
    """The ingest of each batch of the file, to call in turn: a Parquet file's batches as
    tables, validated column by column (``IngestService.ingest_table``), the others' as rows."""
    if file_format(path) == "parquet":
        for record_batch in pq.ParquetFile(path).iter_batches(batch_size=IMPORT_BATCH_EVENTS):
            table = pa.Table.from_batches([record_batch])
            yield partial(service.ingest_table, table, source=source, limit=IMPORT_BATCH_EVENTS)
        return
    for batch in read_batches(path, IMPORT_BATCH_EVENTS):
        rows = [normalize_row(row) for row in batch]
        yield partial(service.ingest, rows, source=source, limit=IMPORT_BATCH_EVENTS)


def import_items(
    catalog: CatalogService, path: Path, *, batch_size: int = 1000, progress: Progress | None = None
) -> ImportSummary:
    summary = ImportSummary()
    for batch in read_batches(path, batch_size):
        valid: list[ItemIn] = []
        for offset, row in enumerate(batch):
            try:
                valid.append(ItemIn.model_validate(normalize_row(row)))
            except ValidationError as exc:
                summary.rejected += 1
                first = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                summary.note(f"row {summary.rows + offset + 1}: {where}: {first['msg']}")
        summary.accepted += catalog.upsert(valid) if valid else 0
        summary.rows += len(batch)
        if progress:
            progress(len(batch))
    return summary
