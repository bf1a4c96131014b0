"""Fuzzing the whole HTTP API from its own OpenAPI document (schemathesis).

A real ``persona serve`` (API keys checked, an admin key presented) on a home holding the
MovieLens demo data, trained and with a segment, a placement and a prediction defined.
Schemathesis runs every operation of ``/openapi.json`` through its phases (the documented
examples, boundary and invalid values, random generation, sequences of calls) and checks each
answer: never a 5xx, every status declared, every content type declared, every body valid
against its declared schema (the problems too).

The recommendation models are trained on the full demo data without EASE and with one holdout
cutoff: about 15 s instead of two minutes (EASE changes the candidates, not the API: it serves
through the same path as every other source). The whole test takes about 100 s on two cores
(three minutes when they are busy). The inputs are reproducible: a fixed seed, no example
database, a fresh crash cache, one worker (the operations change the server's state, so their
order must not vary). Without schemathesis the test is skipped, except in CI (``CI`` set),
where it fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from persona.access.keys import Scope
from persona.decide.schema import PlacementIn, parse_placement
from persona.demo.movielens import load_movielens
from persona.engine import Engine
from persona.predictions.scheduler import train_predictive_models
from persona.recommend.pipeline import PipelineConfig
from persona.recommend.training import train_model_set
from persona.settings import Settings
from tests.server import free_port, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
MAX_EXAMPLES = 25  # per operation and phase
SEED = 14


@pytest.fixture(scope="module")
def schemathesis() -> list[str]:
    """The command that runs schemathesis (checked before the demo home is built)."""
    if importlib.util.find_spec("schemathesis") is None:
        reason = "schemathesis is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; it is mandatory in CI")
        pytest.skip(reason)
    return [sys.executable, "-m", "schemathesis.cli"]


def _demo_home(home: Path) -> str:
    """Load and train the demo into ``home``; the secret of an admin key."""
    # The home's own SQLite file, whatever the environment says: the server reads the same.
    engine = Engine.open(Settings(home=home, database_url=f"sqlite:///{home / 'persona.db'}"))
    try:
        load_movielens(engine.catalog, engine.ingest)
        candidates = {n: k for n, k in PipelineConfig().candidates.items() if n != "ease"}
        train_model_set(
            engine.storage,
            engine.recommendations.registry,
            engine.clock,
            engine.settings.profiles.event_weights,
            config=PipelineConfig(candidates=candidates, extra_cutoffs=0),
        )
        train_predictive_models(engine.clusters, engine.predictions, engine.segments)
        engine.segments.create("keen", "count(rate) > 100", "rated more than a hundred films")
        placement = parse_placement(
            {
                "name": "home_hero",
                "policy": "ab",
                "variants": [
                    {"id": "control", "payload": {"title": "Welcome"}},
                    {"id": "bold", "payload": {"title": "Deals for you"}},
                ],
                "fallback": "control",
            },
            named=True,
        )
        assert isinstance(placement, PlacementIn)
        engine.decisions.create(placement.name, placement.body())
        engine.predictions.create("will_rate", "rate", 30, "rates within a month")
        return engine.keys.create("fuzz", [Scope.ADMIN]).secret
    finally:
        engine.close()


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The base URL of a server on the demo home, and an admin key."""
    home = tmp_path_factory.mktemp("fuzz")
    secret = _demo_home(home)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PERSONA_")}
    server = start_server(home, port, env=env)
    try:
        yield f"http://127.0.0.1:{port}", secret
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_no_operation_answers_a_server_error_or_anything_undeclared(
    schemathesis: list[str], demo_server: tuple[str, str], tmp_path: Path
) -> None:
    base, secret = demo_server
    started = time.monotonic()
    run = subprocess.run(
        [
            *schemathesis,
            "run",
            f"{base}/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--header",
            f"Authorization: Bearer {secret}",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
        cwd=tmp_path,  # a fresh crash cache: no failure of an earlier run is replayed first
    )
    seconds = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20_000:]
    document = httpx.get(f"{base}/openapi.json").json()
    operations = sum(len(path_item) for path_item in document["paths"].values())
    assert f"Selected: {operations}/{operations}" in output, output[-3_000:]
    assert f"Tested: {operations}" in output, output[-3_000:]
    print(f"schemathesis ran {seconds:.0f} s\n{output[-1_500:]}")
