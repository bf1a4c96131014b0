"""The command sequence outside evaluations drive: import, import, train, recommend --all."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
from typer.testing import CliRunner

from persona.cli.main import app
from persona.recommend.registry import ModelRegistry
from tests.recommend.synthetic import catalog, events

runner = CliRunner()


def write_csv(path: Path, rows: list[dict[str, object]], columns: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def test_import_train_recommend_all(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    items = [dict(i, categories="|".join(i["categories"])) for i in catalog()]
    write_csv(tmp_path / "items.csv", items, ["item_id", "title", "categories"])
    rows = [dict(e, value="") for e in events()]
    columns = ["event_id", "type", "user_id", "item_id", "timestamp", "value"]
    write_csv(tmp_path / "events.csv", rows, columns)

    for args in (
        ["import", "items", str(tmp_path / "items.csv")],
        ["import", "events", str(tmp_path / "events.csv")],
        ["train"],
    ):
        result = runner.invoke(app, ["--home", home, *args])
        assert result.exit_code == 0, result.output

    out = tmp_path / "recs.jsonl"
    result = runner.invoke(
        app, ["--home", home, "recommend", "--all", "-n", "10", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    people = {e["user_id"] for e in events()}
    assert {line["user_id"] for line in lines} == people
    for line in lines:
        ids = [i["item_id"] for i in line["items"]]
        scores = [i["score"] for i in line["items"]]
        assert len(ids) == 10 and len(set(ids)) == 10
        seen = {e["item_id"] for e in events() if e["user_id"] == line["user_id"]}
        assert not seen & set(ids)
        assert scores == sorted(scores, reverse=True)  # explored items included
        assert all(0.0 <= s <= 1.0 for s in scores)

    single = runner.invoke(app, ["--home", home, "recommend", "p3", "-n", "4"])
    assert single.exit_code == 0, single.output
    answer = orjson.loads(single.stdout.strip().splitlines()[-1])
    assert answer["user_id"] == "p3" and len(answer["items"]) == 4
    assert answer["source"] == "pipeline"

    # Two model sets: the second serves after its training, a rollback serves the first again.
    first = runner.invoke(app, ["--home", home, "models", "list"])
    assert first.exit_code == 0 and first.output.count("*") == 1, first.output
    none_yet = runner.invoke(app, ["--home", home, "models", "rollback"])
    assert none_yet.exit_code == 1  # no earlier champion
    retrained = runner.invoke(app, ["--home", home, "train"])
    assert retrained.exit_code == 0, retrained.output
    registry = ModelRegistry(Path(home) / "models")
    stored = [v.version for v in registry.versions()]
    champion = registry.champion()
    assert champion is not None
    oldest = stored[0]
    if champion.version == oldest:  # the second training was not promoted: roll to it by hand
        oldest = stored[-1]
    promoted = runner.invoke(app, ["--home", home, "models", "promote", oldest])
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.startswith(f"serving {oldest}")
    unknown = runner.invoke(app, ["--home", home, "models", "promote", "no-such"])
    assert unknown.exit_code == 1
    assert registry.champion().version == oldest  # type: ignore[union-attr]
    back = runner.invoke(app, ["--home", home, "models", "rollback"])
    assert back.exit_code == 0, back.output
    assert registry.champion().version == champion.version  # type: ignore[union-attr]
