"""Clusters without storage: choosing k, descriptions, stable ids, the saved model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from persona.clock import DAY_MS
from persona.predictions.clustering import (
    ClusterConfig,
    ClusterModel,
    FeatureSchema,
    choose_k,
    match_ids,
    train_clusters,
)
from persona.profiles.aggregate import AggregateRules, FoldEvent, ProfileState

NOW = 1_767_225_600_000
RULES = AggregateRules(weights={"view": 1.0, "purchase": 5.0})


def blobs(centers: list[list[float]], per: int, spread: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(c, spread, size=(per, len(c))) for c in centers])


def test_k_is_chosen_by_silhouette_on_well_separated_groups() -> None:
    for k in (2, 3, 5):
        centers = [[10.0 * i, (-1) ** i * 10.0, 3.0 * i] for i in range(k)]
        chosen, scores, _ = choose_k(blobs(centers, 60, 0.5), ClusterConfig(k_min=2, k_max=8))
        assert chosen == k
        assert max(scores, key=lambda c: scores[c]) == k
        assert set(scores) <= set(range(2, 9))


def person(kind: str, n: int) -> ProfileState:
    """Three kinds of people: heavy Comedy viewers, Drama buyers, one-off visitors.

    Within a kind people differ a little and continuously (``n``), so that each kind is one
    blob rather than a few repeated points.
    """
    state = ProfileState()
    events: list[tuple[FoldEvent, list[str]]] = []
    if kind == "viewer":
        for k in range(40 + n):
            at = NOW - (k % 10) * DAY_MS - k * 60_000
            events.append((FoldEvent(f"{n}-{k}", "view", at, f"c{k % 5}"), ["Comedy"]))
    elif kind == "buyer":
        for k in range(6 + n // 4):
            at = NOW - 3 * k * DAY_MS - n * 3_600_000
            events.append((FoldEvent(f"{n}-p{k}", "purchase", at, "d1", 50.0 + n), ["Drama"]))
            events.append((FoldEvent(f"{n}-v{k}", "view", at - 600_000, "d1"), ["Drama"]))
    else:
        events.append((FoldEvent(f"{n}-x", "view", NOW - (200 + n) * DAY_MS, "c0"), ["Comedy"]))
    state.apply_many(events, RULES)
    return state


def population(per: int = 20) -> tuple[list[str], list[ProfileState]]:
    kinds = ["viewer", "buyer", "casual"]
    keys = [f"{kind}_{n}" for kind in kinds for n in range(per)]
    return keys, [person(key.split("_")[0], int(key.split("_")[1])) for key in keys]


def by_kind(keys: list[str], ids: list[int]) -> dict[str, set[int]]:
    found: dict[str, set[int]] = {}
    for key, cluster_id in zip(keys, ids, strict=True):
        found.setdefault(key.split("_")[0], set()).add(cluster_id)
    return found


def test_profiles_of_three_kinds_form_three_described_clusters() -> None:
    keys, states = population()
    model, ids = train_clusters(states, NOW, ClusterConfig())
    assert model.k == 3
    groups = by_kind(keys, ids)
    assert all(len(g) == 1 for g in groups.values())  # each kind is one cluster
    assert len(set.union(*groups.values())) == 3
    buyer_index = model.ids.index(next(iter(groups["buyer"])))
    described = {d.feature for d in model.descriptions[buyer_index]}
    assert described & {"purchases", "revenue", "count.purchase", "affinity.Drama"}
    assert all(len(d) == 3 for d in model.descriptions)
    assert sorted(model.sizes) == [20, 20, 20]


def test_retraining_on_the_same_or_slightly_changed_data_keeps_the_ids() -> None:
    keys, states = population()
    first, first_ids = train_clusters(states, NOW, ClusterConfig())
    _again, again_ids = train_clusters(states, NOW, ClusterConfig(seed=7), previous=first)
    assert again_ids == first_ids
    # a few people gone, a few new ones, a day later: same ids for the same kinds
    more_keys, more_states = population(per=23)
    chosen = [i for i, key in enumerate(more_keys) if not key.endswith("_0")]
    changed, changed_ids = train_clusters(
        [more_states[i] for i in chosen], NOW + DAY_MS, ClusterConfig(seed=3), previous=first
    )
    assert by_kind([more_keys[i] for i in chosen], changed_ids) == by_kind(keys, first_ids)
    assert changed.next_id == first.next_id == 4


def test_permuted_centroids_are_matched_back_to_their_ids() -> None:
    _keys, states = population()
    model, _ = train_clusters(states, NOW, ClusterConfig())
    order = [2, 0, 1]
    ids, next_id = match_ids(model, model.schema, model.mean, model.scale, model.centroids[order])
    assert ids == [model.ids[i] for i in order]
    assert next_id == model.next_id


def test_unmatched_clusters_get_ids_never_used_before() -> None:
    keys, states = population()
    two = [s for key, s in zip(keys, states, strict=True) if not key.startswith("casual")]
    old, old_ids = train_clusters(two, NOW, ClusterConfig())
    assert old.k == 2 and old.ids == [1, 2]
    new, new_ids = train_clusters(states, NOW, ClusterConfig(), previous=old)
    assert new.k == 3
    assert sorted(new.ids) == [1, 2, 3] and new.next_id == 4
    # the people of the old clusters keep their ids
    assert by_kind(keys, new_ids)["viewer"] == by_kind(keys[: len(two)], old_ids)["viewer"]


def test_the_model_is_saved_as_json_and_assigns_the_same_after_loading(tmp_path: Path) -> None:
    _keys, states = population()
    model, ids = train_clusters(states, NOW, ClusterConfig())
    path = tmp_path / "clusters" / "model.json"
    model.save(path)
    loaded = ClusterModel.load(path)
    assert loaded is not None
    assert loaded.ids == model.ids and loaded.schema == model.schema
    assert loaded.assign(loaded.schema.matrix(states, NOW)) == ids
    assert path.read_text().startswith("{")


def test_feature_schema_keeps_the_common_event_types_and_categories() -> None:
    _, states = population()
    schema = FeatureSchema.from_states(states, ClusterConfig())
    assert schema.event_types == ("purchase", "view")
    assert schema.categories == ("Comedy", "Drama")
    assert len(schema.vector(states[0], NOW)) == len(schema.names)
