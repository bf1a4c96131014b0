"""Lists for everyone in the store at once (``persona recommend --all``): the served pipeline,
ranked in blocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

from persona.clock import Clock
from persona.identity import split_key
from persona.recommend.answer import RecommendationQuery, RecommendedItem, ServedModel, ranked_items
from persona.recommend.dataset import IntArray, Interactions
from persona.recommend.pipeline import (
    RecommendationPipeline,
    Request,
    histories_of,
    last_context,
)
from persona.recommend.request import History
from persona.recommend.request_builder import RequestBuilder
from persona.recommend.training import load_training_data
from persona.storage.protocols import Storage


def recommend_everyone(
    served: ServedModel,
    storage: Storage,
    requests: RequestBuilder,
    clock: Clock,
    n: int,
    weights: Mapping[str, float],
    *,
    personalization_allowed: Callable[[str], bool] | None = None,
    as_of_last_event: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, list[RecommendedItem]]]:
    """``(person id, items)`` for every person in the store.

    Each person is ranked as of their latest event (what comes next for them), or as of now
    with ``as_of_last_event=False``. Histories come from the store, not the model set; a
    person without personalization consent is ranked on no history, as a newcomer would be.
    """
    pipeline = served.pipeline
    model_data = pipeline.data
    assert model_data is not None
    current = load_training_data(storage, weights).interactions
    mapping = np.asarray(
        [-1 if (j := model_data.item_index(i)) is None else j for i in current.item_ids],
        dtype=np.int64,
    )
    now_s = clock.now_ms() // 1000
    unavailable = requests.exclusions(pipeline, RecommendationQuery(person_id=""))
    histories = histories_of(current)
    contexts = _latest_contexts(current, pipeline)
    block = pipeline.config.block_size
    for start in range(0, current.n_users, block):
        people = range(start, min(start + block, current.n_users))
        batch = []
        for person in people:
            person_id = split_key(current.user_ids[person])[1]
            if personalization_allowed is not None and not personalization_allowed(person_id):
                batch.append(Request(History.empty(), now_s, now_s // 3600 % 24, unavailable))
                continue
            h = histories[person]
            mapped = mapping[h.items]
            known = mapped >= 0
            as_of = int(h.times_s[-1]) if as_of_last_event and len(h.times_s) else now_s
            batch.append(
                Request(
                    History(mapped[known], h.times_s[known]),
                    as_of,
                    hour=as_of // 3600 % 24,
                    exclude=unavailable,
                    context={name: int(codes[person]) for name, codes in contexts.items()},
                )
            )
        for person, ranked in zip(people, pipeline.rank(batch, n), strict=True):
            yield split_key(current.user_ids[person])[1], ranked_items(pipeline, ranked)
        if progress:
            progress(len(people))


def _latest_contexts(
    current: Interactions, pipeline: RecommendationPipeline
) -> dict[str, IntArray]:
    """Each person's latest context in the store, as the model set's codes, by field."""
    model = None if pipeline.data is None else pipeline.data.context
    if current.context is None or model is None:
        return {}
    found = {}
    for name, latest in last_context(current).items():
        recode = np.asarray(
            [model.code(name, value) for value in current.context.values[name]] + [-1],
            dtype=np.int64,
        )
        found[name] = recode[latest]  # -1 (none) takes the last entry
    return found
