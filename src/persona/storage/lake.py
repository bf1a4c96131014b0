"""The event lake: the event log kept as Parquet, one file per day, for training and analytics.

Layout of the lake's directory (``<home>/lake``)::

    events/date=2026-01-31/part-00000042-0.parquet  the day's events (UTC), sorted by time, id
    manifest.json                                   the file of each day, the store's last write
                                                    copied, deletions noted and not yet done
    .lock                                           held by each operation on the lake

The day directories are named as Hive names partitions (``date=...``): pyarrow.dataset, DuckDB
and Spark read a ``date`` column from the path.

Copying. The store numbers its writes of events in commit order and reads the events of the
writes after a number from one snapshot, in event-time order (``Storage.events_after``); the
manifest keeps the last number copied. A sync rewrites the file of each day those events fall on
with the day's rows and the new ones; an event written again (a profile merge moves events to
the person's key) replaces its older copy. Nothing is missed (a write that commits later has a
later number) and nothing is copied twice (a day's file holds each event id once). One day at a
time is held in memory, beside one chunk of the store's rows.

Crashes. New files carry a generation number that only the new manifest names. The manifest is
replaced last (``os.replace``, after ``fsync`` of the files), and the files it no longer names
are deleted after it. A crash leaves the previous manifest, which names whole files only; the
files it does not name are deleted by the next operation, before anything reads. Training reads
only the files the manifest names, holding the lock.

A first sync. Training reads the columns a first sync copies as it copies them, and the files
are written on a thread of their own (most of their cost is the file system's: MovieLens
spreads its events over 3,840 days), which also makes them durable and writes the manifest. The
lock is held until then, so the next operation on the lake, in this process or another, waits
for it; ``wait`` does too (``Engine.close`` calls it). A failure is logged and leaves no
manifest: the next operation deletes the files and the next sync copies everything again.

Deletions. An erasure or a retention run notes the deletion in the manifest before the store
commits it (``deleting``) and rewrites the files that hold such rows once it has. If the process
dies in between, the next sync or read does the rewrite before anything else. An erasure is done
only if the store holds its tombstones by then (its transaction committed); one that rolled back
is dropped. A retention cutoff is applied either way: it only removes what is past its age.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from persona.clock import DAY_MS
from persona.durable import fsync_path, fsync_paths
from persona.identity import split_key
from persona.storage.protocols import (
    EVENT_COLUMNS,
    INTERACTION_COLUMNS,
    LakeSync,
    Storage,
    WrittenEvents,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOCK = ".lock"
EVENTS = "events"
FORMAT = 1
CHUNK_ROWS = 250_000  # rows of the store read at a time: about 100 MB of text on SQLite
ORDER = [("occurred_at_ms", "ascending"), ("event_id", "ascending")]
PARTITIONING = ds.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")
# Every text column repeats values but the event id, which a dictionary would only slow down.
DICTIONARY_COLUMNS = [name for name in EVENT_COLUMNS.names if name != "event_id"]
# A day with fewer rows is written plain: compressing a few kilobytes saves nothing worth the
# encoders' set-up, which is a third of writing such a file (MovieLens spreads 100,000 events
# over 3,840 days of 26 rows on average; the first sync writes them all).
PLAIN_DAY_ROWS = 1_000
# A first sync's files are written on a thread of their own (``_DayFiles``); at most this many
# rows wait for it, so memory stays bounded when the store reads faster than files are written.
PENDING_ROWS = 1_000_000
_EPOCH = date(1970, 1, 1)


@dataclass(slots=True)
class DayFile:
    """The one file of a day, and what reads decide on without opening it."""

    file: str  # relative to the lake's directory
    rows: int
    first_ms: int
    last_ms: int


@dataclass(slots=True)
class Erasure:
    """An erasure noted in the manifest: the person's profile keys and tombstones."""

    keys: list[str]
    tombstones: list[str]


