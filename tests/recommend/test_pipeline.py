"""The pipeline as a plain object: filters, ranking, rerank rules, persistence."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from scipy import sparse

from persona.recommend import pipeline as pipeline_module
from persona.recommend import shortlists, sources
from persona.recommend.algorithms.factorization import ALS
from persona.recommend.pipeline import (
    PipelineConfig,
    RecommendationPipeline,
    Request,
    Shortlist,
    default_sources,
    histories_of,
    last_times_s,
    temporal_holdout,
)
from persona.recommend.request import History, RequestBlock, source_input
from persona.recommend.rerank import BusinessRules, RerankConfig, SeededDraws, rerank
from persona.recommend.scores import NOTHING, Blocked
from persona.recommend.sources import ContentSimilarity, PersistentSource
from persona.runtime import blas_single_threaded
from tests.recommend.synthetic import interactions


@pytest.fixture(scope="module")
def fitted() -> RecommendationPipeline:
    pipeline = RecommendationPipeline()
    report = pipeline.fit(interactions())
    assert report.ranker is not None
    assert 0.0 <= report.metrics["ndcg@10"] <= 1.0
    return pipeline


def test_temporal_holdout_keeps_the_latest_share_of_each_history() -> None:
    data = interactions()
    early, later = temporal_holdout(data, 0.2)
    for person, history in enumerate(histories_of(data)):
        n_later = int(np.ceil(len(history.items) * 0.2))
        assert set(later[person]) == set(history.items[-n_later:].tolist())
    assert len(early.users) + sum(len(x) for x in later) == len(data.users)
    latest_early = last_times_s(early)
    for person, history in enumerate(histories_of(data)):
        assert latest_early[person] <= history.times_s[-len(later[person])]


def test_lists_leave_out_history_exclusions_and_unavailable_items(
    fitted: RecommendationPipeline,
) -> None:
    assert fitted.available is not None
    fitted.available[5] = False
    try:
        history = History(np.asarray([0, 4, 8]), np.asarray([1, 2, 3]))
        request = Request(history, as_of_s=1_600_000_000, exclude=np.asarray([12, 16]))
        ranked = fitted.rank([request], 10)[0]
        items = [s.item for s in ranked.items]
        assert len(items) == 10 and len(set(items)) == 10
        assert not {0, 4, 8, 12, 16, 5} & set(items)
        assert all(sources for sources in ranked.sources)
    finally:
        fitted.available[5] = True


def test_a_person_never_seen_gets_a_full_list(fitted: RecommendationPipeline) -> None:
    ranked = fitted.rank([Request(History.empty(), as_of_s=1_600_000_000)], 10)[0]
    assert len(ranked.items) == 10


def test_what_was_just_viewed_moves_its_neighbours_up(fitted: RecommendationPipeline) -> None:
    data = fitted.data
    assert data is not None
    horror = [i for i in range(data.n_items) if data.item_table.categories[i] == ["horror"]]
    drama_history = History(np.asarray([0, 4, 8, 12, 16]), np.arange(5))
    before = fitted.rank([Request(drama_history, 1_600_000_000)], 10)[0]
    after_views = History(
        np.concatenate([drama_history.items, horror[:3]]), np.arange(8, dtype=np.int64)
    )
    after = fitted.rank([Request(after_views, 1_600_000_000)], 10)[0]
    count = lambda ranked: sum(s.item in horror for s in ranked.items)  # noqa: E731
    assert count(after) > count(before)


def test_save_and_restore_rank_the_same(fitted: RecommendationPipeline) -> None:
    assert fitted.data is not None
    restored = RecommendationPipeline(fitted.config)
    text = fitted.ranker.to_text() if fitted.ranker else None
    restored.restore(fitted.data, fitted.source_arrays(), text)
    request = Request(History(np.asarray([1, 5, 9]), np.asarray([1, 2, 3])), 1_600_000_000)
    a = fitted.rank([request], 10)[0]
    b = restored.rank([request], 10)[0]
    assert [s.item for s in a.items] == [s.item for s in b.items]


def test_offline_recommend_matches_the_harness_contract(fitted: RecommendationPipeline) -> None:
    users = np.arange(5)
    top = fitted.recommend(users, None, 10)
    assert top.shape == (5, 10)
    histories = histories_of(fitted.data) if fitted.data else []
    for row, user in enumerate(users):
        assert not set(top[row].tolist()) & set(histories[user].items.tolist())


def test_without_enough_people_no_ranker_is_learned_and_sources_still_rank() -> None:
    data = interactions()
    few = data.subset(np.flatnonzero(data.users < 4))
    pipeline = RecommendationPipeline(PipelineConfig())
    report = pipeline.fit(few)
    assert report.ranker is None and pipeline.ranker is None
    ranked = pipeline.rank([Request(History(np.asarray([0]), np.asarray([0])), 1_600_000_000)], 5)
    assert len(ranked[0].items) == 5


CATS = [["a"], ["a"], ["a"], ["b"], ["b"], ["c"]]


def test_diversity_caps_the_share_of_one_category() -> None:
    ranked = np.arange(6)
    slots = rerank(ranked, -ranked.astype(float), 4, categories=CATS, config=RerankConfig(0.5, 0.0))
    items = [s.item for s in slots]
    assert items == [0, 1, 3, 4]


def test_diversity_fills_from_skipped_items_when_nothing_else_is_left() -> None:
    slots = rerank(
        np.asarray([0, 1, 2]), np.zeros(3), 3, categories=CATS, config=RerankConfig(0.3, 0.0)
    )
    assert [s.item for s in slots] == [0, 1, 2]


def test_business_rules_pin_boost_and_bury() -> None:
    rules = BusinessRules(pins={5: 0}, boosts={2: 10.0}, buried=frozenset({0}))
    slots = rerank(
        np.asarray([0, 1, 2, 3]),
        np.asarray([4.0, 3.0, 2.0, 1.0]),
        4,
        categories=CATS,
        config=RerankConfig(1.0, 0.0),
        rules=rules,
    )
    assert [s.item for s in slots] == [5, 2, 1, 3]


def test_exploration_gives_slots_to_new_items_at_the_configured_rate() -> None:
    config = RerankConfig(max_category_share=1.0, exploration_share=0.3)
    rng = np.random.default_rng(1)
    explored = 0
    for _ in range(1000):
        slots = rerank(
            np.arange(5),
            np.zeros(5),
            5,
            categories=CATS + [[]] * 10,
            config=config,
            new_items=np.asarray([10, 11, 12]),
            rng=rng,
        )
        explored += sum(s.explored for s in slots)
    assert 1350 <= explored <= 1650  # 0.3 x 5 slots x 1000 lists = 1500 expected


def test_seeded_draws_are_reproducible_and_uniform() -> None:
    draws = [SeededDraws(7, moment, 12).random() for moment in range(20_000)]
    assert draws == [SeededDraws(7, moment, 12).random() for moment in range(20_000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert abs(float(np.mean(draws)) - 0.5) < 0.01
    assert abs(float(np.mean(np.asarray(draws) < 0.05)) - 0.05) < 0.005
    second = SeededDraws(7, 1, 12)
    assert second.random() != second.random()  # a sequence, not one value


@pytest.mark.parametrize("memo", [True, False], ids=["memoized", "catalog-too-large-to-memo"])
def test_content_affinity_orders_a_few_items_as_the_full_score_does(
    fitted: RecommendationPipeline, memo: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not memo:
        monkeypatch.setattr(sources, "SIMILARITY_MEMO_MAX", 0)
    content = next(s for s in fitted.sources if isinstance(s, ContentSimilarity))
    assert fitted.data is not None
    items = np.arange(0, fitted.data.n_items, 3)
    for history in fitted.histories()[:20]:
        block = RequestBlock([history], np.asarray([0]), np.asarray([12]))
        scored = content.score(source_input(block, fitted.data.n_items))
        full = scored.at(np.zeros(len(items), dtype=np.int64), items)
        few = content.affinity(history.items, items)
        norm_full, norm_few = np.linalg.norm(full), np.linalg.norm(few)
        if norm_full == 0:
            assert norm_few == 0
            continue
        assert np.allclose(few / norm_few, full / norm_full, atol=1e-5)  # one factor apart


def test_on_a_large_catalog_content_and_category_trending_propose_among_fewer_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past ``FULL_CATALOG_ITEMS``, content proposes among the newest items and category
    trending among each category's leaders; both score any candidate as on a small one."""
    data = interactions()
    small = default_sources(data.n_items)
    for source in small:
        source.fit(data)
    monkeypatch.setattr(sources, "FULL_CATALOG_ITEMS", 10)
    monkeypatch.setattr(sources, "NEWEST_ITEMS", 7)
    monkeypatch.setattr(sources, "CATEGORY_LEADERS", 3)
    large = default_sources(data.n_items)
    for source in large:
        source.fit(data)
    histories = histories_of(data)[:30]
    moment = int(data.timestamps_ms.max() // 1000)
    block = RequestBlock(histories, np.full(len(histories), moment), np.full(len(histories), 12))
    inputs = source_input(block, data.n_items)
    nothing_blocked = Blocked(
        np.zeros(data.n_items, dtype=np.bool_), sparse.csr_matrix((len(histories), data.n_items))
    )
    rows, items = (a.ravel() for a in np.indices((len(histories), data.n_items)))
    newest = set(sources.newest_items(data, 7).tolist())
    categories = sources.CategoryIndex(data)
    for name in ("content", "category_trending"):
        before = next(s for s in small if s.name == name).score(inputs)
        after = next(s for s in large if s.name == name).score(inputs)
        np.testing.assert_allclose(after.at(rows, items), before.at(rows, items), atol=1e-6)
        proposed = after.top(20, nothing_blocked)
        assert (proposed >= 0).any()
        for row, row_items in enumerate(proposed):
            found = {int(i) for i in row_items if i >= 0}
            if name == "content":
                assert found <= newest
            else:  # among the 3 most trending of one of the person's categories
                mix = categories.mix(inputs.history[row]).indices
                assert all(set(categories.matrix[i].indices) & set(mix) for i in found)
                assert len(found) <= 3 * len(mix)


def test_ranking_everyone_gives_each_person_their_own_ranking_on_any_number_of_threads(
    fitted: RecommendationPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slices of people ranked on several threads fill the same table as one thread, and
    each row is the person's ranking as a request of their own would give it."""
    monkeypatch.setattr(shortlists, "RANKING_SLICE", 7)  # many slices, interleaved
    assert fitted.data is not None
    moment = int(fitted.data.timestamps_ms.max() // 1000)
    one = shortlists.rank_everyone(fitted, moment, threads=1)
    several = shortlists.rank_everyone(fitted, moment, threads=3)
    for name in ("items", "scores", "sources", "interactions", "latest_ms"):
        np.testing.assert_array_equal(getattr(one, name), getattr(several, name))
    assert one.people == several.people == fitted.data.user_ids
    for person in (0, 8, len(one.people) - 1):
        request = Request(fitted.histories()[person], moment, hour=moment // 3600 % 24)
        alone = fitted.shortlists([request], shortlists.SHORTLIST_SIZE)[0]
        kept = several.get(one.people[person])
        assert kept is not None
        np.testing.assert_array_equal(kept.items, alone.items)
        np.testing.assert_allclose(kept.scores, alone.scores, rtol=1e-6)


def test_ranking_everyone_shares_fewer_people_than_a_slice_among_the_threads(
    fitted: RecommendationPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fitted.data is not None
    assert len(fitted.data.user_ids) < shortlists.RANKING_SLICE
    asked: list[int] = []
    shortlists_of = fitted.shortlists

    def counted(requests: list[Request], size: int) -> list[Shortlist]:
        asked.append(len(requests))
        return shortlists_of(requests, size)

    monkeypatch.setattr(fitted, "shortlists", counted)
    moment = int(fitted.data.timestamps_ms.max() // 1000)
    shortlists.rank_everyone(fitted, moment, threads=3)
    people = len(fitted.data.user_ids)
    assert sorted(asked) == sorted([-(-people // 3)] * 2 + [people - 2 * -(-people // 3)])


def test_sources_fitted_side_by_side_are_the_sources_fitted_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ALS fits on a thread beside the others (BLAS on one thread meanwhile): each source's
    fitted state is what it gets fitted alone, and ALS fitted on the helper thread."""
    data = interactions()
    alone = {}
    with blas_single_threaded():
        for source in default_sources(data.n_items):
            source.fit(data)
            if isinstance(source, PersistentSource):
                alone[source.name] = source.to_arrays()
    threads: dict[str, str] = {}
    fit_als = ALS.fit

    def watched(self: ALS, *args: Any, **kwargs: Any) -> None:
        threads["als"] = threading.current_thread().name
        fit_als(self, *args, **kwargs)

    monkeypatch.setattr(ALS, "fit", watched)
    pipeline = RecommendationPipeline()
    pipeline._fit_sources(data)
    assert threads["als"].startswith("persona-fit")
    together = pipeline.source_arrays()
    assert together.keys() == alone.keys() and "als" in together
    for name, arrays in alone.items():
        assert together[name].keys() == arrays.keys()
        for key, array in arrays.items():
            np.testing.assert_array_equal(together[name][key], array, err_msg=f"{name} {key}")


def test_a_row_with_empty_slots_gives_no_rank_to_another_row_s_items() -> None:
    """An empty slot (``NOTHING``) of one row is not the last item of the row before."""
    proposals = pipeline_module._Proposals(2)
    proposals.add(np.array([[1, 2], [0, NOTHING]]), 1, ranked=True)
    proposals.add(np.array([[3], [3]]), 2)
    nothing_blocked = Blocked(np.zeros(4, dtype=bool), sparse.csr_matrix((2, 4)))
    row, item, _, ranks = proposals.merged(nothing_blocked)
    assert list(zip(row.tolist(), item.tolist(), strict=True)) == [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 0),
        (1, 3),
    ]
    np.testing.assert_array_equal(ranks[0], [1.0, 2.0, np.nan, 1.0, np.nan])


@pytest.mark.parametrize("seed", range(8))
def test_merged_proposals_keep_the_first_proposal_and_every_position(seed: int) -> None:
    """Each row's distinct, unblocked proposals in the order first proposed, with every
    proposer's bit and each ranked proposer's 1-based position (NaN where it did not)."""
    rng = np.random.default_rng(seed)
    rows, n_items = 6, 30
    added = []
    for bit in range(4):
        width = int(rng.integers(0, 9))
        items = np.stack([rng.permutation(n_items)[:width] for _ in range(rows)])
        items[rng.random(items.shape) < 0.2] = NOTHING
        added.append((items.reshape(rows, width), 1 << bit, bit != 2))  # bit 2: an extra
    blocked = Blocked(
        rng.random(n_items) < 0.1, sparse.csr_matrix(rng.random((rows, n_items)) < 0.1)
    )
    proposals = pipeline_module._Proposals(rows)
    for items, bit, ranked in added:
        proposals.add(items, bit, ranked=ranked)
    row, item, bits, ranks = proposals.merged(blocked)

    dense = blocked.dense
    expected: list[tuple[int, int, int, list[float]]] = []
    for r in range(rows):
        seen: dict[int, int] = {}
        for items, bit, _ in added:
            for i in items[r]:
                if i == NOTHING or dense[r, i]:
                    continue
                if int(i) not in seen:
                    seen[int(i)] = len(expected)
                    expected.append((r, int(i), 0, []))
                found = expected[seen[int(i)]]
                expected[seen[int(i)]] = (r, int(i), found[2] | bit, [])
        for at, (r_, i, b, _) in enumerate(expected):
            if r_ == r:
                positions = [
                    float(list(items[r]).index(i) + 1) if i in items[r] else np.nan
                    for items, _, ranked in added
                    if ranked
                ]
                expected[at] = (r_, i, b, positions)
    assert row.tolist() == [e[0] for e in expected]
    assert item.tolist() == [e[1] for e in expected]
    assert bits.tolist() == [e[2] for e in expected]
    assert len(ranks) == 3
    got = np.column_stack(ranks) if len(expected) else np.zeros((0, 3))
    np.testing.assert_array_equal(got, np.array([e[3] for e in expected]).reshape(-1, 3))


def test_a_boost_lifts_an_item_whose_ranker_output_is_negative() -> None:
    rules = BusinessRules(boosts={3: 3.0})
    slots = rerank(
        np.asarray([0, 1, 2, 3]),
        np.asarray([-1.0, -1.5, -1.9, -2.0]),  # ranker outputs are often all negative
        4,
        categories=CATS,
        config=RerankConfig(1.0, 0.0),
        rules=rules,
    )
    assert [s.item for s in slots] == [3, 0, 1, 2]  # -2.0 + log(3) = -0.90


def test_business_rules_apply_within_their_dates_by_item_category_and_tag() -> None:
    from persona.recommend.business import BusinessRuleIn, RuleTargets, business_rules
    from tests.recommend.synthetic import interactions

    data = interactions()
    written = [
        {"action": "pin", "item_id": "i3", "position": 2},
        {"action": "bury", "category": "horror", "starts_at": "2030-01-01T00:00:00Z"},
        {"action": "boost", "category": "drama", "factor": 2.0},
        {"action": "boost", "item_id": "i0", "factor": 3.0},
        {"action": "pin", "item_id": "unknown", "position": 1},
    ]
    rules = [BusinessRuleIn.model_validate(r).rule() for r in written]
    now = 1_900_000_000_000  # 2030-03-17: the bury has started
    found = business_rules(rules, RuleTargets(data), now)
    assert found is not None
    assert found.pins == {3: 1}
    assert found.boosts[0] == 6.0  # drama and its own boost multiply
    assert found.boosts[4] == 2.0
    assert found.buried == frozenset(i for i in range(len(data.item_ids)) if i % 4 == 3)
    before = business_rules(rules, RuleTargets(data), 1_800_000_000_000)
    assert before is not None and not before.buried
