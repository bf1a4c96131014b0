"""The multi-stage recommendation pipeline: candidates -> filters -> ranker -> rerank.

The same object answers the API (one request at a time, from the store) and the offline
evaluation (every person at once, from the split): both build a ``RequestBlock`` and call
``rank``. Training fits the candidate sources twice: once on the earlier part of each person's
history, to learn the ranker on what came next (a temporal holdout inside the training data),
then on everything, to serve.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from persona.clock import DAY_S
from persona.recommend.algorithms.ease import EASE, EASEConfig
from persona.recommend.algorithms.factorization import ALS
from persona.recommend.algorithms.neighbours import ItemKNN, ItemKNNConfig
from persona.recommend.dataset import FloatArray, IntArray, Interactions, history_matrix
from persona.recommend.features import (
    ItemFacts,
    build_features,
    context_fields_of,
    feature_names,
)
from persona.recommend.proposers import SourceBits, SourceNames
from persona.recommend.ranker import LearnedRanker, RankerConfig, RankerReport
from persona.recommend.request import Histories, History, RequestBlock, source_input
from persona.recommend.rerank import BusinessRules, RerankConfig, SeededDraws, Slot, rerank
from persona.recommend.scores import NOTHING, Blocked, RowScores, Scores
from persona.recommend.shown import NOT_SHOWN, ShownLists
from persona.recommend.sources import (
    CandidateSource,
    CategoryTrending,
    ContentSimilarity,
    PersistentSource,
    RecentView,
    ScorerSource,
    Trending,
)
from persona.runtime import blas_single_threaded, scoring_threads

Progress = Callable[[str], None]
SourceFactory = Callable[[int], list[CandidateSource]]
MIN_PEOPLE = 5  # fewer people than this on either side, and no ranker is learned
EXPLORATION_POOL = 500  # new items considered for exploration: the newest, to bound the work
POOL_SECONDS = 60  # the exploration pool is computed once for each minute
# Dense EASE costs items^2 memory and items^3 time, four times a training: past this catalog
# size it would dominate training, and the other sources scale instead.
EASE_MAX_ITEMS = 10_000
EASE_MIN_INTERACTIONS = 3  # rarer items take no part in EASE (the other sources score them)
# Similar items: the sources whose one-item answers fuse, and their weights. On MovieLens's next
# item after each person's last (hit rate@10, 671 people): EASE alone 0.080, ALS 0.080,
# ItemKNN 0.067, content 0.015, item co-occurrence 0.049; these weights 0.086. Content
# weighs little but is all there is for an item no one has interacted with yet.
SIMILAR_SOURCES = {"ease": 1.0, "als": 1.0, "itemknn": 0.5, "content": 0.2}
SIMILAR_POOL = 100  # each source's best items considered
BECAUSE_ITEMS = 2  # history items named as the reason for a recommended item
BECAUSE_HISTORY = 200  # the latest interactions searched for them
RRF_OFFSET = 60  # reciprocal rank fusion's constant (Cormack et al. 2009)
WHY_LEFT_OUT = {
    "ease": f"dense EASE serves catalogs of up to {EASE_MAX_ITEMS:,} items (its memory grows "
    "with the square of the catalog, its time with the cube)",
}


EMPTY = np.zeros(0, dtype=np.int64)
SHOWN = "shown"  # the candidates of the ranker's examples that are lists people were shown
MAX_SHOWN = 1_000  # items of one person's shown lists taken as candidates


@dataclass(frozen=True)
class PipelineConfig:
    # How many candidates each source proposes per request, by source name. Four fifths of
    # the earlier 100/60/60/60/30/40/40 rank as well (NDCG@10 over pipeline seeds 1-14 on
    # MovieLens 0.1638 against 0.1625; the generator's shop, seeds 1-3, 0.1707 against 0.1698)
    # for a sixth fewer rows in every stage after the sources, training and serving, and a
    # ranker that needs fewer trees. (Two thirds ranked as well on average, 0.1620, but
    # spread wider: 0.1573 with the default seed.)
    candidates: dict[str, int] = field(
        default_factory=lambda: {
            "ease": 80,
            "als": 50,
            "itemknn": 50,
            "recent_neighbours": 50,
            "content": 30,
            "trending": 30,
            "category_trending": 30,
        }
    )
    holdout_share: float = 0.2  # the latest share of each history that trains the ranker
    validation_share: float = 0.2  # people kept out of the ranker's training to measure it
    extra_cutoffs: int = 2  # earlier moments of each history that also teach the ranker
    max_ranker_people: int = 20_000  # a sample bounds the ranker's training time on big data
    # ... and so does a bound on its examples (people x cutoffs x candidates): past a million
    # or so, more people teach the ranker little and cost minutes (MovieLens stays below).
    max_ranker_examples: int = 1_500_000
    block_size: int = 256  # requests scored together (bounds memory: block x items per source)
    seed: int = 7
    ranker: RankerConfig = field(default_factory=RankerConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)


@dataclass(frozen=True)
class Request:
    """One ranking request after the caller resolved ids to indices."""

    history: History
    as_of_s: int
    hour: int = 12
    exclude: IntArray | None = None  # further item indices to leave out (filters, business)
    rules: BusinessRules | None = None
    # The request's device and country as codes of the fitted data, by field (absent or -1:
    # unknown); see ``context_codes`` and ``person_context``.
    context: Mapping[str, int] = field(default_factory=dict)
    # Candidates known only at serving time, by source name: what the person's context or
    # segments favour. They join the learned sources' candidates and are ranked like them.
    extra: Mapping[str, IntArray] = field(default_factory=dict)


@dataclass(frozen=True)
class Shortlist:
    """Candidates ranked by the ranker, best first, with the sources that proposed each."""

    items: IntArray
    scores: npt.NDArray[np.float32]
    proposers: SourceBits  # who proposed each item, decoded on demand


@dataclass(frozen=True)
class Ranked:
    items: list[Slot]
    sources: list[list[str]]  # for each slot, the sources that proposed it
    # For each slot, the items of the history (or the item asked about) that led to it, most
    # alike first; empty where nothing the person did explains the slot.
    because: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True)
class FitReport:
    ranker: RankerReport | None
    metrics: dict[str, float]  # validation NDCG@10 and Recall@10 (empty without a ranker)
    sources: list[str]
    people: int
    items: int
    interactions: int
    left_out: dict[str, str] = field(default_factory=dict)  # configured sources not used, why


class RecommendationPipeline:
    def __init__(
        self,
        config: PipelineConfig | None = None,
        source_factory: SourceFactory | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        self._source_factory = source_factory or default_sources
        self.sources: list[CandidateSource] = []
        self.ranker: LearnedRanker | None = None
        self.facts: ItemFacts | None = None
        self.data: Interactions | None = None
        self.available: npt.NDArray[np.bool_] | None = None
        self._histories = Histories(EMPTY, EMPTY, np.zeros(1, dtype=np.int64))
        self._last_times: IntArray = np.zeros(0, dtype=np.int64)
        self._last_context: dict[str, IntArray] = {}  # each fitted person's latest, by field
        # The context fields the ranker learns from: those the training data has values of.
        self.context_fields: list[str] = []
        self._pools: dict[int, IntArray] = {}  # exploration pools by minute, the latest few

    # Training -------------------------------------------------------------------------------

    def fit(
        self,
        data: Interactions,
        progress: Progress | None = None,
        shown: ShownLists | None = None,
    ) -> FitReport:
        """Fit the sources and learn the ranker from ``data``; ``shown``: the lists people were
        shown and clicked in (of ``data``'s people and items), which also teach the ranker."""
        say = progress or (lambda _: None)
        c = self.config
        self.context_fields = [] if data.context is None else data.context.fields()
        # Cutoffs, latest last: each hides the latest share of what the previous one kept, so
        # the ranker learns from several moments of each history (more examples, less noise).
        latest = temporal_holdout(data, c.holdout_share)
        people = np.flatnonzero([len(items) > 0 for items in latest[1]])
        cutoffs = [latest]
        # Earlier moments add examples where people are few. When the latest moment alone has
        # as many people as the ranker's examples allow, they would only replace people by
        # earlier moments of fewer people, at the cost of fitting every source again (a third
        # of the training at 10M events).
        if len(people) < self._ranker_people(1):
            for _ in range(c.extra_cutoffs):
                cutoffs.insert(0, temporal_holdout(cutoffs[0][0], c.holdout_share))
        later = latest[1]
        rng = np.random.default_rng(c.seed)
        most = self._ranker_people(len(cutoffs))
        if len(people) > most:
            people = np.sort(rng.choice(people, most, replace=False))
        validation = rng.random(len(people)) < c.validation_share
        report = None
        metrics: dict[str, float] = {}
        if validation.sum() >= MIN_PEOPLE and (~validation).sum() >= MIN_PEOPLE:
            examples = _Examples()
            for n, (cut_early, cut_later) in enumerate(cutoffs, start=1):
                say(f"fitting candidate sources before cutoff {n} of {len(cutoffs)}")
                self._fit_sources(cut_early)
                say(f"collecting what came next after cutoff {n} of {len(cutoffs)}")
                # The lists shown after the latest cutoff are seen from its histories.
                latest_shown = shown if n == len(cutoffs) else None
                self._collect_examples(examples, cut_later, people, validation, latest_shown)
            say("learning the ranker")
            report = self._fit_ranker(examples)
            say("measuring the pipeline on people the ranker did not learn from")
            metrics = self._validate(later, people[validation])
        say("fitting candidate sources on all events")
        self._fit_sources(data, warm=report is not None)  # from the last cutoff's, if fitted
        return FitReport(
            ranker=report,
            metrics=metrics,
            sources=[s.name for s in self.sources],
            people=data.n_users,
            items=data.n_items,
            interactions=len(data.users),
            left_out={
                name: WHY_LEFT_OUT.get(name, "no such source")
                for name in self.config.candidates
                if name not in {s.name for s in self.sources}
            },
        )

    def _ranker_people(self, moments: int) -> int:
        """How many people the ranker learns from when each gives examples at ``moments``
        moments: its bound on people, and its bound on examples (people x moments x
        candidates)."""
        c = self.config
        per_person = moments * sum(c.candidates.values())
        return min(c.max_ranker_people, max(1, c.max_ranker_examples // per_person))

    def _fit_sources(self, data: Interactions, *, warm: bool = False) -> None:
        """Fit every source on ``data``; ``warm``: those that can start from the sources fitted
        before (on an earlier part of the same data) do."""
        earlier = {s.name: s for s in self.sources} if warm else {}
        self.sources = [
            s for s in self._source_factory(data.n_items) if s.name in self.config.candidates
        ]

        def fit(source: CandidateSource) -> None:
            if isinstance(source, ScorerSource):
                source.fit(data, earlier.get(source.name))
            else:
                source.fit(data)

        # ALS runs its own threads and leaves the interpreter's lock alone for most of its fit,
        # yet keeps two cores only three-fifths busy on a small catalog: the other sources fit
        # beside it, here, with BLAS on one thread (MovieLens: a fit of every source 1.2 s to
        # 0.8 s; on big data the cores are shared rather than taken in turn).
        beside = [s for s in self.sources if _fits_beside(s)]
        with blas_single_threaded(), ThreadPoolExecutor(1, "persona-fit") as helper:
            fitting = [helper.submit(fit, source) for source in beside]
            for source in self.sources:
                if source not in beside:
                    fit(source)
            for future in fitting:
                future.result()
        self._attach(data)

    def _attach(self, data: Interactions) -> None:
        self._pools = {}
        self.facts = ItemFacts(data)
        self.data = data
        self.available = data.item_table.available.copy()
        self._histories = histories_of(data)
        self._last_times = last_times_s(data)
        self._last_context = last_context(data)

    def _collect_examples(
        self,
        examples: _Examples,
        later: Sequence[IntArray],
        people: IntArray,
        validation: npt.NDArray[np.bool_],
        shown: ShownLists | None = None,
    ) -> None:
        """Candidates of the fitted sources for each person, labelled by what came next; and
        each list ``shown`` to a person the ranker learns from after their history's end, its
        items labelled by their clicks, at the positions shown (see ``shown``).

        Blocks are scored on a thread per core (as in the batch ranking, the heavy steps run
        outside the interpreter's lock) and taken in order, so the examples do not depend on
        which thread finished first."""
        threads = os.cpu_count() or 1
        # Blocks of at most ``block_size``, as many as a multiple of the threads so that none
        # waits for the others at the end (MovieLens's 628 people a cutoff: 4 of 157, not
        # 256, 256 and 116 on two threads).
        count = -(-len(people) // self.config.block_size)
        count = -(-count // threads) * threads
        size = max(1, -(-len(people) // count))

        # Lists teach, never measure: clicks say what was liked at the positions shown, and
        # the validation measures what people did unprompted (see ``shown``).
        lists = self._lists_after_history(shown, people[~validation])

        def scored(start: int) -> tuple[int, IntArray, list[IntArray], np.ndarray]:
            chunk = people[start : start + size]
            extras = (
                [{SHOWN: _shown_items(shown, lists.get(int(p), []))} for p in chunk]
                if lists
                else []
            )
            candidates, features, _, _ = self._candidates_and_features(
                self._block(chunk), [None] * len(chunk), extras
            )
            return start, chunk, candidates, features

        with scoring_threads("persona-examples", threads) as pool:
            blocks = pool.map(scored, range(0, len(people), size))
            for start, chunk, candidates, features in blocks:
                offsets = np.cumsum([0] + [len(c) for c in candidates])
                for row, person in enumerate(chunk):
                    relevant = np.isin(candidates[row], later[person])
                    # A person whose next items no source found teaches the ranker nothing.
                    if relevant.any():
                        examples.features.append(features[offsets[row] : offsets[row + 1]])
                        examples.labels.append(relevant.astype(np.int8))
                        examples.positions.append(np.full(len(relevant), NOT_SHOWN))
                        examples.sizes.append(len(relevant))
                        examples.held_out.append(bool(validation[start + row]))
                    if shown is not None:
                        mine = features[offsets[row] : offsets[row + 1]]
                        for k in lists.get(int(person), []):
                            _add_shown_list(examples, shown, k, candidates[row], mine)

    def _lists_after_history(
        self, shown: ShownLists | None, people: IntArray
    ) -> dict[int, list[int]]:
        """The lists each of these people was shown after the end of their fitted history."""
        if shown is None or not len(shown):
            return {}
        wanted = set(people.tolist())
        return {
            person: after
            for person, lists in shown.by_person().items()
            if person in wanted
            and (after := [k for k in lists if shown.moments_s[k] >= self._last_times[person]])
        }

    def _fit_ranker(self, examples: _Examples) -> RankerReport | None:
        if not any(examples.held_out) or all(examples.held_out):
            self.ranker = None
            return None
        ranker = LearnedRanker(self.config.ranker)
        report = ranker.fit(
            np.vstack(examples.features),
            np.concatenate(examples.labels),
            np.asarray(examples.sizes, dtype=np.int64),
            np.asarray(examples.held_out, dtype=np.bool_),
            feature_names([s.name for s in self.sources], self.context_fields),
            positions=np.concatenate(examples.positions) if examples.shown_lists else None,
            shown_lists=examples.shown_lists,
        )
        self.ranker = ranker
        return report

    def _validate(
        self, later: Sequence[IntArray], people: IntArray, k: int = 10
    ) -> dict[str, float]:
        """NDCG@k and Recall@k of the whole pipeline on what these people did next."""
        requests = [self._offline_request(int(p)) for p in people]
        ndcg = recall = 0.0
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        for person, ranked in zip(people, self.rank(requests, k), strict=True):
            relevant = later[person]
            hits = np.isin([s.item for s in ranked.items], relevant)
            ideal = min(k, len(relevant))
            ndcg += float((hits * discounts[: len(hits)]).sum() / discounts[:ideal].sum())
            recall += float(hits.sum() / ideal)
        return {
            "ndcg@10": ndcg / len(people),
            "recall@10": recall / len(people),
            "people": len(people),
        }

    def _block(self, people: IntArray) -> RequestBlock:
        return RequestBlock(
            histories=[self._histories[u] for u in people],
            as_of_s=self._last_times[people],
            hours=_hours(self._last_times[people]),
            contexts={name: codes[people] for name, codes in self._last_context.items()},
        )

    def _offline_request(self, person: int) -> Request:
        as_of = int(self._last_times[person])
        hour = int(_hours(np.asarray([as_of]))[0])
        return Request(self._histories[person], as_of, hour, context=self.person_context(person))

    def person_context(self, person: int) -> dict[str, int]:
        """The context of a fitted person's latest interaction that had one, by field (codes;
        -1: none): what a request that names none is taken to come from, as the ranker's
        examples are."""
        return {name: int(codes[person]) for name, codes in self._last_context.items()}

    def context_codes(self, values: Mapping[str, str | None]) -> dict[str, int]:
        """Context values (``{"device": "mobile", "country": "FR"}``) as codes of the fitted
        data; a value it never saw is unknown (-1)."""
        context = None if self.data is None else self.data.context
        if context is None:
            return {}
        return {name: context.code(name, value) for name, value in values.items()}

    def histories(self) -> Histories:
        """Each fitted person's history, by person index."""
        return self._histories

    # Persistence ----------------------------------------------------------------------------

    def source_arrays(self) -> dict[str, dict[str, np.ndarray]]:
        """The fitted state of every source that has one worth saving."""
        return {s.name: s.to_arrays() for s in self.sources if isinstance(s, PersistentSource)}

    def restore(
        self,
        data: Interactions,
        arrays: dict[str, dict[str, np.ndarray]],
        ranker_text: str | None,
        calibration: tuple[float, float] | None = None,
    ) -> None:
        """Rebuild a fitted pipeline: saved sources are loaded, cheap ones fitted again."""
        self.sources = [
            s for s in self._source_factory(data.n_items) if s.name in self.config.candidates
        ]
        for source in self.sources:
            if isinstance(source, PersistentSource) and source.name in arrays:
                source.load_arrays(arrays[source.name])
            elif not isinstance(source, PersistentSource):
                source.fit(data)
            else:
                raise ValueError(f"the model set has no saved state for source {source.name!r}")
        self._attach(data)
        self.ranker = None
        self.context_fields = []
        if ranker_text:
            ranker = LearnedRanker.from_text(ranker_text, self.config.ranker, calibration)
            self.context_fields = context_fields_of(ranker.feature_names)
            names = feature_names([s.name for s in self.sources], self.context_fields)
            if ranker.feature_names != names:
                raise ValueError("the saved ranker was trained with other features")
            self.ranker = ranker

    # Serving --------------------------------------------------------------------------------

    def rank(self, requests: Sequence[Request], k: int, *, explain: bool = False) -> list[Ranked]:
        """A ranked list per request, without its history, exclusions or unavailable items;
        ``explain``: with the history items that led to each (``because``)."""
        return [
            self.finish(request, shortlist, k, content, explain=explain)
            for request, (shortlist, content) in zip(
                requests, self._shortlists(requests), strict=True
            )
        ]

    def shortlists(self, requests: Sequence[Request], n: int) -> list[Shortlist]:
        """Each request's ``n`` best candidates by the ranker, before the rerank stage: what the
        batch ranking keeps for every person (see ``shortlists.ShortlistTable``)."""
        return [
            Shortlist(s.items[:n], s.scores[:n], s.proposers.take(slice(n)))
            for s, _ in self._shortlists(requests)
        ]

    def _shortlists(
        self, requests: Sequence[Request]
    ) -> Iterator[tuple[Shortlist, RowScores | None]]:
        """Every candidate of each request ranked by the ranker, and the content source's
        scores of the request (which exploration reuses), block by block."""
        for start in range(0, len(requests), self.config.block_size):
            chunk = requests[start : start + self.config.block_size]
            block = RequestBlock(
                histories=[r.history for r in chunk],
                as_of_s=np.asarray([r.as_of_s for r in chunk], dtype=np.int64),
                hours=np.asarray([r.hour for r in chunk], dtype=np.int64),
                contexts={
                    name: np.asarray([r.context.get(name, -1) for r in chunk], dtype=np.int64)
                    for name in self.context_fields
                },
            )
            candidates, features, proposers, content = self._candidates_and_features(
                block, [r.exclude for r in chunk], [r.extra for r in chunk]
            )
            newcomers = [not len(r.history.items) for r in chunk]
            scores = self._score(features, candidates, newcomers)
            offsets = np.cumsum([0] + [len(c) for c in candidates])
            for row in range(len(chunk)):
                row_scores = scores[offsets[row] : offsets[row + 1]]
                order = np.argsort(-row_scores, kind="stable")
                shortlist = Shortlist(
                    candidates[row][order], row_scores[order], proposers[row].take(order)
                )
                yield shortlist, None if content is None else RowScores(content, row)

    def _score(
        self, features: np.ndarray, candidates: Sequence[IntArray], newcomers: Sequence[bool]
    ) -> np.ndarray:
        """The ranker's score of every candidate of a block. Without a ranker (too little data
        to learn one), candidates keep the order in which the sources proposed them: the first
        source's best first. So do a newcomer's (no history: what is trending), which the ranker
        never learned from, each given the row's scores from the best down."""
        if self.ranker is None or not len(features):
            in_order = [-np.arange(len(c), dtype=np.float64) for c in candidates]
            return np.concatenate(in_order) if in_order else np.zeros(0)
        scores = self.ranker.predict(features)
        offsets = np.cumsum([0] + [len(c) for c in candidates])
        for row in np.flatnonzero(newcomers):
            row_scores = scores[offsets[row] : offsets[row + 1]]
            row_scores[:] = -np.sort(-row_scores)
        return scores

    def refilter(self, shortlist: Shortlist, request: Request) -> Shortlist:
        """The shortlist without what this request excludes (its history, filters and the
        items unavailable now): a shortlist ranked earlier, served to a later request."""
        keep = ~self.excluded_mask(request.history, request.exclude)[shortlist.items]
        return Shortlist(shortlist.items[keep], shortlist.scores[keep], shortlist.proposers)

    def finish(
        self,
        request: Request,
        shortlist: Shortlist,
        k: int,
        content_scores: RowScores | None = None,
        *,
        explain: bool = False,
    ) -> Ranked:
        """The rerank stage over ranked candidates: business rules, diversity, exploration.

        ``shortlist`` may come from this request's ranking or from the batch ranking (which
        ranked the same history earlier): either way it holds no item of the history.
        """
        assert self.data is not None
        rules = self._allowed_rules(request)
        rng = None
        if self.config.rerank.exploration_share and len(self._exploration_pool(request.as_of_s)):
            # Seeded by the request, so the same request explores the same way.
            rng = SeededDraws(self.config.seed, int(request.as_of_s), len(request.history.items))

        def new_items() -> IntArray | None:  # only asked when exploration gets a slot
            return self._new_items(request, content_scores)

        slots = rerank(
            shortlist.items,
            shortlist.scores,
            k,
            categories=self.data.item_table.categories,
            config=self.config.rerank,
            rules=rules,
            new_items=new_items,
            rng=rng,
        )
        sources = [
            shortlist.proposers.get(s.item, ["exploration"] if s.explored else ["rule"])
            for s in slots
        ]
        # A pinned item a source proposed too is where it is by the rule.
        sources = [
            [*found, "rule"] if s.score == np.inf and "rule" not in found else found
            for s, found in zip(slots, sources, strict=True)
        ]
        because = self.because(request.history.items, slots) if explain else []
        return Ranked(slots, sources, because)

    def because(self, history: IntArray, slots: Sequence[Slot]) -> list[list[int]]:
        """For each slot, up to ``BECAUSE_ITEMS`` items of ``history`` most alike to it by the
        item neighbours (co-occurrence cosine): what a page shows as "because you watched
        ..." A slot no history item neighbours gets none."""
        neighbours = next((s for s in self.sources if s.name == "itemknn"), None)
        if neighbours is None or not len(history) or not slots:
            return [[] for _ in slots]
        assert isinstance(neighbours, ScorerSource)
        similarity = getattr(neighbours.scorer, "similarity", None)
        if similarity is None:
            return [[] for _ in slots]
        seen = np.unique(history[-BECAUSE_HISTORY:])
        items = np.asarray([s.item for s in slots], dtype=np.int64)
        # Rows: history items; columns: the slots (implicit's matrix holds each history
        # item's neighbours in its row, see ``ItemKNN``).
        block = similarity[seen][:, items].toarray()
        found = []
        for column in range(len(items)):
            strengths = block[:, column]
            best = np.argsort(-strengths, kind="stable")[:BECAUSE_ITEMS]
            found.append([int(seen[b]) for b in best if strengths[b] > 0])
        return found

    def _allowed_rules(self, request: Request) -> BusinessRules | None:
        """Business rules without pins on items that a filter excludes for this request."""
        rules = request.rules
        if rules is None or not rules.pins:
            return rules
        blocked = self.excluded_mask(request.history, request.exclude)
        pins = {item: pos for item, pos in rules.pins.items() if not blocked[item]}
        return BusinessRules(pins=pins, boosts=rules.boosts, buried=rules.buried)

    def _new_items(
        self, request: Request, content_scores: RowScores | None = None
    ) -> IntArray | None:
        """Items that appeared recently and few people saw yet, the person's best fit first
        (by content similarity: ``content_scores`` when the caller has them already)."""
        if not self.config.rerank.exploration_share or self.facts is None:
            return None
        if not len(request.history.items):
            return None  # nothing to fit a new item to: a newcomer sees the best-known items
        pool = self._exploration_pool(request.as_of_s)
        keep = ~self.excluded_mask(request.history, request.exclude)[pool]
        candidates = pool[keep]
        if not len(candidates):
            return None
        if content_scores is not None:
            affinity = content_scores(candidates)
        else:
            content = next((s for s in self.sources if isinstance(s, ContentSimilarity)), None)
            if content is None:
                return candidates[:5]
            # Over the whole pool, the same for every request: its similarities are kept.
            affinity = content.affinity(request.history.items, pool)[keep]
        return candidates[np.argsort(-affinity, kind="stable")][:5]

    def _exploration_pool(self, as_of_s: int) -> IntArray:
        """The newest ``EXPLORATION_POOL`` items that appeared within ``new_item_days`` before
        the start of ``as_of_s``'s minute and few people interacted with yet, newest first.

        The same for every request of a minute, so it is computed once a minute: on a catalog
        of 100,000 items that takes about 20 ms, which, once a second, stalled every request
        queued behind it. Items age by days here; the minute is taken before ``as_of_s``, so
        nothing after it is seen."""
        as_of_s = int(as_of_s) // POOL_SECONDS * POOL_SECONDS
        found = self._pools.get(as_of_s)
        if found is not None:
            return found
        assert self.facts is not None
        c = self.config.rerank
        timeline = self.facts.timeline
        appeared = np.maximum(timeline.first_seen_s, self.facts.created_s)
        first_age = (as_of_s - timeline.first_seen_s) / DAY_S
        created_age = (as_of_s - self.facts.created_s) / DAY_S
        recent = ((first_age >= 0) & (first_age <= c.new_item_days)) | (
            (self.facts.created_s > 0) & (created_age >= 0) & (created_age <= c.new_item_days)
        )
        recent_items = np.flatnonzero(recent)  # a small share of a large catalog: count those
        interactions = timeline.count_between(recent_items, 0, as_of_s)
        eligible = recent_items[interactions <= c.new_item_max_interactions]
        newest = eligible[np.argsort(-appeared[eligible], kind="stable")][:EXPLORATION_POOL]
        pool = np.sort(newest)  # in item order, as before the pool was bounded
        if len(self._pools) >= 4:
            self._pools = {}
        self._pools[as_of_s] = pool
        return pool

    def rank_by_source(self, request: Request, source: str, n: int) -> list[tuple[int, float]]:
        """The top ``n`` items of one candidate source alone, as ``(item, score)``, filtered as
        the pipeline filters: how the fallback chain answers when ranking cannot."""
        assert self.data is not None
        chosen = next((s for s in self.sources if s.name == source), None)
        if chosen is None:
            raise KeyError(f"no candidate source {source!r}")
        block = RequestBlock(
            [request.history], np.asarray([request.as_of_s]), np.asarray([request.hour])
        )
        scores = chosen.score(source_input(block, self.data.n_items))
        top = scores.top(n, self._blocked(block, [request.exclude]))[0]
        top = top[top != NOTHING]
        values = scores.at(np.zeros(len(top), dtype=np.int64), top)
        return [(int(i), float(v)) for i, v in zip(top, values, strict=True)]

    def similar(self, item: int, k: int, as_of_s: int, exclude: IntArray | None = None) -> Ranked:
        """Items like ``item`` ("more like this"): what each similarity source finds for a
        history of that one item, fused by rank (reciprocal rank fusion, weights in
        ``SIMILAR_SOURCES``), filtered as recommendations are; trending in its categories when
        no source knows it.

        Fused by rank rather than by score because the sources' scores share no scale (a
        cosine, a regression weight, a dot product of factors); the ranker is not used: it
        learned from whole histories and ranks one-item histories worse than the sources
        (MovieLens next item, hit rate@10: 0.061 against 0.080 for EASE alone).
        """
        assert self.data is not None
        history = History(np.asarray([item], dtype=np.int64), np.asarray([as_of_s]))
        block = RequestBlock([history], np.asarray([as_of_s]), _hours(np.asarray([as_of_s])))
        inputs = source_input(block, self.data.n_items)
        blocked = self._blocked(block, [exclude])
        fused: dict[int, float] = {}
        proposers: dict[int, list[str]] = {}
        for source in self.sources:
            weight = SIMILAR_SOURCES.get(source.name)
            if weight is None:
                continue
            scores = source.score(inputs)
            top = scores.top(SIMILAR_POOL, blocked)[0]
            top = top[top != NOTHING]
            values = scores.at(np.zeros(len(top), dtype=np.int64), top)
            for rank, found in enumerate(top[values > 0].tolist(), start=1):
                fused[found] = fused.get(found, 0.0) + weight / (RRF_OFFSET + rank)
                proposers.setdefault(found, []).append(source.name)
        if not fused:
            for name in ("category_trending", "trending"):
                if any(s.name == name for s in self.sources):
                    request = Request(history, as_of_s, exclude=exclude)
                    ranked = self.rank_by_source(request, name, k)
                    if ranked:
                        slots = [Slot(i, float(v)) for i, v in ranked]
                        return Ranked(slots, [[name] for _ in slots])
            return Ranked([], [])
        order = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        return Ranked(
            [Slot(i, fused[i]) for i in order],
            [proposers[i] for i in order],
            [[item] for _ in order],
        )

    def excluded_mask(self, history: History, exclude: IntArray | None) -> npt.NDArray[np.bool_]:
        assert self.available is not None
        mask = ~self.available
        mask[history.items] = True
        if exclude is not None and len(exclude):
            mask[exclude] = True
        return mask

    def _blocked(self, block: RequestBlock, excludes: Sequence[IntArray | None]) -> Blocked:
        """What no row may be proposed (unavailable items) and what each may not (its history
        and its exclusions)."""
        assert self.available is not None
        own = [
            h.items if e is None or not len(e) else np.concatenate([h.items, e])
            for h, e in zip(block.histories, excludes, strict=True)
        ]
        return Blocked(~self.available, history_matrix(own, len(self.available)))

    def _candidates_and_features(
        self,
        block: RequestBlock,
        excludes: Sequence[IntArray | None],
        extras: Sequence[Mapping[str, IntArray]] = (),
    ) -> tuple[list[IntArray], np.ndarray, list[SourceBits], Scores | None]:
        """Each source's best items per request (filtered), merged, and their features; who
        proposed each candidate; and the content source's scores, which the exploration share
        reuses.

        A request's candidates come in the order they were first proposed: source by source,
        each source's best first, then the serving-time extras. The merge is done on arrays for
        the whole block (a few hundred candidates for each of hundreds of requests).
        """
        assert self.facts is not None
        n_items = self.facts.n_items
        inputs = source_input(block, n_items)
        blocked = self._blocked(block, excludes)
        names = SourceNames([s.name for s in self.sources])
        all_scores: dict[str, Scores] = {}
        proposals = _Proposals(len(block))
        no_history = np.asarray([not len(h.items) for h in block.histories], dtype=np.bool_)
        for source in self.sources:
            scores = source.score(inputs)
            wanted = self.config.candidates[source.name]
            if no_history.all() and getattr(source, "needs_history", True):
                # only newcomers: nothing to search for (see ``CandidateSource``)
                top = np.full((len(block), max(1, wanted)), NOTHING, dtype=np.int64)
            else:
                top = scores.top(wanted, blocked)
                if no_history.any() and getattr(source, "needs_history", True):
                    top[no_history] = NOTHING  # see ``CandidateSource``
            proposals.add(top, names.bit(source.name), ranked=True)
            all_scores[source.name] = scores
        limits = {**self.config.candidates, SHOWN: MAX_SHOWN}
        for name, items in _extra_columns(extras, limits).items():
            proposals.add(items, names.bit(name))
        rows, items, bits, ranks = proposals.merged(blocked)
        splits = np.cumsum(np.bincount(rows, minlength=len(block)))[:-1]
        candidates = np.split(items, splits)
        by_source = dict(zip(all_scores, ranks, strict=True))
        features = build_features(
            self.facts, block, inputs, candidates, all_scores, by_source, self.context_fields
        )
        proposers = [
            SourceBits(c, b, names) for c, b in zip(candidates, np.split(bits, splits), strict=True)
        ]
        return candidates, features, proposers, all_scores.get("content")

    # Offline ------------------------------------------------------------------------------

    def recommend(self, users: IntArray, history: Any, k: int) -> IntArray:
        """The evaluation harness's call: top ``k`` for people of the fitted data.

        Each person is ranked as of their last event, with their fitted history.
        """
        ranked = self.rank([self._offline_request(int(u)) for u in users], k)
        out = np.full((len(users), k), -1, dtype=np.int64)
        for row, result in enumerate(ranked):
            items = [s.item for s in result.items][:k]
            out[row, : len(items)] = items
        return out


@dataclass
class _Examples:
    """The ranker's training set, one group per (person, cutoff)."""

    features: list[np.ndarray] = field(default_factory=list)
    labels: list[npt.NDArray[np.int8]] = field(default_factory=list)
    positions: list[IntArray] = field(default_factory=list)  # see ``shown``
    sizes: list[int] = field(default_factory=list)
    held_out: list[bool] = field(default_factory=list)
    shown_lists: int = 0  # groups that are lists people were shown


def temporal_holdout(data: Interactions, share: float) -> tuple[Interactions, list[IntArray]]:
    """Split each person's history in time: the earlier part, and the items of the latest share.

    People with a single interaction keep it in the earlier part.
    """
    order = np.lexsort((data.items, data.timestamps_ms, data.users))
    users = data.users[order]
    counts = np.bincount(users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    held = np.where(counts > 1, np.ceil(counts * share).astype(np.int64), 0)
    position = np.arange(len(order)) - starts[users]
    is_later = position >= (counts - held)[users]
    later_rows = order[is_later]
    later: list[IntArray] = [np.zeros(0, dtype=np.int64) for _ in range(data.n_users)]
    grouped = np.split(data.items[later_rows], np.cumsum(held)[:-1])
    for user, items in enumerate(grouped):
        later[user] = np.unique(items)
    keep = np.sort(order[~is_later])
    return data.subset(keep), later


def histories_of(data: Interactions) -> Histories:
    """Each person's interactions in time order (ties by item)."""
    order = np.lexsort((data.items, data.timestamps_ms, data.users))
    counts = np.bincount(data.users, minlength=data.n_users)
    offsets = np.zeros(data.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return Histories(data.items[order], data.timestamps_ms[order] // 1000, offsets)


def last_times_s(data: Interactions) -> IntArray:
    last = np.zeros(data.n_users, dtype=np.int64)
    np.maximum.at(last, data.users, data.timestamps_ms // 1000)
    return last


def last_context(data: Interactions) -> dict[str, IntArray]:
    """Each person's latest known value of each context field (codes; -1: never one)."""
    if data.context is None:
        return {}
    found = {}
    for name in data.context.fields():
        codes = data.context.codes[name]
        known = np.flatnonzero(codes >= 0)
        # In time order (ties by row), the last row of each person wins the assignment.
        known = known[np.lexsort((known, data.timestamps_ms[known]))]
        latest = np.full(data.n_users, -1, dtype=np.int64)
        latest[data.users[known]] = codes[known]
        found[name] = latest
    return found


def _hours(times_s: IntArray) -> IntArray:
    return (np.asarray(times_s, dtype=np.int64) // 3600) % 24


class _Proposals:
    """Items proposed for each row of a block, in the order proposed, with the proposer's bit
    and, for the ranked proposers (the sources), each item's position in their proposal."""

    def __init__(self, rows: int) -> None:
        self._items: list[IntArray] = []  # rows x n each, -1 for nothing
        self._bits: list[npt.NDArray[np.uint32]] = []
        self._ranked: list[bool] = []
        self._rows = rows

    def add(self, items: IntArray, bit: int, *, ranked: bool = False) -> None:
        """``items``: rows x n, each row's best first, each item at most once in a row."""
        self._items.append(items)
        self._bits.append(np.full(items.shape, bit, dtype=np.uint32))
        self._ranked.append(ranked)

    def merged(
        self, blocked: Blocked
    ) -> tuple[IntArray, IntArray, npt.NDArray[np.uint32], list[FloatArray]]:
        """(row, item, bits) of every distinct proposal that is not blocked, by row, each
        row's in the order first proposed; bits are every proposer's, or-ed together. And for
        each ranked proposer, in the order added, each merged proposal's 1-based position in
        its row of that proposer's items (NaN where it did not propose it)."""
        items = np.concatenate(self._items, axis=1) if self._items else np.zeros((self._rows, 0))
        items = items.astype(np.int64)
        bits = np.concatenate(self._bits, axis=1) if self._bits else np.zeros(items.shape)
        widths = [added.shape[1] for added in self._items]
        proposer = np.repeat(np.arange(len(widths)), widths)  # of each column
        position = np.concatenate([np.arange(1, w + 1) for w in widths]) if widths else proposer
        rows = np.broadcast_to(np.arange(self._rows)[:, None], items.shape)
        valid = items >= 0
        valid[valid] = ~blocked.at(rows[valid], items[valid])
        row, item, bit = rows[valid], items[valid], bits[valid].astype(np.uint32)
        column = np.broadcast_to(np.arange(items.shape[1]), items.shape)[valid]
        keys = row * blocked.shape[1] + item
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        merged = np.zeros(len(first), dtype=np.uint32)
        np.bitwise_or.at(merged, inverse.reshape(-1), bit)
        order = np.argsort(first, kind="stable")  # row-major: rows stay grouped
        place = np.empty_like(order)
        place[order] = np.arange(len(order))  # each distinct proposal's place in the result
        at = place[inverse.reshape(-1)]
        by, rank_of = proposer[column], position[column]  # of each kept proposal
        ranks = []
        for index, ranked in enumerate(self._ranked):
            if ranked:
                mine = by == index
                rank = np.full(len(order), np.nan, dtype=np.float32)
                rank[at[mine]] = rank_of[mine]
                ranks.append(rank)
        return row[first[order]], item[first[order]], merged[order], ranks


def _add_shown_list(
    examples: _Examples,
    shown: ShownLists,
    k: int,
    candidates: IntArray,
    features: np.ndarray,
) -> None:
    """List ``k`` as a group of examples: its items among the person's candidates (the items
    of their history never are), labelled by the clicks; when one was clicked and another
    passed over."""
    items, positions, clicked = shown.of(k)
    found = _positions_in(candidates, items)
    taken = found >= 0
    if clicked[taken].any() and taken.sum() >= 2:
        examples.features.append(features[found[taken]])
        examples.labels.append(clicked[taken].astype(np.int8))
        examples.positions.append(positions[taken])
        examples.sizes.append(int(taken.sum()))
        examples.held_out.append(False)
        examples.shown_lists += 1


def _shown_items(shown: ShownLists | None, lists: Sequence[int]) -> IntArray:
    """Every item of these lists, once."""
    if shown is None or not lists:
        return EMPTY
    return np.unique(np.concatenate([shown.of(k)[0] for k in lists]))


def _positions_in(candidates: IntArray, items: IntArray) -> IntArray:
    """Where each item is among the candidates (-1: not there)."""
    if not len(candidates):
        return np.full(len(items), -1, dtype=np.int64)
    order = np.argsort(candidates, kind="stable")
    at = np.minimum(np.searchsorted(candidates, items, sorter=order), len(candidates) - 1)
    found = order[at]
    return np.where(candidates[found] == items, found, -1)


def _extra_columns(
    extras: Sequence[Mapping[str, IntArray]], limits: Mapping[str, int]
) -> dict[str, IntArray]:
    """Serving-time candidates of each request by source name, as rows x n (-1 for none)."""
    names = list(dict.fromkeys(name for extra in extras for name in extra))
    columns: dict[str, IntArray] = {}
    for name in names:
        limit = limits.get(name, 30)
        lists = [np.asarray(extra.get(name, ()), dtype=np.int64)[:limit] for extra in extras]
        width = max((len(items) for items in lists), default=0)
        matrix = np.full((len(extras), width), -1, dtype=np.int64)
        for row, items in enumerate(lists):
            matrix[row, : len(items)] = items
        columns[name] = matrix
    return columns


def _fits_beside(source: CandidateSource) -> bool:
    """Whether the source fits on a thread beside the others (see ``_fit_sources``)."""
    return isinstance(source, ScorerSource) and isinstance(source.scorer, ALS)


def default_sources(n_items: int) -> list[CandidateSource]:
    """The candidate sources of the served pipeline (EASE only where the catalog allows it)."""
    neighbours = ScorerSource("itemknn", ItemKNN(ItemKNNConfig(neighbours=100)))
    trending = Trending()
    sources: list[CandidateSource] = [
        ScorerSource("als", ALS()),
        neighbours,
        RecentView("recent_neighbours", neighbours),
        ContentSimilarity(),
        trending,
        CategoryTrending(trending),
    ]
    if n_items <= EASE_MAX_ITEMS:
        ease = EASE(EASEConfig(l2=500.0, min_interactions=EASE_MIN_INTERACTIONS))
        sources.insert(0, ScorerSource("ease", ease))
    return sources
