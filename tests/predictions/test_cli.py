"""``persona predictions``, ``persona clusters``, ``persona train --as-of`` and ``persona scores``."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from persona.cli.main import app
from persona.engine import Engine
from persona.predictions.scheduler import predictive_retrain_job
from persona.recommend.scheduler import retrain
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


def write_purchase_log(path: Path, people: int = 24) -> None:
    """Purchases with values but no item: something to cluster, nothing to recommend."""
    lines = ["type,user_id,timestamp,value"]
    for p in range(people):
        for k in range(1 + p % 4):
            lines.append(f"purchase,p{p},{END_S - 86_400 * (k * (1 + p % 3)) - p},{5 + p * k}")
    path.write_text("\n".join(lines) + "\n")


def test_train_skips_the_models_with_nothing_to_learn_from(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    log = tmp_path / "purchases.csv"
    write_purchase_log(log)
    imported = runner.invoke(app, [*home, "import", "events", str(log)])
    assert imported.exit_code == 0, imported.output

    trained = runner.invoke(app, [*home, "train"])
    assert trained.exit_code == 0, trained.output
    skipped = [line for line in trained.output.splitlines() if "skipped" in line]
    assert skipped == ["skipped recommendations: no events with an item to learn from"]
    assert "clusters: k = " in trained.output


def test_train_fails_when_a_model_breaks(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    log = tmp_path / "purchases.csv"
    write_purchase_log(log)
    assert runner.invoke(app, [*home, "import", "events", str(log)]).exit_code == 0
    # a rule segment holding a cluster's name stops cluster training (see docs/predictions.md)
    taken = runner.invoke(app, [*home, "segments", "create", "cluster_1", "profile.monetary > 0"])
    assert taken.exit_code == 0, taken.output

    trained = runner.invoke(app, [*home, "train"])
    assert trained.exit_code == 1, trained.output
    assert "failed clusters: segment 'cluster_1' exists and is not a cluster" in trained.output
    assert "skipped recommendations" in trained.output


def test_scheduled_training_logs_no_error_for_missing_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The nightly jobs of `persona serve` on a store with too little to learn from."""
    engine = Engine.open(Settings(home=tmp_path))
    try:
        ingest_all(engine, [{"type": "purchase", "user_id": "p1", "value": 3.0}])
        engine.predictions.create("purchase_7d", "purchase", 7)
        job = predictive_retrain_job(
            engine.clusters, engine.predictions, engine.segments, interval_seconds=0
        )
        with caplog.at_level(logging.INFO):
            job.run_once()
            retrain(
                engine.storage,
                engine.recommendations,
                engine.clock,
                engine.settings.profiles.event_weights,
            )
    finally:
        engine.close()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3, skipped  # recommendations, clusters, the prediction


def test_create_refuses_an_event_type_that_events_refuse(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path)]
    for event_type in ("purchase\x00", "purchase\n", "page view"):
        args = [*home, "predictions", "create", "p", "--event", event_type, "--horizon-days", "7"]
        refused = runner.invoke(app, args)
        assert refused.exit_code == 1, refused.output
        assert "is not an event type as events take it" in refused.output
    listed = runner.invoke(app, [*home, "predictions", "list"])
    assert listed.exit_code == 0 and " p " not in listed.output
