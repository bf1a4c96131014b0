"""``persona segments``: create, list, preview, members and refresh."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from persona.cli.main import app
from persona.engine import Engine
from persona.settings import Settings

runner = CliRunner()


def test_segments_commands(tmp_path: Path) -> None:
    engine = Engine.open(Settings(home=tmp_path))
    engine.ingest.ingest([{"type": "view", "user_id": f"u{i}", "item_id": "i1"} for i in range(3)])
    engine.close()
    home = ["--home", str(tmp_path)]

    created = runner.invoke(app, [*home, "segments", "create", "viewers", "did(view) within 7d"])
    assert created.exit_code == 0, created.output
    assert "3 members" in created.output

    listed = runner.invoke(app, [*home, "segments", "list"])
    assert listed.exit_code == 0
    assert "viewers" in listed.output and "did(view) within 7d" in listed.output

    preview = runner.invoke(app, [*home, "segments", "preview", "did(view)", "--sample", "1"])
    assert preview.exit_code == 0
    assert orjson.loads(preview.stdout) == {
        "size": 3,
        "sample": [{"profile_id": "u0", "kind": "user"}],
    }

    members = runner.invoke(app, [*home, "segments", "members", "viewers"])
    assert members.exit_code == 0
    assert [orjson.loads(line)["profile_id"] for line in members.stdout.splitlines()] == [
        "u0",
        "u1",
        "u2",
    ]

    refreshed = runner.invoke(app, [*home, "segments", "refresh"])
    assert refreshed.exit_code == 0
    assert "viewers: 0 entered, 0 left" in refreshed.output

    bad = runner.invoke(app, [*home, "segments", "create", "broken", "did(view"])
    assert bad.exit_code == 1
    assert "column 9" in bad.output and "        ^" in bad.output
    missing = runner.invoke(app, [*home, "segments", "members", "nope"])
    assert missing.exit_code == 1


def test_names_ending_in_a_new_line_are_refused(tmp_path: Path) -> None:
    """The API's patterns refuse them; the command line and rules must too (a name the API
    cannot address would be stuck)."""
    home = ["--home", str(tmp_path)]
    created = runner.invoke(app, [*home, "segments", "create", "viewers\n", "did(view)"])
    assert created.exit_code == 1 and "is not a segment name" in created.output
    ref = runner.invoke(app, [*home, "segments", "preview", 'segment("viewers\\n")'])
    assert ref.exit_code == 1 and "is not a segment name" in ref.output
    args = [*home, "predictions", "create", "p\n", "--event", "view", "--horizon-days", "7"]
    prediction = runner.invoke(app, args)
    assert prediction.exit_code == 1 and "is not a prediction name" in prediction.output
    engine = Engine.open(Settings(home=tmp_path))
    try:
        assert engine.segments.definitions() == [] and engine.predictions.definitions() == []
    finally:
        engine.close()
