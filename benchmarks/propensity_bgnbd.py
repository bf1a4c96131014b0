"""Propensity on a repeat-purchase log with no item ids, against BG/NBD fitted on the same data.

The log is CDNOW (the customers who first bought at the online CD shop CDNOW in the first
quarter of 1997, followed to June 1998: 23,570 people, 69,659 purchases with their amounts),
as the `lifetimes` package ships it (`CDNOW_master.txt`): the standard data of the BG/NBD paper
(Fader, Hardie and Lee, 2005), read from disk, nothing downloaded.

For each held-out window (the last `--horizon` days of the data, then moved back one horizon at
a time, `--windows` of them), both models see only the purchases before the window's start:

- persona: `fit_procedure` and the features `persona train` uses for a prediction ("buys
  within N days": recency, frequency, activity, amounts; LightGBM, calibrated), trained with
  label windows that all end by the cutoff;
- BG/NBD (`lifetimes.BetaGeoFitter`, the standard for repeat purchases): fitted on each
  customer's frequency, recency and age in days before the cutoff; its score is the expected
  number of purchases in the window.

Both score every customer who bought before the cutoff; ROC-AUC of "bought in the window".
Bar (issue 19): persona's ROC-AUC at least BG/NBD's + 0.02 (reported per window and as the mean).

    .venv/bin/python benchmarks/propensity_bgnbd.py [--horizon 30] [--windows 4]
"""

from __future__ import annotations

import argparse
import time
from importlib import resources

import numpy as np
import pandas as pd
from lifetimes import BetaGeoFitter
from lifetimes.utils import summary_data_from_transaction_data
from sklearn.metrics import roc_auc_score

from persona.clock import DAY_MS
from persona.predictions.events import EventLog
from persona.predictions.propensity import (
    PropensityConfig,
    build_features,
    fit_procedure,
    labels,
)

EVENT = "purchase"


def cdnow() -> pd.DataFrame:
    path = resources.files("lifetimes.datasets") / "CDNOW_master.txt"
    frame = pd.read_csv(
        str(path), sep=r"\s+", header=0, names=["customer", "date", "cds", "amount"]
    )
    frame["date"] = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d", utc=True)
    frame["customer"] = frame["customer"].astype(str).str.zfill(5)
    return frame


def window(
    frame: pd.DataFrame, log: EventLog, cutoff_ms: int, horizon_days: int
) -> dict[str, float]:
    horizon_ms = horizon_days * DAY_MS
    started = time.perf_counter()
    model, examples = fit_procedure(
        log, cutoff_ms, EVENT, horizon_ms, PropensityConfig(), build_features
    )
    test = build_features(log, cutoff_ms, EVENT, horizon_ms)
    truth = labels(log, test.people, cutoff_ms, EVENT, horizon_ms)
    ours = model.probability(test.values)
    persona_s = time.perf_counter() - started

    started = time.perf_counter()
    cutoff = pd.Timestamp(cutoff_ms, unit="ms", tz="UTC")
    before = frame[frame["date"] < cutoff]
    summary = summary_data_from_transaction_data(
        before, "customer", "date", observation_period_end=cutoff - pd.Timedelta(days=1), freq="D"
    )
    bgnbd = BetaGeoFitter(penalizer_coef=0.001)
    bgnbd.fit(summary["frequency"], summary["recency"], summary["T"])
    expected = bgnbd.conditional_expected_number_of_purchases_up_to_time(
        horizon_days, summary["frequency"], summary["recency"], summary["T"]
    )
    theirs = expected.reindex([log.keys[p] for p in test.people]).to_numpy()
    bgnbd_s = time.perf_counter() - started
    assert not np.isnan(theirs).any(), "every customer before the cutoff has a BG/NBD score"
    return {
        "people": float(len(truth)),
        "positives": float(truth.sum()),
        "examples": float(examples),
        "persona": float(roc_auc_score(truth, ours)),
        "bgnbd": float(roc_auc_score(truth, theirs)),
        "persona_s": persona_s,
        "bgnbd_s": bgnbd_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizon", type=int, default=30, help="Days of the held-out window.")
    parser.add_argument("--windows", type=int, default=4)
    args = parser.parse_args()
    frame = cdnow()
    times = frame["date"].dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64)
    log = EventLog.from_rows(
        [
            (customer, EVENT, int(at), float(amount))
            for customer, at, amount in zip(frame["customer"], times, frame["amount"], strict=True)
        ]
    )
    end_ms = int(times.max()) + DAY_MS
    print(f"CDNOW: {frame['customer'].nunique():,} customers, {len(frame):,} purchases")
    print("\n| held-out window from | customers | bought | persona AUC | BG/NBD AUC | gain |")
    print("|---|---:|---:|---:|---:|---:|")
    gains = []
    for k in range(args.windows):
        cutoff_ms = end_ms - (k + 1) * args.horizon * DAY_MS
        row = window(frame, log, cutoff_ms, args.horizon)
        gains.append(row["persona"] - row["bgnbd"])
        day = time.strftime("%Y-%m-%d", time.gmtime(cutoff_ms / 1000))
        print(
            f"| {day} | {row['people']:,.0f} | {row['positives']:,.0f} | {row['persona']:.4f} |"
            f" {row['bgnbd']:.4f} | {gains[-1]:+.4f} |"
        )
    mean = float(np.mean(gains))
    print(f"\nmean gain {mean:+.4f}; bar (persona >= BG/NBD + 0.02):", end=" ")
    print("met" if min(gains) >= 0.02 else f"missed (smallest gain {min(gains):+.4f})")


if __name__ == "__main__":
    main()
