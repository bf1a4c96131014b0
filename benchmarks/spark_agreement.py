"""Spark against the local engine on MovieLens: training and batch segments.

Training: on the evaluation protocol's split, the pipeline fitted with Spark's sources (MLlib
ALS, neighbours counted in Spark SQL) and with the local ones, each scored by NDCG@10 on the
held-out part, with the wall time of each fit. Segments: MovieLens stored through ingest, and
rules over every kind of condition evaluated by the store's query and by Spark SQL (the same
compiled rule over the lake and a snapshot of the store): the members of each.

    .venv/bin/python benchmarks/spark_agreement.py [--master local[2]] [--seeds 7 8 9]

The bars (issue 18): Spark's NDCG@10 within 3% of the local engine's; memberships identical.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from pyspark.sql import SparkSession

from persona.demo.movielens import load_movielens
from persona.engine import Engine
from persona.recommend.evaluation import DEPTH, movielens, protocol_splits, ranking_metrics
from persona.recommend.pipeline import PipelineConfig, RecommendationPipeline, SourceFactory
from persona.recommend.spark import spark_sources
from persona.rules import parse_rule
from persona.segments import SparkMatching
from persona.settings import load_settings
from persona.spark import spark_session

BAR = 0.03


def fitted_ndcg(seed: int, sources: SourceFactory | None) -> tuple[float, float]:
    _, split = protocol_splits(movielens())
    started = time.perf_counter()
    pipeline = RecommendationPipeline(PipelineConfig(seed=seed), sources)
    pipeline.fit(split.train)
    seconds = time.perf_counter() - started
    people = np.arange(split.train.n_users, dtype=np.int64)
    top = pipeline.recommend(people, split.train.matrix(), DEPTH)
    return ranking_metrics(top, split.truth, split.train)["ndcg@10"], seconds


SEGMENT_RULES = {
    "raters": "did(rate)",
    "comedy_fans": 'count(rate, category = "Comedy") >= 20',
    "heavy": "profile.event_count >= 200",
    "drama_affine": "profile.affinity.Drama > 0.3",
    "lapsed": "not did(rate) within 365d",
    "many_sessions": "profile.sessions >= 5",
    "either": 'segment("heavy") or segment("comedy_fans")',
}


def segments_agree(spark: SparkSession) -> bool:
    with tempfile.TemporaryDirectory(prefix="persona-spark-") as work:
        engine = Engine.open(load_settings(home=Path(work)))
        try:
            load_movielens(engine.catalog, engine.ingest)
            for name, rule in SEGMENT_RULES.items():
                engine.segments.create(name, rule)
            now = engine.clock.now_ms()
            matching = SparkMatching(spark, engine.storage, engine.lake)
            same = True
            for name, text in SEGMENT_RULES.items():
                rule = parse_rule(text)
                started = time.perf_counter()
                with engine.storage.read() as uow:
                    stored = uow.segments.matching(rule, now)
                store_s = time.perf_counter() - started
                started = time.perf_counter()
                found = matching(rule, now)
                spark_s = time.perf_counter() - started
                same &= found == stored
                verdict = "identical" if found == stored else "DIFFERENT"
                print(
                    f"segment {name}: store {len(stored)} people ({store_s:.2f} s), Spark"
                    f" {len(found)} ({spark_s:.2f} s): {verdict}"
                )
        finally:
            engine.close()
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--master", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    options = parser.parse_args()
    with spark_session(options.master) as spark:
        identical = segments_agree(spark)
        rows = []
        for seed in options.seeds:
            local, local_s = fitted_ndcg(seed, None)
            remote, remote_s = fitted_ndcg(seed, spark_sources(spark))
            rows.append((local, remote))
            print(
                f"seed {seed}: local NDCG@10 {local:.4f} ({local_s:.1f} s), Spark {remote:.4f}"
                f" ({remote_s:.1f} s): {remote / local - 1:+.1%}"
            )
    local_mean = float(np.mean([r[0] for r in rows]))
    remote_mean = float(np.mean([r[1] for r in rows]))
    gap = abs(remote_mean / local_mean - 1)
    print(
        f"mean: local {local_mean:.4f}, Spark {remote_mean:.4f}, gap {gap:.1%}"
        f" (bar {BAR:.0%}: {'met' if gap <= BAR else 'MISSED'})"
    )
    print(f"segment memberships: {'identical' if identical else 'DIFFERENT'}")
    return 0 if gap <= BAR and identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
