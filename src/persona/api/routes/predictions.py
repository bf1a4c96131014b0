"""HTTP routes of predictions (definitions, training, held-out metrics) and clusters."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from persona.access.keys import Scope
from persona.api.deps import EngineDep, require
from persona.clock import utc
from persona.engine import Engine
from persona.predictions.schema import (
    NAME_PATTERN,
    Cluster,
    ClusterList,
    Prediction,
    PredictionIn,
    PredictionList,
    TrainingOut,
)

router = APIRouter(prefix="/v1", tags=["predictions"])
PredictionName = Path(pattern=NAME_PATTERN)


@router.post(
    "/predictions",
    operation_id="create_prediction",
    response_model=Prediction,
    status_code=201,
    dependencies=[require(Scope.ADMIN)],
)
def create_prediction(body: PredictionIn, engine: Engine = EngineDep) -> Prediction:
    """Define a prediction; scores appear after the next training (`persona train`)."""
    record = engine.predictions.create(
        body.name, body.event_type, body.horizon_days, body.description
    )
    return Prediction.of(record)


@router.get(
    "/predictions",
    operation_id="list_predictions",
    response_model=PredictionList,
    dependencies=[require(Scope.READ)],
)
def list_predictions(engine: Engine = EngineDep) -> PredictionList:
    return PredictionList(predictions=[Prediction.of(r) for r in engine.predictions.definitions()])


@router.get(
    "/predictions/{name}",
    operation_id="get_prediction",
    response_model=Prediction,
    dependencies=[require(Scope.READ)],
)
def get_prediction(name: str = PredictionName, engine: Engine = EngineDep) -> Prediction:
    return Prediction.of(engine.predictions.get(name))


@router.delete(
    "/predictions/{name}",
    operation_id="delete_prediction",
    status_code=204,
    dependencies=[require(Scope.ADMIN)],
)
def delete_prediction(name: str = PredictionName, engine: Engine = EngineDep) -> Response:
    """Remove a prediction and its scores."""
    engine.predictions.delete(name)
    return Response(status_code=204)


@router.post(
    "/predictions/{name}/train",
    operation_id="train_prediction",
    response_model=TrainingOut,
    dependencies=[require(Scope.ADMIN)],
)
def train_prediction(name: str = PredictionName, engine: Engine = EngineDep) -> TrainingOut:
    """Train now on every stored event, store everyone's score, answer the held-out metrics."""
    result = engine.predictions.train(name)
    engine.segments.refresh()  # rules on profile.scores see the new scores
    e = result.evaluation
    return TrainingOut(
        name=result.name,
        roc_auc=e.roc_auc,
        brier=e.brier,
        heuristic_roc_auc=e.heuristic_roc_auc,
        heuristic_brier=e.heuristic_brier,
        scored=result.scored,
        seconds=result.seconds,
    )


@router.get(
    "/clusters",
    operation_id="list_clusters",
    response_model=ClusterList,
    dependencies=[require(Scope.READ)],
)
def list_clusters(engine: Engine = EngineDep) -> ClusterList:
    """The behavioural clusters of the last training, with their size and what sets them apart."""
    model = engine.clusters.model()
    return ClusterList(
        k=model.k if model else None,
        silhouettes={str(k): v for k, v in model.silhouettes.items()} if model else {},
        trained_at=utc(model.trained_at_ms) if model else None,
        clusters=[
            Cluster(
                cluster_id=c.cluster_id, segment=c.segment, size=c.size, description=c.description
            )
            for c in engine.clusters.clusters()
        ],
    )