@dataclass(slots=True)
class Manifest:
    """What the lake holds; ``manifest.json`` on disk."""

    log_id: str | None = None  # the store's event log the lake was copied from
    write_seq: int = -1  # the last write copied (-1: none)
    generation: int = 0  # the number of the last set of files written
    days: dict[str, DayFile] = field(default_factory=dict)  # by ISO date
    erasures: list[Erasure] = field(default_factory=list)
    expiries: dict[str, int] = field(default_factory=dict)  # event type -> cutoff in ms

    def to_json(self) -> bytes:
        document = {
            "format": FORMAT,
            "log_id": self.log_id,
            "write_seq": self.write_seq,
            "generation": self.generation,
            "days": {
                day: {"file": f.file, "rows": f.rows, "first_ms": f.first_ms, "last_ms": f.last_ms}
                for day, f in sorted(self.days.items())
            },
            "erasures": [{"keys": e.keys, "tombstones": e.tombstones} for e in self.erasures],
            "expiries": self.expiries,
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        document: dict[str, Any] = orjson.loads(data)
        if document.get("format") != FORMAT:
            raise ValueError(f"a lake manifest of format {document.get('format')!r}")
        return cls(
            log_id=document["log_id"],
            write_seq=int(document["write_seq"]),
            generation=int(document["generation"]),
            days={day: DayFile(**f) for day, f in document["days"].items()},
            erasures=[Erasure(e["keys"], e["tombstones"]) for e in document["erasures"]],
            expiries={kind: int(ms) for kind, ms in document["expiries"].items()},
        )


class LakeDeletionNotes:
    """``LakeDeletions`` for one ``ParquetEventLake.deleting`` block."""

    def __init__(self, work: _Work | None) -> None:
        self._work = work  # None: there is no lake yet, so nothing of it to delete
        self.removed = 0

    def erase(self, profile_keys: Collection[str], tombstones: Collection[str]) -> None:
        if self._work is not None:
            self._work.manifest.erasures.append(Erasure(sorted(profile_keys), sorted(tombstones)))
            self._work.save_manifest()

    def expire(self, event_type: str, before_ms: int) -> None:
        if self._work is not None:
            expiries = self._work.manifest.expiries
            expiries[event_type] = max(expiries.get(event_type, before_ms), before_ms)
            self._work.save_manifest()


class ParquetEventLake:
    """The event log as Parquet under ``root``, copied from ``storage`` (see the module)."""

    def __init__(self, root: Path, storage: Storage, *, chunk_rows: int = CHUNK_ROWS) -> None:
        self.root = root
        self._storage = storage
        self._chunk_rows = chunk_rows
        self._finishing: Future[None] | None = None  # a first sync's files being written

    def sync(self, *, rebuild: bool = False) -> LakeSync:
        """Do the deletions noted, then copy the events the store's writes added or changed
        since the last sync (every event with ``rebuild``)."""
        started = time.perf_counter()
        with self._work() as work:
            report = LakeSync(removed=work.settle(self._storage))
            work.commit()
            self._copy(work, report, rebuild=rebuild)
            work.commit()
        report.seconds = time.perf_counter() - started
        return report

    def interaction_columns(self, before_ms: int | None = None) -> pa.Table:
        """``Storage.interaction_columns`` read from the lake, synced first: the same columns,
        rows and order. Days that begin at or after ``before_ms`` are not opened."""
        with ExitStack() as held:
            work = held.enter_context(self._work())
            work.settle(self._storage)
            work.commit()
            if not work.manifest.days:
                # A first sync copies every day: what training reads is then what it wrote,
                # kept as it goes rather than read back from thousands of files, while the
                # files are written and committed on their own thread (see the module).
                work.written, work.files = [], _DayFiles()
                try:
                    self._copy(work, LakeSync(), rebuild=False)
                except BaseException:
                    work.files.abandon()
                    raise
                self._finishing = work.files.then(work.commit, held.pop_all().close)
                return _interaction_table(work.written, before_ms)
            self._copy(work, LakeSync(), rebuild=False)
            work.commit()
            days = sorted(work.manifest.days.items())
            if before_ms is not None:
                days = [(day, f) for day, f in days if f.first_ms < before_ms]
            if not days:
                return INTERACTION_COLUMNS.empty_table()
            # The days in order, each sorted by (time, id): the rows come in training's order.
            dataset = ds.dataset(
                [str(self.root / f.file) for _, f in days],
                format="parquet",
                partitioning=PARTITIONING,
                partition_base_dir=str(self.root / EVENTS),
            )
            table = dataset.to_table(
                columns=INTERACTION_COLUMNS.names, filter=_interactions(before_ms)
            )
        return table.cast(INTERACTION_COLUMNS)

    def wait(self) -> None:
        """Until a first sync's files are written and committed (a failure was logged)."""
        if self._finishing is not None:
            with suppress(Exception):
                self._finishing.result()
            self._finishing = None

    def files(self) -> list[Path]:
        """The files of the lake, one per day in day order (what a reader should read)."""
        with self._work() as work:
            return [self.root / f.file for _, f in sorted(work.manifest.days.items())]

    @contextmanager
    def deleting(self) -> Iterator[LakeDeletionNotes]:
        """Hold the lake while the block deletes events from the store; then delete the same
        rows here. Each deletion the block notes (``erase``, ``expire``) is saved in the
        manifest at once, so that a crash before the rewrite leaves it to the next operation.
        Without a lake yet, nothing is noted: a first sync comes after the block and copies
        what the store holds then. A failure to rewrite now is logged and left to the next
        sync."""
        with self._locked():
            work = self._existing()
            notes = LakeDeletionNotes(work)
            try:
                yield notes
            finally:
                if work is not None:
                    try:
                        notes.removed = work.settle(self._storage)
                        work.commit()
                    except Exception:
                        log.exception("the lake's deletions are left to its next sync")

    @contextmanager
    def _work(self) -> Iterator[_Work]:
        """The lake locked, its manifest loaded (an empty one for a new lake, whose directory
        may still hold the files of a first sync that died)."""
        with self._locked():
            work = self._existing()
            if work is None:
                work = _Work(self.root, Manifest())
                work.collect_garbage()
            yield work

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One operation on the lake at a time, across threads and processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes
            yield

    def _existing(self) -> _Work | None:
        """The lake's manifest, with the files it does not name deleted; None without one."""
        path = self.root / MANIFEST
        if not path.exists():
            return None
        work = _Work(self.root, Manifest.from_json(path.read_bytes()))
        work.collect_garbage()
        return work

    def _copy(self, work: _Work, report: LakeSync, *, rebuild: bool) -> None:
        """Copy the events of the writes after the manifest's last one into the days' files."""
        if rebuild:
            work.clear()
            report.rebuilt = True
        seen = work.manifest
        with self._storage.events_after(seen.write_seq, self._chunk_rows) as written:
            other_store = seen.log_id not in (None, written.log_id)
            if not other_store and written.write_seq >= seen.write_seq:
                self._copy_days(work, written, report)
                return
        # The lake was copied from another store, or from this one before a restore: again.
        work.clear()
        report.rebuilt = True
        with self._storage.events_after(-1, self._chunk_rows) as written:
            self._copy_days(work, written, report)

    def _copy_days(self, work: _Work, written: WrittenEvents, report: LakeSync) -> None:
        current: int | None = None  # the day being gathered, in days since 1970-01-01
        parts: list[pa.Table] = []
        for chunk in _read_ahead(written.chunks):
            # In time order from the store; sorted once by (time, id) here rather than a day
            # at a time (a day's rows stay together; MovieLens has 3,840 days of 26 rows).
            chunk = chunk.sort_by(ORDER)
            days = np.floor_divide(chunk["occurred_at_ms"].to_numpy(), DAY_MS)
            cuts = (np.flatnonzero(np.diff(days)) + 1).tolist()
            for start, end in zip([0, *cuts], [*cuts, len(days)], strict=True):
                day = int(days[start])
                if current is not None and day != current:
                    if day < current:
                        raise ValueError("the store gave events out of time order")
                    work.merge_day(_day_name(current), parts, report)
                    parts = []
                current = day
                parts.append(chunk.slice(start, end - start))
        if current is not None:
            work.merge_day(_day_name(current), parts, report)
        if written.log_id != work.manifest.log_id or written.write_seq != work.manifest.write_seq:
            work.manifest.log_id, work.manifest.write_seq = written.log_id, written.write_seq
            work.changed = True
        report.write_seq = written.write_seq


class _Work:
    """One locked operation on the lake: the files it writes and the ones they replace, made
    the lake's by ``commit``."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self.manifest = manifest
        self.generation = manifest.generation + 1
        self.replaced: list[Path] = []
        self.changed = False
        # When a list: the training columns of every day written, in day order (only a sync
        # that writes every day keeps them, so that they are the whole lake).
        self.written: list[pa.Table] | None = None
        # When set: writes the day files on its own thread (a first sync), else written here.
        self.files: _DayFiles | None = None

    def merge_day(self, day: str, parts: list[pa.Table], report: LakeSync) -> None:
        """The day's rows with the rows of ``parts`` (each sorted; they replace the rows of
        the same event ids)."""
        fresh = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        report.copied += fresh.num_rows
        report.days.append(day)
        old = self.manifest.days.get(day)
        if old is not None:
            kept = _read(self.root / old.file)
            again = pc.is_in(kept["event_id"], value_set=fresh["event_id"].combine_chunks())
            fresh = pa.concat_tables([kept.filter(pc.invert(again)), fresh])
        self.write_day(day, fresh if old is None and len(parts) == 1 else fresh.sort_by(ORDER))

    def write_day(self, day: str, table: pa.Table) -> None:
        """The day's file becomes ``table``, already in order (none when it is empty)."""
        old = self.manifest.days.pop(day, None)
        # "-0": the generation's one file in the day's directory
        name = f"{EVENTS}/date={day}/part-{self.generation:08d}-0.parquet"
        if old is not None and old.file != name:
            self.replaced.append(self.root / old.file)
        if table.num_rows:
            path = self.root / name
            if self.files is not None:
                self.files.write(path, table)
            else:
                _write_file(path, table)
            times = table["occurred_at_ms"]
            first, last = int(times[0].as_py()), int(times[-1].as_py())
            self.manifest.days[day] = DayFile(name, table.num_rows, first, last)
            if self.written is not None:
                self.written.append(table.select(INTERACTION_COLUMNS.names))
        self.changed = True

    def settle(self, storage: Storage) -> int:
        """Do the deletions the manifest notes; how many rows they removed."""
        m = self.manifest
        if not m.erasures and not m.expiries:
            return 0
        with storage.read() as uow:
            done = [e for e in m.erasures if uow.tombstones.erased(e.tombstones)]
        keys = {key for erasure in done for key in erasure.keys}
        removed = 0
        for day, day_file in sorted(m.days.items()):
            expiring = {kind: ms for kind, ms in m.expiries.items() if day_file.first_ms < ms}
            if not keys and not expiring:
                continue
            path = self.root / day_file.file
            columns = pq.ParquetFile(path).read(columns=_DELETION_COLUMNS).combine_chunks()
            doomed = _doomed(columns, keys, expiring)
            count = pc.sum(doomed).as_py() or 0
            if count:
                table = _read(path)
                self.write_day(day, table.filter(pc.invert(doomed)))
                removed += count
        m.erasures, m.expiries = [], {}
        self.changed = True
        return removed

    def clear(self) -> None:
        """Forget every day and the store the lake was copied from."""
        for day in list(self.manifest.days):
            self.write_day(day, EVENT_COLUMNS.empty_table())
        self.manifest.log_id, self.manifest.write_seq = None, -1
        self.changed = True

    def save_manifest(self) -> None:
        """Write the manifest atomically: a new file made durable, then renamed over the old."""
        path = self.root / MANIFEST
        temporary = path.with_name(MANIFEST + ".tmp")
        with open(temporary, "wb") as handle:
            handle.write(self.manifest.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        fsync_path(self.root)

    def commit(self) -> None:
        """Make the files written so far the lake's, and delete the ones they replace."""
        if not self.changed:
            return
        # The new files, and their names, are on disk before the manifest names them.
        files = self._new_files()
        directories = {p.parent for p in files}
        fsync_paths([*files, *directories, *({self.root / EVENTS} if files else ())])
        self.manifest.generation = self.generation
        self.save_manifest()
        for path in self.replaced:
            path.unlink(missing_ok=True)
            _remove_if_empty(path.parent)
        self.replaced = []
        self.changed = False
        self.generation += 1

    def collect_garbage(self) -> None:
        """Delete the files of the events directory the manifest does not name (left by an
        operation that died before its commit, or replaced by one that died after it)."""
        named = {self.root / f.file for f in self.manifest.days.values()}
        named_directories = {path.parent for path in named}
        events = self.root / EVENTS
        if not events.is_dir():
            return
        for directory in events.iterdir():
            if not directory.is_dir():
                directory.unlink()  # nothing the lake writes
                continue
            left = [path for path in directory.iterdir() if path not in named]
            for path in left:
                path.unlink()
            if directory not in named_directories:
                _remove_if_empty(directory)

    def _new_files(self) -> list[Path]:
        return [
            self.root / f.file
            for f in self.manifest.days.values()
            if f.file.endswith(f"part-{self.generation:08d}-0.parquet")
        ]


def _write_file(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if table.num_rows < PLAIN_DAY_ROWS:
        pq.write_table(table, path, compression="none", use_dictionary=False)
    else:
        pq.write_table(table, path, compression="zstd", use_dictionary=DICTIONARY_COLUMNS)


class _DayFiles:
    """Day files written in order on one thread of their own, a file per call of pyarrow's
    Parquet writer, at most ``PENDING_ROWS`` rows waiting: ``write`` waits for the oldest
    beyond that, and raises its failure.

    (Handing many small days at once to pyarrow's dataset writer, which writes them on its own
    threads, cost the first MovieLens training more: 1.5 s more processor and about 1 s more
    time with 3,840 days on two cores.)"""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="persona-lake-files")
        self._pending: deque[tuple[Future[None], int]] = deque()
        self._rows = 0  # pending

    def write(self, path: Path, table: pa.Table) -> None:
        rows = table.num_rows
        while self._pending and self._rows + rows > PENDING_ROWS:
            future, done = self._pending.popleft()
            self._rows -= done
            future.result()
        self._rows += rows
        self._pending.append((self._thread.submit(_write_file, path, table), rows))

    def abandon(self) -> None:
        """Write nothing more; return once the files being written are."""
        self._thread.shutdown(wait=True, cancel_futures=True)

    def then(self, commit: Callable[[], None], release: Callable[[], None]) -> Future[None]:
        """``commit`` on the same thread once every file is written (not if one failed), then
        ``release`` in any case; a failure is logged."""
        written = [future for future, _ in self._pending]

        def finish() -> None:
            try:
                for future in written:  # done already: one thread, in order
                    future.result()
                commit()
            except Exception:
                log.exception("the lake's first copy failed; the next sync copies it again")
                raise
            finally:
                release()

        finishing = self._thread.submit(finish)
        self._thread.shutdown(wait=False)
        return finishing


_DELETION_COLUMNS = ["profile_key", "user_id", "anonymous_id", "type", "occurred_at_ms"]


def _doomed(table: pa.Table, keys: set[str], expiring: dict[str, int]) -> pa.ChunkedArray:
    """Which rows the deletions remove: those of an erased person (by the rule the store's
    erasure follows: their key, their user id, or their anonymous id on a row without another
    user's id) and those past their type's cutoff."""
    doomed = pa.chunked_array([np.zeros(table.num_rows, dtype=bool)])
    if keys:
        users: list[str] = []
        anonymous: list[str] = []
        for key in keys:
            namespace, bare = split_key(key)
            (users if namespace == "user" else anonymous).append(bare)
        user_id = table["user_id"]
        theirs = pc.or_(
            pc.is_in(table["profile_key"], value_set=pa.array(sorted(keys), pa.string())),
            pc.is_in(user_id, value_set=pa.array(users, pa.string())),
        )
        visitor = pc.and_(
            pc.is_in(table["anonymous_id"], value_set=pa.array(anonymous, pa.string())),
            pc.is_null(user_id),
        )
        doomed = pc.or_(doomed, pc.fill_null(pc.or_(theirs, visitor), False))
    for kind, before_ms in expiring.items():
        old = pc.and_(pc.equal(table["type"], kind), pc.less(table["occurred_at_ms"], before_ms))
        doomed = pc.or_(doomed, old)
    return doomed


def _interactions(before_ms: int | None) -> ds.Expression:
    """The rows training reads: those naming an item (before ``before_ms`` if given)."""
    condition = ds.field("item_id").is_valid()
    if before_ms is not None:
        condition &= ds.field("occurred_at_ms") < before_ms
    return condition


def _interaction_table(days: list[pa.Table], before_ms: int | None) -> pa.Table:
    """The training columns of days held in memory, as a read of their files gives them."""
    if not days:
        return INTERACTION_COLUMNS.empty_table()
    # One table first: a dataset over the days scans them one by one (MovieLens: 3,840 days,
    # 0.3 s against 0.07).
    table = pa.concat_tables(days).combine_chunks()
    return table.filter(_interactions(before_ms)).cast(INTERACTION_COLUMNS)


def _read_ahead(chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """``chunks``, each read on a helper thread while the caller writes the one before: the
    store's read (SQLite building text, PostgreSQL's driver) and Parquet's writer both run
    without the interpreter lock, so on two cores the copy takes the longer of the two rather
    than their sum."""
    with ThreadPoolExecutor(1, thread_name_prefix="persona-lake") as helper:
        coming = helper.submit(next, chunks, None)
        while (chunk := coming.result()) is not None:
            coming = helper.submit(next, chunks, None)
            yield chunk


def _read(path: Path) -> pa.Table:
    """One file of the lake as it was written (without the ``date`` of its directory)."""
    return pq.ParquetFile(path).read().cast(EVENT_COLUMNS)


def _day_name(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def _remove_if_empty(directory: Path) -> None:
    with suppress(OSError):  # not empty (or gone already)
        directory.rmdir()
