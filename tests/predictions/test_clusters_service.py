"""Clusters over the store: segments of kind cluster, rules on them, reassignment as people act."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from persona.cli.main import app
from persona.engine import Engine
from persona.errors import ConflictError
from persona.predictions.clustering import ClusterConfig, FeatureSchema, StoredFacts
from persona.predictions.clusters import RETIRED
from persona.profiles.aggregate import ProfileState
from persona.settings import Settings
from tests.conftest import NOW_MS
from tests.predictions.synthetic import behaviour_groups, ingest_all


@pytest.fixture
def grouped(engine: Engine) -> dict[str, int]:
    """Three kinds of people, clustered; returns the cluster id of each kind."""
    engine.clusters.config = ClusterConfig(k_min=2, k_max=5)  # a shorter search: faster tests
    ingest_all(engine, behaviour_groups())
    outcome = engine.clusters.train()
    assert outcome.model.k == 3 and outcome.people == 36
    by_kind: dict[str, int] = {}
    for cluster in engine.clusters.clusters():
        members = engine.segments.members(cluster.segment, after=None, limit=100)
        kinds = {m.profile_key.removeprefix("u:").split("_")[0] for m in members}
        assert len(kinds) == 1 and cluster.size == 12
        by_kind[kinds.pop()] = cluster.cluster_id
    return by_kind


def test_clusters_are_segments_usable_in_rules(engine: Engine, grouped: dict[str, int]) -> None:
    definitions = {d.name: d for d in engine.segments.definitions()}
    for cluster_id in grouped.values():
        record = definitions[f"cluster_{cluster_id}"]
        assert record.kind == "cluster" and record.rule is None
        assert record.description.count("sd)") == 3
    buyers = f"cluster_{grouped['buyer']}"
    engine.segments.create("big_buyers", f'segment("{buyers}") and profile.monetary > 300')
    members = {m.profile_key for m in engine.segments.members("big_buyers", after=None, limit=50)}
    assert members and all(key.startswith("u:buyer_") for key in members)
    assert buyers in engine.profiles.get("buyer_0").segments


def test_a_person_is_reassigned_as_the_profile_changes(
    engine: Engine, grouped: dict[str, int]
) -> None:
    viewers, casuals = f"cluster_{grouped['viewer']}", f"cluster_{grouped['casual']}"
    engine.segments.create("viewer_cluster", f'segment("{viewers}")')
    assert casuals in engine.segments.memberships("u:casual_3")
    end_s = NOW_MS // 1000
    ingest_all(
        engine,
        [
            {
                "type": "view",
                "user_id": "casual_3",
                "item_id": f"c{k % 5}",
                "timestamp": end_s - 86_400 * (k % 10) - 60 * k,
            }
            for k in range(45)
        ],
    )
    now_in = engine.segments.memberships("u:casual_3")
    assert viewers in now_in and casuals not in now_in
    assert "viewer_cluster" in now_in  # the rule saw the new cluster in the same transaction
    stays = [(s.segment, s.exited_at_ms is None) for s in engine.segments.history("u:casual_3")]
    assert (casuals, False) in stays and (viewers, True) in stays


def test_retraining_keeps_ids_and_retires_vanished_clusters(
    engine: Engine, grouped: dict[str, int]
) -> None:
    again = engine.clusters.train()
    assert sorted(again.model.ids) == sorted(grouped.values())
    assert (again.entered, again.exited) == (0, 0)
    # with a range that forces two clusters, one id disappears and its segment empties
    engine.clusters.config = ClusterConfig(k_min=2, k_max=2)
    two = engine.clusters.train()
    assert two.model.k == 2 and set(two.model.ids) < set(grouped.values())
    (gone,) = set(grouped.values()) - set(two.model.ids)
    assert engine.segments.get(f"cluster_{gone}").description == RETIRED
    assert engine.segments.size(f"cluster_{gone}") == 0
    assert sum(engine.segments.size(f"cluster_{i}") for i in two.model.ids) == 36


def test_a_rule_segment_with_a_cluster_name_blocks_training(engine: Engine) -> None:
    engine.clusters.config = ClusterConfig(k_min=2, k_max=3)
    ingest_all(engine, behaviour_groups(per_group=4))
    engine.segments.create("cluster_1", "did(view)")
    with pytest.raises(ConflictError):
        engine.clusters.train()


def test_a_cluster_segment_cannot_be_deleted(
    engine: Engine, grouped: dict[str, int], client: TestClient
) -> None:
    """The cluster model keeps its segments: deleting one would leave the assigner writing
    memberships of a segment that no longer exists."""
    segment = f"cluster_{grouped['buyer']}"
    refused = client.delete(f"/v1/segments/{segment}")
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["code"] == "segment_owned_by_model"
    assert (
        "cluster model" in problem["detail"]
        and "PERSONA_PREDICTIONS__CLUSTER_K_MAX" in problem["detail"]
    )
    assert client.get(f"/v1/segments/{segment}").status_code == 200
    assert client.get("/v1/profiles/buyer_0").json()["segments"].count(segment) == 1
    assert engine.segments.size(segment) == 12

    engine.segments.create("viewers", "did(view)")
    assert client.delete("/v1/segments/viewers").status_code == 204  # rule segments can go


def test_the_command_line_refuses_to_delete_a_cluster(tmp_path: Path) -> None:
    engine = Engine.open(Settings(home=tmp_path))
    try:
        engine.clusters.config = ClusterConfig(k_min=2, k_max=3)
        ingest_all(engine, behaviour_groups(per_group=4))
        engine.clusters.train()
        segment = engine.clusters.clusters()[0].segment
        engine.segments.create("viewers", "did(view)")
    finally:
        engine.close()
    home = ["--home", str(tmp_path)]
    refused = CliRunner().invoke(app, [*home, "segments", "delete", segment])
    assert refused.exit_code == 1 and "kept by the cluster model" in refused.output
    deleted = CliRunner().invoke(app, [*home, "segments", "delete", "viewers"])
    assert deleted.exit_code == 0, deleted.output
    engine = Engine.open(Settings(home=tmp_path))
    try:
        assert [d.name for d in engine.segments.definitions()] == [
            c.segment for c in engine.clusters.clusters()
        ]
    finally:
        engine.close()


def test_a_training_reads_the_same_features_as_whole_states_give(engine: Engine) -> None:
    """A training reads cut-down states (``StoredFacts``); every feature equals the one a
    whole ``ProfileState`` gives."""
    ingest_all(engine, behaviour_groups())
    with engine.storage.read() as uow:
        whole = [ProfileState.from_dict(s) for _, s in uow.profiles.all_states()]
        cut = [StoredFacts.of(s) for _, s in uow.profiles.all_states(StoredFacts.FIELDS)]
    assert len(whole) == len(cut) == 36
    assert any(s.purchases for s in whole) and any(s.session_count > 1 for s in whole)
    schema = FeatureSchema.from_states(whole, ClusterConfig())
    assert schema == FeatureSchema.from_states(cut, ClusterConfig())
    np.testing.assert_array_equal(schema.matrix(cut, NOW_MS), schema.matrix(whole, NOW_MS))
