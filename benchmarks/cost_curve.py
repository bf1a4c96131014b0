"""The cost curve of BENCHMARKS.md: each stage's time and peak memory against the events, from
the rows `scale.py --json` wrote, beside a line growing as the events do.

    .venv/bin/pip install matplotlib      # or: pip install -e ".[bench]"
    .venv/bin/python benchmarks/cost_curve.py scale.json --out benchmarks/cost_curve.svg
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

STAGES = (  # (label, time column, memory column)
    ("import", "import s", "import GB"),
    ("train", "train s", "train GB"),
    ("serve (ready)", "ready s", "serve GB"),
)


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda row: row["events"])
    events = [row["events"] / 1e6 for row in rows]
    figure, (times, memory) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for label, seconds, gigabytes in STAGES:
        times.plot(events, [row[seconds] for row in rows], marker="o", label=label)
        memory.plot(events, [row[gigabytes] for row in rows], marker="o", label=label)
    for axes, column, unit in ((times, "train s", "seconds"), (memory, "train GB", "GB")):
        first = rows[0]
        linear = [first[column] * row["events"] / first["events"] for row in rows]
        axes.plot(events, linear, linestyle=":", color="grey", label="linear from 1M (train)")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel("events (millions)")
        axes.set_ylabel(unit)
        axes.set_xticks(events, [f"{e:g}" for e in events])
        axes.grid(True, which="both", alpha=0.3)
    times.set_title("wall time per stage")
    memory.set_title("peak memory per stage")
    times.legend(fontsize="small")
    figure.savefig(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="the JSON rows scale.py --json wrote")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/cost_curve.svg"))
    options = parser.parse_args()
    plot(json.loads(options.results.read_text()), options.out)
    print(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
