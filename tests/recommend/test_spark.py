"""Training on Spark (local mode): the lake as Spark reads it is the lake as training reads it;
Spark's item neighbours are the local ones; `persona train --engine spark` writes a model set
the server serves; and on MovieLens what Spark fits ranks within 3% of its local twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from persona.api.app import create_app
from persona.cli.main import app
from persona.clock import FakeClock
from persona.recommend.algorithms.base import Scorer
from persona.recommend.algorithms.factorization import ALS
from persona.recommend.algorithms.neighbours import ItemKNN, ItemKNNConfig
from persona.recommend.evaluation import (
    DEPTH,
    ScorerRecommender,
    movielens,
    protocol_splits,
    ranking_metrics,
)
from persona.recommend.spark import (
    SparkALS,
    SparkItemKNN,
    lake_source,
)
from persona.spark import spark_session
from tests.conftest import open_engine
from tests.recommend.synthetic import interactions, stock

pytestmark = pytest.mark.slow

AGREEMENT = 0.03  # the bar of issue 18


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    with spark_session("local[2]") as session:
        yield session


def test_spark_reads_the_lake_as_training_does(
    spark: SparkSession, tmp_path: Path, clock: FakeClock
) -> None:
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'persona.db'}", clock)
    try:
        stock(engine)
        expected = engine.lake.interaction_columns()
        assert lake_source(spark, engine.lake).interaction_columns() == expected
        before = int(expected["occurred_at_ms"][len(expected) // 2].as_py())
        read = lake_source(spark, engine.lake).interaction_columns(before)
        assert read == engine.lake.interaction_columns(before)
    finally:
        engine.close()


def test_spark_s_item_neighbours_are_the_local_ones(spark: SparkSession) -> None:
    data = interactions()
    config = ItemKNNConfig(neighbours=20)
    local, remote = ItemKNN(config), SparkItemKNN(spark, config)
    local.fit(data)
    remote.fit(data)
    assert local.similarity is not None and remote.similarity is not None
    np.testing.assert_allclose(
        remote.similarity.toarray(), local.similarity.toarray(), rtol=1e-5, atol=1e-6
    )


def test_persona_train_on_spark_writes_a_model_set_that_is_served(
    tmp_path: Path, clock: FakeClock
) -> None:
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'persona.db'}", clock)
    try:
        stock(engine)  # a local model set first: Spark's must be at least as good to serve
        local = engine.recommendations.registry.champion()
    finally:
        engine.close()
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path), "train", "--engine", "spark", "--master", "local[2]"]
    )
    assert result.exit_code == 0, result.output
    engine = open_engine(tmp_path, f"sqlite:///{tmp_path / 'persona.db'}", clock)
    try:
        versions = engine.recommendations.registry.versions()
        assert len(versions) == 2
        trained = versions[-1]
        assert local is not None and trained.version != local.version
        assert set(trained.manifest["sources"]) >= {"als", "itemknn"}
        engine.recommendations.registry.promote(trained.version)
        with TestClient(create_app(engine)) as client:
            answer = client.get("/v1/users/p1/recommendations?n=5").json()
        assert answer["source"] == "pipeline" and len(answer["items"]) == 5
    finally:
        engine.close()


def ndcg(scorer: Scorer) -> float:
    _, split = protocol_splits(movielens())
    recommender = ScorerRecommender(scorer)
    recommender.fit(split.train)
    people = np.arange(split.train.n_users, dtype=np.int64)
    top = recommender.recommend(people, split.train.matrix(), DEPTH)
    return ranking_metrics(top, split.truth, split.train)["ndcg@10"]


def test_on_movielens_what_spark_fits_ranks_within_3_percent_of_its_local_twin(
    spark: SparkSession,
) -> None:
    """Each source Spark fits, alone on the protocol's split (measured 2026-12-06: ALS 0.1243
    against 0.1212, neighbours 0.1190 against 0.1190). The whole pipeline's agreement is a
    mean over pipeline seeds (one seed moves it by up to 4% either way, locally too), which
    benchmarks/spark_agreement.py measures: 0.1621 against 0.1621 over seeds 7 to 9."""
    neighbours = ItemKNNConfig(neighbours=100)
    pairs = [(ALS(), SparkALS(spark)), (ItemKNN(neighbours), SparkItemKNN(spark, neighbours))]
    for local, remote in pairs:
        expected, found = ndcg(local), ndcg(remote)
        assert abs(found / expected - 1) <= AGREEMENT, (local.name, expected, found)
