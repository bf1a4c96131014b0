"""Batch segment refresh on Spark: `persona segments refresh --engine spark [--master URL]`.

Each rule is compiled by the store's rule compiler to Spark SQL (``storage.spark_rule_sql``:
the same query as on SQLite and PostgreSQL, JSON read through Spark's VARIANT) and run over
views of the data: ``events`` from the event lake's files, the store's profiles, items,
prediction scores and open memberships from one snapshot. The store applies the difference as
for its own query (``SegmentService.refresh``), in dependency order; the memberships view is
read again before each rule, so a reference sees the segment decided just before it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from persona.rules import Rule
from persona.spark import lake_events
from persona.storage import EventLake, Storage, spark_rule_sql

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STORE_VIEWS = ("profiles", "items", "profile_scores")


class SparkMatching:
    """``SegmentService.refresh``'s ``matching``: who matches a rule, found by Spark."""

    def __init__(self, spark: SparkSession, storage: Storage, lake: EventLake) -> None:
        self._spark = spark
        self._storage = storage
        lake_events(spark, lake).createOrReplaceTempView("events")
        for name, table in storage.snapshot(STORE_VIEWS).items():
            spark.createDataFrame(table).createOrReplaceTempView(name)

    def __call__(self, rule: Rule, now_ms: int) -> set[str]:
        memberships = self._storage.snapshot(["segment_memberships"])["segment_memberships"]
        self._spark.createDataFrame(memberships).createOrReplaceTempView("segment_memberships")
        text, parameters = spark_rule_sql(rule, now_ms)
        found = self._spark.sql(text, args=parameters).toArrow()
        return set(found["profile_key"].to_pylist())
