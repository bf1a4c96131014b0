"""The served lists, evaluated as served: written through the services into a fresh home,
trained as `persona train` trains, answered as `persona recommend --all` answers; and
`persona evaluate --home` on a home's own events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from persona.cli.main import app
from persona.cli.served import ServedPersona
from persona.demo.synthetic import Shape, generate
from persona.recommend.algorithms.popularity import MostPopular
from persona.recommend.evaluation import (
    DEPTH,
    ScorerRecommender,
    Split,
    protocol_splits,
    ranking_metrics,
    workload_frame,
)

END = datetime(2026, 6, 1, tzinfo=UTC)
SHAPE = Shape(people=1_500, items=600, events=20_000, days=60, seed=11, end=END)
runner = CliRunner()


@pytest.fixture(scope="module")
def split() -> Split:
    workload = generate(SHAPE)
    return protocol_splits(workload_frame(workload.events, workload.items))[1]


def test_the_served_lists_beat_popularity_and_leave_out_what_each_person_has(
    split: Split,
) -> None:
    people = np.arange(split.train.n_users, dtype=np.int64)
    served = ServedPersona()
    try:
        served.fit(split.train)
        top = served.recommend(people, split.train.matrix(), DEPTH)
    finally:
        served.close()
    popularity = ScorerRecommender(MostPopular())
    popularity.fit(split.train)
    popular = popularity.recommend(people, split.train.matrix(), DEPTH)
    ours = ranking_metrics(top, split.truth, split.train)["ndcg@10"]
    theirs = ranking_metrics(popular, split.truth, split.train)["ndcg@10"]
    assert ours > 1.3 * theirs, (ours, theirs)
    assert (top >= 0).sum(axis=1).min() == DEPTH  # a full list for everyone
    history = split.train.matrix()
    listed = top[top >= 0]
    rows = np.repeat(people, (top >= 0).sum(axis=1))
    assert history[rows, listed].sum() == 0  # nothing anyone already has
    assert split.train.item_table.available[listed].all()  # nothing absent from train


def test_evaluate_home_measures_a_home_on_its_own_events(tmp_path: Path) -> None:
    out, home = tmp_path / "shop", tmp_path / "home"
    made = runner.invoke(
        app,
        ["generate", "--out", str(out), "--people", "400", "--items", "150", "--events", "6000",
         "--seed", "5", "--end", "2026-06-01T00:00:00"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    for name in ("items", "events"):
        done = runner.invoke(
            app, ["--home", str(home), "import", name, str(out / f"{name}.parquet")]
        )
        assert done.exit_code == 0, done.output
    report = tmp_path / "report.json"
    evaluated = runner.invoke(
        app,
        ["evaluate", "--home", str(home), "--only", "MostPopular", "--only", "persona (served)",
         "--out", str(report)],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    rows = {row["name"]: row for row in json.loads(report.read_text())["rows"]}
    assert set(rows) == {"MostPopular", "persona (served)"}
    served, popular = rows["persona (served)"]["metrics"], rows["MostPopular"]["metrics"]
    assert served["ndcg@10"] > popular["ndcg@10"], (served, popular)
    assert "persona (served) / best baseline (MostPopular)" in evaluated.output
