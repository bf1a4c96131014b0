"""The stream exported to files: `persona worker --export DIR`, for a warehouse to load.

Each read of the ``export`` consumer group becomes one JSON Lines file,
``DIR/date=YYYY-MM-DD/<first entry>_<last entry>.jsonl`` (the day of the export, UTC), one
message a line (``{"id", "kind", "data", "entry"}``), written whole or not at all (a temporary
file, flushed to disk, renamed). Each message is written once, though it can reach the exporter
twice in two ways:

- the stream gives an entry again (an exporter died after writing its file, before
  acknowledging). The files' names say which entries they hold: an entry no later than the
  last one written is dropped;
- the relay published a message again under a new entry (it died after publishing, before
  noting what it published). Those copies carry the message's id: the ids written are kept in
  an index beside the files (``.written.sqlite``), for ``kept_days``, and a message whose id is
  there is dropped. The index is written after the file it describes; a new exporter first
  indexes the latest file again, which covers a death between the two.

One process exports at a time (the ``stream-export`` lease): entries then reach the files in
the stream's order.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from persona.stream.redis_stream import Received

FILE = re.compile(r"^(\d+)-(\d+)_(\d+)-(\d+)\.jsonl$")
INDEX = ".written.sqlite"
_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS written (
    message_id TEXT PRIMARY KEY,
    day TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_written_day ON written (day);
"""


def _entry(entry_id: str) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split("-")
    return int(milliseconds), int(sequence)


def _last_entry(path: Path) -> tuple[int, int]:
    """The last entry a file holds, from its name."""
    match = FILE.match(path.name)
    assert match is not None
    return int(match[3]), int(match[4])


class Export:
    def __init__(self, root: Path, kept_days: float = 7.0) -> None:
        self.root = root
        self._kept_days = kept_days
        self._last = (0, 0)  # the latest entry written (see ``_open``)
        self._index: sqlite3.Connection | None = None  # opened at the first write
        self._pruned_on: str | None = None

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def _open(self) -> sqlite3.Connection:
        """The index of the ids written, opened at the first write, with what the latest file
        holds: its last entry, and its ids (a new exporter's predecessor may have died between
        writing that file and indexing it)."""
        if self._index is None:
            self.root.mkdir(parents=True, exist_ok=True)
            index = sqlite3.connect(self.root / INDEX, check_same_thread=False)
            index.execute("PRAGMA journal_mode=WAL")
            index.executescript(_INDEX_SCHEMA)
            latest = self._latest_file()
            if latest is not None:
                ids = [orjson.loads(line)["id"] for line in latest.read_bytes().splitlines()]
                self._note(index, ids, latest.parent.name.removeprefix("date="))
                self._last = _last_entry(latest)
            self._index = index
        return self._index

    def _latest_file(self) -> Path | None:
        """The file holding the latest entry: in the latest day's directory."""
        days = sorted(self.root.glob("date=*")) if self.root.exists() else []
        files = [path for day in days[-1:] for path in day.iterdir() if FILE.match(path.name)]
        return max(files, key=_last_entry, default=None)

    @staticmethod
    def _note(index: sqlite3.Connection, ids: Sequence[str], day: str) -> None:
        with index:  # one transaction
            index.executemany(
                "INSERT OR IGNORE INTO written (message_id, day) VALUES (?, ?)",
                [(i, day) for i in ids],
            )

    def _unwritten(self, index: sqlite3.Connection, received: list[Received]) -> list[Received]:
        """The first copy of each message whose id the index does not hold."""
        ids = orjson.dumps(sorted({r.message.message_id for r in received})).decode()
        rows = index.execute(
            "SELECT message_id FROM written WHERE message_id IN (SELECT value FROM json_each(?))",
            (ids,),
        )
        held = {row[0] for row in rows}
        kept = []
        for r in received:
            if r.message.message_id not in held:
                held.add(r.message.message_id)
                kept.append(r)
        return kept

    def _prune(self, index: sqlite3.Connection, today: str) -> None:
        """Forget the ids of files older than ``kept_days`` (once a day)."""
        if self._pruned_on == today:
            return
        oldest = datetime.now(UTC).timestamp() - self._kept_days * 86_400
        before = datetime.fromtimestamp(oldest, UTC).date().isoformat()
        with index:
            index.execute("DELETE FROM written WHERE day < ?", (before,))
        self._pruned_on = today

    def write(self, received: Sequence[Received]) -> int:
        """Write the messages after the latest entry written as one file; returns how many."""
        index = self._open()
        later = sorted(
            (r for r in received if _entry(r.entry_id) > self._last),
            key=lambda r: _entry(r.entry_id),
        )
        fresh = self._unwritten(index, later)
        if not fresh:
            return 0
        today = datetime.now(UTC).date().isoformat()
        self._prune(index, today)
        day = self.root / f"date={today}"
        day.mkdir(parents=True, exist_ok=True)
        name = f"{fresh[0].entry_id}_{fresh[-1].entry_id}.jsonl"
        lines = b"".join(
            orjson.dumps(
                {
                    "id": r.message.message_id,
                    "kind": r.message.kind,
                    "data": r.message.body,
                    "entry": r.entry_id,
                }
            )
            + b"\n"
            for r in fresh
        )
        temporary = day / f".{name}.tmp"
        with temporary.open("wb") as file:
            file.write(lines)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, day / name)
        directory = os.open(day, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        self._last = _entry(fresh[-1].entry_id)
        self._note(index, [r.message.message_id for r in fresh], today)
        return len(fresh)
