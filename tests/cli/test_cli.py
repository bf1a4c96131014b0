"""The command line: bulk import in three formats, keys, and serve's refusal without keys."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import persona
from persona.cli.main import app
from persona.engine import Engine
from persona.settings import Settings

runner = CliRunner()

EVENTS = [
    {
        "event_id": "e1",
        "type": "rate",
        "user_id": "1",
        "item_id": "10",
        "timestamp": "1700000000",
        "value": "4.5",
    },
    {
        "event_id": "e2",
        "type": "view",
        "user_id": "1",
        "item_id": "11",
        "timestamp": "2023-11-14T22:14:00Z",
        "value": "",
    },
    {
        "event_id": "e3",
        "type": "view",
        "user_id": "",
        "item_id": "11",
        "timestamp": "1700000100",
        "value": "",
    },
    {
        "event_id": "e4",
        "type": "purchase",
        "user_id": "2",
        "item_id": "10",
        "timestamp": "1700000200",
        "value": "12.5",
    },
]


def write_events(path: Path) -> None:
    if path.suffix == ".csv":
        header = "event_id,type,user_id,item_id,timestamp,value\n"
        rows = "".join(",".join(str(e[k]) for k in e) + "\n" for e in EVENTS)
        path.write_text(header + rows)
    elif path.suffix == ".jsonl":
        lines = [orjson.dumps({k: v for k, v in e.items() if v != ""}) for e in EVENTS]
        path.write_bytes(b"\n".join(lines) + b"\n{broken\n")
    else:
        table = pa.table(
            {
                "event_id": [e["event_id"] for e in EVENTS],
                "type": [e["type"] for e in EVENTS],
                "user_id": [int(e["user_id"]) if e["user_id"] else None for e in EVENTS],
                "item_id": [int(e["item_id"]) for e in EVENTS],
                "timestamp": [
                    int(e["timestamp"]) if e["timestamp"].isdigit() else 1700000040 for e in EVENTS
                ],
                "value": [float(e["value"]) if e["value"] else None for e in EVENTS],
            }
        )
        pq.write_table(table, path)


def engine_at(home: Path) -> Engine:
    return Engine.open(Settings(home=home))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_import_events_validates_dedupes_and_summarizes(tmp_path: Path, suffix: str) -> None:
    home, source = tmp_path / "home", tmp_path / f"events{suffix}"
    write_events(source)
    first = runner.invoke(app, ["--home", str(home), "import", "events", str(source)])
    assert first.exit_code == 0, first.output
    assert "accepted" in first.output
    again = runner.invoke(app, ["--home", str(home), "import", "events", str(source)])
    assert again.exit_code == 0
    engine = engine_at(home)
    try:
        with engine.storage.read() as uow:
            assert uow.events.count() == 3
            rejected = uow.quarantine.list(after_id=0, limit=10)
            assert uow.events.get("e1").value == 4.5  # type: ignore[union-attr]
        assert all(r.source.startswith("import:") for r in rejected)
        assert "missing_identity" in {r.code for r in rejected}
        if suffix == ".jsonl":
            assert "malformed_json" in {r.code for r in rejected}
        assert engine.profiles.get("1").counts == {"rate": 1, "view": 1}
        assert engine.profiles.get("2").rfm.monetary == 12.5
    finally:
        engine.close()


def test_import_items_splits_categories(tmp_path: Path) -> None:
    source = tmp_path / "items.csv"
    source.write_text(
        'item_id,title,categories\n1,Toy Story,Adventure|Animation|Children\n2,"Heat, the film",Action\n,,\n'
    )
    result = runner.invoke(app, ["--home", str(tmp_path), "import", "items", str(source)])
    assert result.exit_code == 0, result.output
    engine = engine_at(tmp_path)
    try:
        item = engine.catalog.get("1")
        assert item.categories == ["Adventure", "Animation", "Children"]
        assert engine.catalog.get("2").title == "Heat, the film"
    finally:
        engine.close()
    assert "rejected" in result.output


def test_unknown_file_format_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "events.xml"
    source.write_text("<x/>")
    result = runner.invoke(app, ["--home", str(tmp_path), "import", "events", str(source)])
    assert result.exit_code == 2 and "unknown format" in result.output


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    created = runner.invoke(
        app,
        [
            "--home",
            str(tmp_path),
            "keys",
            "create",
            "--scope",
            "ingest",
            "--scope",
            "read",
            "--name",
            "ci",
        ],
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("psk_")
    listed = runner.invoke(app, ["--home", str(tmp_path), "keys", "list"])
    key_id, secret_part = secret.removeprefix("psk_").split("_", 1)
    assert "ingest,read" in listed.output and secret_part not in listed.output
    assert runner.invoke(app, ["--home", str(tmp_path), "keys", "revoke", key_id]).exit_code == 0
    assert runner.invoke(app, ["--home", str(tmp_path), "keys", "revoke", key_id]).exit_code == 1
    assert (
        runner.invoke(app, ["--home", str(tmp_path), "keys", "create", "--scope", "root"]).exit_code
        == 2
    )


def test_serve_refuses_to_start_without_keys_outside_dev_mode(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "persona", "--home", str(tmp_path), "serve", "--port", "1"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert b"refusing to start" in result.stderr


def test_a_bad_setting_stops_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONA_TYPO", "1")
    result = runner.invoke(app, ["--home", str(tmp_path), "keys", "list"])
    assert result.exit_code == 2 and "PERSONA_TYPO" in result.output


def test_imported_ids_follow_the_api_rule(tmp_path: Path) -> None:
    """A whole number is its decimal text in every format (an integer column, a float column
    holding integers and missing values, a JSON integer); a number with a fraction is refused
    as the API refuses it, and a NaN is a missing value."""
    nan = float("nan")
    table = pa.table(
        {
            "event_id": ["p1", "p2", "p3", "p4"],
            "type": ["view"] * 4,
            "user_id": pa.array([42.0, None, 7.5, nan], pa.float64()),
            "anonymous_id": pa.array([None, 9, 9, 9], pa.int64()),
            "item_id": pa.array([1.0, 2.0, 3.0, nan], pa.float64()),
            "timestamp": [1_700_000_000] * 4,
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    (tmp_path / "events.jsonl").write_bytes(
        b'{"event_id": "j1", "type": "view", "user_id": 42, "item_id": 1, "timestamp": 1700000001}\n'
        b'{"event_id": "j2", "type": "view", "user_id": true, "timestamp": 1700000002}\n'
    )
    home = tmp_path / "home"
    for name in ("events.parquet", "events.jsonl"):
        done = runner.invoke(app, ["--home", str(home), "import", "events", str(tmp_path / name)])
        assert done.exit_code == 0, done.output
    engine = engine_at(home)
    try:
        with engine.storage.read() as uow:
            p1, p4 = uow.events.get("p1"), uow.events.get("p4")
            assert p1 is not None and (p1.user_id, p1.item_id) == ("42", "1")
            assert p4 is not None and (p4.user_id, p4.anonymous_id, p4.item_id) == (None, "9", None)
            rejected = {r.event_id: r for r in uow.quarantine.list(after_id=0, limit=10)}
        assert set(rejected) == {"p3", "j2"}
        assert {(r.code, r.path) for r in rejected.values()} == {("invalid_field", "user_id")}
        assert engine.profiles.get("42").counts == {"view": 2}  # p1 and j1: one person
    finally:
        engine.close()


def test_version_is_the_installed_packages() -> None:
    """`persona --version` prints the version of the package metadata, which the build takes
    from pyproject.toml, and exits 0."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["version"]
    shown = runner.invoke(app, ["--version"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == f"persona {declared}\n"
    result = subprocess.run(
        [sys.executable, "-m", "persona", "--version"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"persona {declared}\n".encode())
    assert persona.__version__ == declared
