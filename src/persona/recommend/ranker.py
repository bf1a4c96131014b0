"""The learned ranker: LightGBM's LambdaRank over (person, candidate) features."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class RankerConfig:
    n_estimators: int = 300
    learning_rate: float = 0.06
    num_leaves: int = 31
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    early_stopping_rounds: int = 30
    # LambdaRank learns from the pairs with an item in this top: the metric is NDCG@10, and
    # each pair beyond costs time (a third less per tree than 30, NDCG@10 unchanged).
    truncation_level: int = 10
    seed: int = 7
    threads: int = 2


@dataclass(frozen=True)
class RankerReport:
    rows: int
    groups: int
    positives: int
    best_iteration: int
    validation_ndcg10: float
    shown_lists: int = 0  # groups that were lists people were shown (``recommend.shown``)
    # The ranker's output as a probability: P(next) = 1 / (1 + exp(-(slope * output +
    # intercept))), fitted on the people it did not learn from (``calibrate``).
    calibration: tuple[float, float] | None = None


class LambdaRanker:
    def __init__(self, config: RankerConfig | None = None) -> None:
        self.config = config or RankerConfig()
        self.booster: lgb.Booster | None = None
        self.feature_names: list[str] = []
        self.calibration: tuple[float, float] | None = None

    def fit(
        self,
        features: FloatMatrix,
        labels: npt.NDArray[np.int8],
        group_sizes: npt.NDArray[np.int64],
        held_out: npt.NDArray[np.bool_],
        feature_names: list[str],
        *,
        positions: npt.NDArray[np.int64] | None = None,
        shown_lists: int = 0,
    ) -> RankerReport:
        """Train on groups (one per person and moment, or per list a person was shown); stop
        boosting early on the ``held_out`` groups. ``positions``: where each example was shown
        (``recommend.shown``), whose part in the clicks LightGBM then learns apart."""
        c = self.config
        n_groups = len(group_sizes)
        row_group = np.repeat(np.arange(n_groups), group_sizes)
        in_validation = held_out[row_group]
        params: dict[str, Any] = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "learning_rate": c.learning_rate,
            "num_leaves": c.num_leaves,
            "min_data_in_leaf": c.min_data_in_leaf,
            "feature_fraction": c.feature_fraction,
            "bagging_fraction": c.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": c.lambda_l2,
            "lambdarank_truncation_level": c.truncation_level,
            "seed": c.seed,
            "deterministic": True,
            "num_threads": c.threads,
            "verbosity": -1,
        }
        train = lgb.Dataset(
            features[~in_validation],
            labels[~in_validation],
            group=group_sizes[~held_out],
            feature_name=feature_names,
            free_raw_data=True,
            position=None if positions is None else positions[~in_validation].astype(np.int32),
        )
        valid = lgb.Dataset(
            features[in_validation],
            labels[in_validation],
            group=group_sizes[held_out],
            reference=train,
        )
        booster = lgb.train(
            params,
            train,
            num_boost_round=c.n_estimators,
            valid_sets=[valid],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(c.early_stopping_rounds, verbose=False)],
        )
        self.booster = booster
        self.feature_names = list(feature_names)
        best = booster.best_score.get("validation", {}).get("ndcg@10", float("nan"))
        self.calibration = calibrate(self.predict(features[in_validation]), labels[in_validation])
        return RankerReport(
            rows=len(labels),
            groups=n_groups,
            positives=int(labels.sum()),
            best_iteration=int(booster.best_iteration or c.n_estimators),
            validation_ndcg10=float(best),
            shown_lists=shown_lists,
            calibration=self.calibration,
        )

    def probability(self, output: float) -> float:
        """The ranker's ``output`` for a candidate as the probability that the person takes it
        next (see ``calibrate``); without a calibration, a logistic of the output."""
        slope, intercept = self.calibration or (1.0, 0.0)
        return float(1.0 / (1.0 + math.exp(-max(-500.0, min(500.0, slope * output + intercept)))))

    def predict(self, features: FloatMatrix) -> npt.NDArray[np.float64]:
        assert self.booster is not None, "fit or load first"
        best = self.booster.best_iteration or None
        return np.asarray(
            self.booster.predict(features, num_iteration=best, num_threads=1), dtype=np.float64
        )

    def to_text(self) -> str:
        assert self.booster is not None
        return str(self.booster.model_to_string(num_iteration=self.booster.best_iteration or None))

    @classmethod
    def from_text(
        cls,
        text: str,
        config: RankerConfig,
        calibration: tuple[float, float] | None = None,
    ) -> LambdaRanker:
        """A saved ranker, with the names of the features it was trained with."""
        ranker = cls(config)
        ranker.calibration = calibration
        ranker.booster = lgb.Booster(model_str=text)
        ranker.feature_names = list(ranker.booster.feature_name())
        return ranker

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)


def calibrate(
    outputs: npt.NDArray[np.float64], labels: npt.NDArray[np.int8]
) -> tuple[float, float]:
    """Platt scaling: the logistic regression of the labels on the ranker's outputs, over the
    candidates of people the ranker did not learn from. LambdaRank's outputs only order a
    person's candidates; this makes them a probability a client can compare across lists and
    threshold ("show only above 5%")."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(labels)) < 2:
        return (1.0, 0.0)
    model = LogisticRegression(C=1e6)  # barely regularized: two parameters, many rows
    model.fit(outputs.reshape(-1, 1), labels)
    return (float(model.coef_[0][0]), float(model.intercept_[0]))
