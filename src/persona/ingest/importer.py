"""Bulk import of events and items from CSV, JSON Lines or Parquet files.

Rows go through the same validation and ingest path as the API, in batches, so a file import
and a stream of HTTP calls give the same stored state.
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
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
# Events of a Parquet file read ahead and regrouped by person (user id, else anonymous id)
# before they are cut into batches, each person's own events kept in the file's order. Most
# people act a few times a month, so a batch in the file's order (about a day of a shop) holds
# one or two events of each of its people, and its cost is mostly reading and writing their
# profiles. Regrouped a million events at a time, the 10M-event generated shop reads and writes
# a profile 2.1 million times instead of 3.1 million: its import took 242 s instead of 347 to
# 381 s, and 1.3 GB instead of 0.8 (two million at a time: 1.76 million, the same time, 1.7 GB).
# The stored state is the same in any order (a profile folds its events in any order:
# ``ProfileState.apply_many``; the 10M import's million states compared equal).
IMPORT_WINDOW_EVENTS = 1_000_000


class ImportFormatError(ValueError):
    """The file cannot be read as any supported format."""


@dataclass
class ImportSummary:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    held: int = 0  # stored aside for lack of consent
    _noted: list[tuple[int, str]] = field(default_factory=list, repr=False)

    def note(self, row: int, message: str) -> None:
        """Keep ``message`` if it is among the five problems of the lowest rows (an import
        need not meet its rows in order)."""
        bisect.insort(self._noted, (row, message))
        del self._noted[5:]

    @property
    def examples(self) -> list[str]:
        """The problems of the first few rows, in row order."""
        return [message for _, message in self._noted]


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
    for batch, rows in _event_batches(service, path, label):
        result = batch()
        summary.rows += len(result.events)
        summary.accepted += result.accepted
        summary.held += result.held
        summary.duplicates += result.duplicates
        summary.rejected += result.rejected
        for outcome in result.events:
            if outcome["status"] == "rejected":
                row = int(rows[outcome["index"]]) + 1
                summary.note(row, f"row {row}: {outcome['code']}: {outcome['message']}")
        if progress:
            progress(len(result.events))
    return summary


def _event_batches(
    service: IngestService, path: Path, source: str
) -> Iterator[tuple[Callable[[], IngestResult], np.ndarray]]:
    """The ingest of each batch of the file, to call in turn, with the file's row (from 0) of
    each of its events: a Parquet file's batches as tables, regrouped by person
    (``IMPORT_WINDOW_EVENTS``) and validated column by column (``IngestService.ingest_table``),
    the others' as rows, in the file's order."""
    if file_format(path) == "parquet":
        first = 0
        for window in pq.ParquetFile(path).iter_batches(batch_size=IMPORT_WINDOW_EVENTS):
            order = _by_person(window)
            table = pa.Table.from_batches([window]).take(order)
            del window  # the regrouped copy is what the batches hold
            for start in range(0, table.num_rows, IMPORT_BATCH_EVENTS):
                batch = table.slice(start, IMPORT_BATCH_EVENTS)
                rows = first + order[start : start + IMPORT_BATCH_EVENTS]
                yield (
                    partial(service.ingest_table, batch, source=source, limit=IMPORT_BATCH_EVENTS),
                    rows,
                )
            first += len(order)
        return
    first = 0
    for batch in read_batches(path, IMPORT_BATCH_EVENTS):
        normalized = [normalize_row(row) for row in batch]
        rows = np.arange(first, first + len(batch))
        yield partial(service.ingest, normalized, source=source, limit=IMPORT_BATCH_EVENTS), rows
        first += len(batch)


def _by_person(window: pa.RecordBatch) -> np.ndarray:
    """The order of ``window``'s rows grouped by person (user id, else anonymous id), each
    person's rows in the file's order (a stable sort); rows naming neither last. The file's
    order if its id columns cannot be read as text (validation reports their rows)."""
    ids = [window.column(n) for n in ("user_id", "anonymous_id") if n in window.schema.names]
    try:
        texts = [pc.cast(column, pa.string()) for column in ids]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        texts = []
    if not texts:
        return np.arange(window.num_rows)
    person = pc.coalesce(*texts) if len(texts) > 1 else texts[0]
    return np.asarray(pc.array_sort_indices(person, null_placement="at_end"), dtype=np.int64)


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
                number = summary.rows + offset + 1
                summary.note(number, f"row {number}: {where}: {first['msg']}")
        summary.accepted += catalog.upsert(valid) if valid else 0
        summary.rows += len(batch)
        if progress:
            progress(len(batch))
    return summary
