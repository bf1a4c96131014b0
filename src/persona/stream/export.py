"""The stream exported to files: `persona worker --export DIR`, for a warehouse to load.

Each read of the ``export`` consumer group becomes one JSON Lines file,
``DIR/date=YYYY-MM-DD/<first entry>_<last entry>.jsonl`` (the day of the export, UTC), one
message a line (``{"id", "kind", "data", "entry"}``), written whole or not at all (a temporary
file, flushed to disk, renamed). The files' names say which entries of the stream they hold, so
exactly once holds without a position kept elsewhere: a message the stream gives again (an
exporter died after writing its file, before acknowledging) has an entry no later than the last
one written, and is dropped. One process exports at a time (the ``stream-export`` lease):
entries then reach the files in the stream's order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson

from persona.stream.redis_stream import Received

FILE = re.compile(r"^(\d+)-(\d+)_(\d+)-(\d+)\.jsonl$")


def _entry(entry_id: str) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split("-")
    return int(milliseconds), int(sequence)


class Export:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._last: tuple[int, int] | None = None  # the latest entry written, once looked up

    def last_written(self) -> tuple[int, int]:
        """The latest entry in the files (0-0 before the first): in the latest day's
        directory, which the latest file is in."""
        if self._last is None:
            days = sorted(self.root.glob("date=*")) if self.root.exists() else []
            ends = [
                (int(m[3]), int(m[4]))
                for day in days[-1:]
                for path in day.iterdir()
                if (m := FILE.match(path.name))
            ]
            self._last = max(ends, default=(0, 0))
        return self._last

    def write(self, received: Sequence[Received]) -> int:
        """Write the messages after the latest entry written as one file; returns how many."""
        last = self.last_written()
        fresh = sorted(
            (r for r in received if _entry(r.entry_id) > last), key=lambda r: _entry(r.entry_id)
        )
        if not fresh:
            return 0
        day = self.root / f"date={datetime.now(UTC).date().isoformat()}"
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
        return len(fresh)
