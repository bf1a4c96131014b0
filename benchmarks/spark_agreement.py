"""Training on Spark against training locally, on the evaluation protocol's MovieLens split:
the pipeline fitted with Spark's sources (MLlib ALS, neighbours counted in Spark SQL) and with
the local ones, each scored by NDCG@10 on the held-out part, with the wall time of each fit.

    .venv/bin/python benchmarks/spark_agreement.py [--master local[2]] [--seeds 7 8 9]

The bar (issue 18): Spark's NDCG@10 within 3% of the local engine's.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from persona.recommend.evaluation import DEPTH, movielens, protocol_splits, ranking_metrics
from persona.recommend.pipeline import PipelineConfig, RecommendationPipeline, SourceFactory
from persona.recommend.spark import spark_session, spark_sources

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--master", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7])
    options = parser.parse_args()
    with spark_session(options.master) as spark:
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
    return 0 if gap <= BAR else 1


if __name__ == "__main__":
    raise SystemExit(main())
