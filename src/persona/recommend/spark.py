"""Training on Spark: `persona train --engine spark [--master URL]` (the extra ``persona[spark]``).

Spark reads the event lake (the files its manifest names) and does the steps whose cost grows
with the data fastest: the matrix factorization (MLlib's ALS, implicit feedback) and the
item-item neighbours (co-occurrence counts, cosine, the top ``neighbours`` of each item, in
Spark SQL). The rest of the pipeline (the other sources, the ranker's examples, the ranker)
runs on the driver as in local training, and the model set is written in the same format: the
server cannot tell the two apart, and loads either with the local classes.

The session: ``persona.spark.spark_session`` (``local[*]`` unless a master URL is given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from scipy import sparse

from persona.recommend.algorithms.base import binary
from persona.recommend.algorithms.factorization import ALS, ALSConfig
from persona.recommend.algorithms.neighbours import ItemKNN, ItemKNNConfig
from persona.recommend.dataset import Interactions
from persona.recommend.pipeline import SourceFactory, default_sources
from persona.recommend.sources import CandidateSource, ScorerSource
from persona.spark import lake_events
from persona.storage import INTERACTION_COLUMNS, EventLake

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# MLlib scales the regularization by each row's count of ratings (ALS-WR); implicit does not.
# This value gives MLlib's factors the quality of the local ALS on MovieLens (BENCHMARKS.md).
SPARK_REGULARIZATION = 0.01


class SparkLake:
    """The lake's interaction columns as Spark reads them (``InteractionSource``): the same
    rows and order as the lake's own reader."""

    def __init__(self, events: DataFrame) -> None:
        self._events = events

    def interaction_columns(self, before_ms: int | None = None) -> pa.Table:
        from pyspark.sql import functions as f

        frame = self._events.where(f.col("item_id").isNotNull())
        if before_ms is not None:
            frame = frame.where(f.col("occurred_at_ms") < before_ms)
        ordered = frame.orderBy("occurred_at_ms", "event_id").select(*INTERACTION_COLUMNS.names)
        return ordered.toArrow().cast(INTERACTION_COLUMNS)


def lake_source(spark: SparkSession, lake: EventLake) -> SparkLake:
    """The lake brought up to date with the store, read by Spark."""
    return SparkLake(lake_events(spark, lake))


def _pairs(spark: SparkSession, data: Interactions) -> DataFrame:
    """Each (user, item) that interacted, once: what the local sources learn from too (they
    fit on the binary matrix)."""
    matrix = binary(data.matrix()).tocoo()
    table = pa.table(
        {
            "user": pa.array(matrix.row.astype(np.int32)),
            "item": pa.array(matrix.col.astype(np.int32)),
            "rating": pa.array(np.ones(matrix.nnz, dtype=np.float32)),
        }
    )
    return spark.createDataFrame(table)


class SparkALS(ALS):
    """ALS whose item factors MLlib fits; people's factors are solved locally as before."""

    def __init__(self, spark: SparkSession, config: ALSConfig | None = None) -> None:
        super().__init__(config)
        self._spark = spark

    def fit(self, data: Interactions, start: ALS | None = None) -> None:
        from pyspark.ml.recommendation import ALS as MLlibALS

        c = self.config
        model = MLlibALS(
            rank=c.factors,
            maxIter=c.iterations,
            regParam=SPARK_REGULARIZATION,
            alpha=c.alpha,
            implicitPrefs=True,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=c.seed,
        ).fit(_pairs(self._spark, data))
        factors = np.zeros((data.n_items, c.factors), dtype=np.float32)
        found = model.itemFactors.toArrow()
        ids = np.asarray(found["id"], dtype=np.int64)
        if len(ids):
            factors[ids] = np.asarray(found["features"].to_pylist(), dtype=np.float32)
        self.item_factors = factors
        self._model = None


class SparkItemKNN(ItemKNN):
    """Cosine item-item neighbours counted by Spark: the co-occurrences of every pair of items
    (one row per person and pair), divided by the square roots of the two items' counts, the
    top ``neighbours`` of each item kept, ties broken by item index (itself among them, at 1.0;
    implicit's may leave an item out of its own row where many neighbours tie at 1.0)."""

    def __init__(self, spark: SparkSession, config: ItemKNNConfig | None = None) -> None:
        super().__init__(config)
        self._spark = spark

    def fit(self, data: Interactions) -> None:
        from pyspark.sql import Window
        from pyspark.sql import functions as f

        pairs = _pairs(self._spark, data).select("user", "item")
        counts = pairs.groupBy("item").count().withColumnRenamed("count", "n")
        together = (
            pairs.alias("a")
            .join(pairs.alias("b"), "user")
            .groupBy(f.col("a.item").alias("i"), f.col("b.item").alias("j"))
            .count()
        )
        cosine = (
            together.join(counts.withColumnRenamed("item", "i").withColumnRenamed("n", "ni"), "i")
            .join(counts.withColumnRenamed("item", "j").withColumnRenamed("n", "nj"), "j")
            .select("i", "j", (f.col("count") / f.sqrt(f.col("ni") * f.col("nj"))).alias("s"))
        )
        best = Window.partitionBy("i").orderBy(f.col("s").desc(), f.col("j"))
        top = (
            cosine.withColumn("rank", f.row_number().over(best))
            .where(f.col("rank") <= self.config.neighbours)
            .select("i", "j", "s")
            .toArrow()
        )
        shape = (data.n_items, data.n_items)
        similarity = sparse.csr_matrix(
            (
                np.asarray(top["s"], dtype=np.float32),
                (np.asarray(top["i"], dtype=np.int64), np.asarray(top["j"], dtype=np.int64)),
            ),
            shape=shape,
        )
        if self.config.neighbourhood == "candidate":
            similarity = similarity.T.tocsr()
        self.similarity = similarity


def spark_sources(spark: SparkSession) -> SourceFactory:
    """The served pipeline's sources, with Spark fitting ALS and the item neighbours (the
    sources that use the neighbours keep using the same source object)."""

    def sources(n_items: int) -> list[CandidateSource]:
        made = default_sources(n_items)
        for source in made:
            if isinstance(source, ScorerSource) and type(source.scorer) is ALS:
                source.scorer = SparkALS(spark, source.scorer.config)
            elif isinstance(source, ScorerSource) and type(source.scorer) is ItemKNN:
                source.scorer = SparkItemKNN(spark, source.scorer.config)
        return made

    return sources
