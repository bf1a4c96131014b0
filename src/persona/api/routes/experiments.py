"""HTTP routes of experiments: the `ab` and `thompson` placement versions and their results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from persona.access.keys import Scope
from persona.api.deps import EngineDep, require
from persona.engine import Engine
from persona.experiments.results import with_noisy_counts
from persona.experiments.schema import ExperimentList, ExperimentResults
from persona.privacy.aggregates import MAX_EPSILON, MIN_EPSILON

router = APIRouter(prefix="/v1", tags=["experiments"])

ExperimentId = Path(
    min_length=1,
    max_length=80,
    pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}(\.v[0-9]{1,9})?$",
    description="`placement.vVERSION`, or a placement name for its current version.",
)


@router.get(
    "/experiments",
    operation_id="list_experiments",
    response_model=ExperimentList,
    dependencies=[require(Scope.READ)],
)
def list_experiments(engine: Engine = EngineDep) -> ExperimentList:
    """Every version of every `ab` or `thompson` placement."""
    return engine.experiments.all()


@router.get(
    "/experiments/{experiment_id}/results",
    operation_id="get_experiment_results",
    response_model=ExperimentResults,
    dependencies=[require(Scope.READ)],
)
def get_results(
    experiment_id: str = ExperimentId,
    cuped: Annotated[
        bool, Query(description="Adjust revenue by each unit's pre-experiment revenue.")
    ] = False,
    epsilon: Annotated[
        float | None,
        Query(
            ge=MIN_EPSILON,
            le=MAX_EPSILON,
            description="Release the counts with Laplace noise at this privacy loss"
            " (docs/privacy.md); the statistics derived from exact data are then withheld.",
        ),
    ] = None,
    engine: Engine = EngineDep,
) -> ExperimentResults:
    """Per arm counts and rates; lift, p-values, sequential test, Bayesian and SRM checks."""
    results = engine.experiments.results(experiment_id, cuped=cuped)
    return results if epsilon is None else with_noisy_counts(results, epsilon)
