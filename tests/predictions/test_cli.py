"""``persona predictions``, ``persona clusters``, ``persona train --as-of`` and ``persona scores``."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from persona.cli.main import app
from persona.engine import Engine
from persona.settings import Settings
from tests.predictions.synthetic import behaviour_groups, ingest_all, shop_events

runner = CliRunner()
END_S = 1_767_225_600


def test_define_train_as_of_and_export_scores(tmp_path: Path) -> None:
    engine = Engine.open(Settings(home=tmp_path))
    events, _ = shop_events(people=30, end_s=END_S)
    ingest_all(engine, events + behaviour_groups(per_group=5))
    engine.close()
    home = ["--home", str(tmp_path)]

    created = runner.invoke(
        app,
        [
            *home,
            "predictions",
            "create",
            "purchase_7d",
            "--event",
            "purchase",
            "--horizon-days",
            "7",
        ],
    )
    assert created.exit_code == 0, created.output
    assert "purchase within 7d" in created.output
    again = runner.invoke(
        app, [*home, "predictions", "create", "purchase_7d", "--event", "x", "--horizon-days", "7"]
    )
    assert again.exit_code == 1 and "exists" in again.output

    as_of = END_S - 10 * 86_400
    trained = runner.invoke(app, [*home, "train", "--as-of", str(as_of)])
    assert trained.exit_code == 0, trained.output
    assert "clusters: k = " in trained.output
    assert "prediction purchase_7d: held-out ROC-AUC" in trained.output

    listed = runner.invoke(app, [*home, "predictions", "list"])
    assert listed.exit_code == 0 and "purchase_7d" in listed.output and "yes" in listed.output
    clusters = runner.invoke(app, [*home, "clusters", "list"])
    assert clusters.exit_code == 0 and "cluster_1" in clusters.output

    out = tmp_path / "scores.jsonl"
    exported = runner.invoke(app, [*home, "scores", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert {f"p{p}" for p in range(30)} <= {line["user_id"] for line in lines}
    assert all(set(line) == {"user_id", "scores"} for line in lines)
    assert all(0.0 <= line["scores"]["purchase_7d"] <= 1.0 for line in lines)

    engine = Engine.open(Settings(home=tmp_path))
    try:
        model = engine.clusters.model()
        assert model is not None and model.trained_before_ms == as_of * 1000
        evaluation = engine.predictions.get("purchase_7d").evaluation
        assert evaluation is not None and evaluation["trained_before_ms"] == as_of * 1000
        assert evaluation["scored_as_of_ms"] == as_of * 1000
        champion = engine.recommendations.registry.champion()
        assert champion is not None and champion.manifest["trained_before"] == as_of * 1000
    finally:
        engine.close()

    to_stdout = runner.invoke(app, [*home, "scores"])
    assert to_stdout.exit_code == 0
    assert len(to_stdout.stdout.splitlines()) == len(lines)


def test_clusters_list_before_training(tmp_path: Path) -> None:
    listed = runner.invoke(app, ["--home", str(tmp_path), "clusters", "list"])
    assert listed.exit_code == 0 and "no clusters yet" in listed.output
