"""``persona placements`` and ``persona experiments`` from the command line."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from persona.cli.main import app
from persona.decide.schema import DecisionRequest
from persona.engine import Engine
from persona.settings import Settings
from tests.decide.placements import ab

runner = CliRunner()


def test_placements_and_experiments_commands(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path)]
    first = tmp_path / "hero.json"
    first.write_bytes(orjson.dumps(ab()))
    created = runner.invoke(app, [*home, "placements", "create", str(first)])
    assert created.exit_code == 0, created.output
    assert "home_hero v1 (ab, active)" in created.output

    second = tmp_path / "hero2.json"
    second.write_bytes(orjson.dumps(ab(weights=(1.0, 2.0))))
    updated = runner.invoke(app, [*home, "placements", "update", "home_hero", str(second)])
    assert updated.exit_code == 0 and "home_hero v2" in updated.output
    paused = runner.invoke(app, [*home, "placements", "pause", "home_hero"])
    assert "paused" in paused.output
    resumed = runner.invoke(app, [*home, "placements", "resume", "home_hero"])
    assert "active" in resumed.output
    listed = runner.invoke(app, [*home, "placements", "list"])
    assert listed.exit_code == 0 and "home_hero" in listed.output and "v0, v1" in listed.output

    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(ab(fallback="nope")))
    refused = runner.invoke(app, [*home, "placements", "create", str(bad)])
    assert refused.exit_code == 1 and "fallback" in refused.output
    missing = runner.invoke(app, [*home, "placements", "pause", "nothing"])
    assert missing.exit_code == 1

    engine = Engine.open(Settings(home=tmp_path))
    try:
        for i in range(20):
            engine.decisions.decide(DecisionRequest(user_id=f"u{i}", placements=["home_hero"]))
    finally:
        engine.close()
    experiments = runner.invoke(app, [*home, "experiments", "list"])
    assert experiments.exit_code == 0
    assert "home_hero.v1" in experiments.output and "home_hero.v2" in experiments.output
    results = runner.invoke(app, [*home, "experiments", "results", "home_hero.v2"])
    assert results.exit_code == 0, results.output
    body = orjson.loads(results.stdout)
    assert body["experiment_id"] == "home_hero.v2"
    assert sum(a["units"] for a in body["arms"]) == 20
