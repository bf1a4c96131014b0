"""A Spark session for the work persona hands to Spark (the extra ``persona[spark]``): training
(``recommend.spark``) and batch segment refresh (``segments.spark``).

``local[*]`` by default: Spark in this process's machine, which is how the tests and CI run it;
a master URL (``spark://host:7077``, ``yarn``, ``k8s://…``) sends the work to a cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from persona.storage import EVENT_COLUMNS, EventLake

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@contextmanager
def spark_session(master: str | None = None) -> Iterator[SparkSession]:
    """A Spark session for one job, stopped after it (one this process had already started
    is used as it is, and left running)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # the optional extra is missing
        raise RuntimeError(
            "Spark needs PySpark: pip install 'persona[spark]' (and Java 17)"
        ) from exc
    running = SparkSession.getActiveSession()
    if running is not None:
        yield running
        return
    builder = (
        SparkSession.builder.appName("persona")
        .master(master or os.environ.get("PERSONA_SPARK_MASTER", "local[*]"))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def lake_events(spark: SparkSession, lake: EventLake) -> DataFrame:
    """The event lake brought up to date with the store, as Spark reads it: the files its
    manifest names, with the lake's columns (none of them before the first event)."""
    lake.sync()
    files = [str(path) for path in lake.files()]
    if not files:
        return spark.createDataFrame(EVENT_COLUMNS.empty_table())
    return spark.read.parquet(*files)
